package jetstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
)

// Benchmarks, in one run against one cluster and one server; one op is
// one log, logs/s the throughput. At the end of a run the ratios to the
// bars are printed.
//
//	../../scripts/with-postgres.sh ../../scripts/with-nats.sh go test -run '^$' -bench . -benchtime 20000x
//
// BenchmarkCreate compares Create on the 3-replica streams with
// examples/postgres's group commit, from as many callers.
// BenchmarkCreateSyncAlways runs the streams on a cluster of its own
// whose servers fsync every write. BenchmarkPublish measures what the
// duplicate check costs the server. BenchmarkProjector measures how fast
// the projection applies a backlog, and BenchmarkProjectorUnderLoad its
// lag while callers write.

var (
	benchMu      sync.Mutex
	benchResults = map[string][]float64{} // logs/s by benchmark name, one per run
)

// recordRate reports rate and keeps it for the summary. The framework's
// first run of a benchmark, of one op, is not kept: it measures nothing.
func recordRate(b *testing.B, name string, rate float64) {
	b.Helper()
	b.ReportMetric(rate, "logs/s")
	if b.N == 1 {
		return
	}
	benchMu.Lock()
	defer benchMu.Unlock()
	benchResults[name] = append(benchResults[name], rate)
	benchReport = printBenchReport
}

// median returns the median of the rates kept for name, or 0.
func median(name string) float64 {
	r := slices.Sorted(slices.Values(benchResults[name]))
	if len(r) == 0 {
		return 0
	}
	if len(r)%2 == 0 {
		return (r[len(r)/2-1] + r[len(r)/2]) / 2
	}
	return r[len(r)/2]
}

func printBenchReport() {
	benchMu.Lock()
	defer benchMu.Unlock()
	fmt.Println("\nbenchmark summary (logs/s; the median of the runs, their range):")
	for _, name := range slices.Sorted(maps.Keys(benchResults)) {
		r := benchResults[name]
		fmt.Printf("  %-48s %10.0f  (%d runs, %.0f to %.0f)\n", name, median(name), len(r), slices.Min(r), slices.Max(r))
	}
	ratio := func(what, a, b string) {
		if x, y := median(a), median(b); x > 0 && y > 0 {
			fmt.Printf("  %s: %.2f×\n", what, x/y)
		}
	}
	for _, callers := range []int{64, 256} {
		ratio(fmt.Sprintf("stream / group commit at %d callers", callers),
			fmt.Sprintf("stream/callers=%d", callers), fmt.Sprintf("postgres/callers=%d", callers))
		ratio(fmt.Sprintf("sync_interval always / default at %d callers", callers),
			fmt.Sprintf("sync-always/callers=%d", callers), fmt.Sprintf("stream/callers=%d", callers))
	}
	ratio("publish checked / unchecked", "publish/checked", "publish/unchecked")
	ratio("projector under load, applied / written while writing", "under-load/applied-while-writing", "under-load/written")
	ratio("projector on a backlog / stream writes at 256 callers", "projector/backlog", "stream/callers=256")
}

// benchLogs returns n logs as a service's Logger makes them: UUIDv7 IDs,
// the current time, an org, an actor, a target and four metadata keys,
// like those of examples/postgres's benchmarks.
func benchLogs(n int) []audit.Log {
	logs := make([]audit.Log, n)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range logs {
		logs[i] = audit.Log{
			ID:     uuid.Must(uuid.NewV7()).String(),
			OrgID:  "org-" + strconv.Itoa(i%20),
			Source: "frontier",
			Action: "app.project.updated",
			Actor:  audit.Actor{ID: "user-" + strconv.Itoa(i%500), Type: audit.ActorTypeUser, Name: "Ada Lovelace"},
			Target: audit.Target{ID: "project-" + strconv.Itoa(i%2000), Type: "project", Name: "Analytical Engine"},
			Metadata: map[string]string{
				audit.MetadataRequestID: uuid.NewString(),
				audit.MetadataIP:        "192.0.2." + strconv.Itoa(i%256),
				audit.MetadataUserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
				audit.MetadataOutcome:   audit.OutcomeSuccess,
			},
			CreatedAt: now.Add(time.Duration(i) * time.Microsecond),
		}
	}
	return logs
}

// cpuMeter measures the CPU time that the servers of a benchmark and the
// benchmark's own process use while it runs: on a machine whose cores
// all of them share, it shows what bounds the throughput.
type cpuMeter struct {
	servers      func() []int
	server, self time.Duration
	machine      machineCPU
}

func (m *cpuMeter) start(tb testing.TB) {
	tb.Helper()
	m.server, m.self, m.machine = processCPU(tb, m.servers()), selfCPU(), readMachineCPU(tb)
}

// report reports the CPU time per log of the servers and of the process,
// the cores they kept busy, and, from the machine's counters, the cores
// that stayed idle and those that other processes kept busy, over n logs
// written in elapsed. Idle cores near 0 say the run was bound by CPU.
func (m *cpuMeter) report(b *testing.B, n int, elapsed time.Duration) {
	b.Helper()
	server, self := processCPU(b, m.servers())-m.server, selfCPU()-m.self
	machine := readMachineCPU(b)
	idle, busy := machine.idle-m.machine.idle, machine.busy-m.machine.busy
	b.ReportMetric(float64(server.Microseconds())/float64(n), "server-µs/log")
	b.ReportMetric(float64(self.Microseconds())/float64(n), "client-µs/log")
	b.ReportMetric((server+self).Seconds()/elapsed.Seconds(), "cores")
	b.ReportMetric(idle.Seconds()/elapsed.Seconds(), "idle-cores")
	b.ReportMetric(max(busy-server-self, 0).Seconds()/elapsed.Seconds(), "other-cores")
}

// machineCPU is the time all cores of the machine spent idle (waiting for
// I/O included) and busy since boot.
type machineCPU struct{ idle, busy time.Duration }

// readMachineCPU reads the first line of /proc/stat: the machine's CPU
// time in clock ticks of 10 ms, by kind.
func readMachineCPU(tb testing.TB) machineCPU {
	tb.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		tb.Fatalf("/proc/stat starts %q, want the cpu line", line)
	}
	var m machineCPU
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/stat: %q: %v", line, err)
		}
		d := time.Duration(n) * 10 * time.Millisecond
		if i == 3 || i == 4 { // idle, iowait
			m.idle += d
		} else {
			m.busy += d
		}
	}
	return m
}

// processCPU returns the CPU time, user and system, that the processes
// pids have used, from /proc (in clock ticks of 10 ms).
func processCPU(tb testing.TB, pids []int) time.Duration {
	tb.Helper()
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone: a backend that ended
		}
		// The fields after the command, which is in parentheses: utime
		// and stime are the 12th and 13th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return total
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// natsPIDs returns the processes of with-nats.sh's servers.
func natsPIDs(tb testing.TB) func() []int {
	tb.Helper()
	var pids []int
	for f := range strings.FieldsSeq(os.Getenv("NATS_SERVER_PIDS")) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			tb.Fatalf("NATS_SERVER_PIDS=%q: %v", os.Getenv("NATS_SERVER_PIDS"), err)
		}
		pids = append(pids, pid)
	}
	if len(pids) == 0 {
		tb.Fatal("NATS_SERVER_PIDS is not set: run the benchmarks through scripts/with-nats.sh")
	}
	return func() []int { return pids }
}

// postgresPIDs returns the processes of the PostgreSQL server, its
// background workers included, as they are when called.
func postgresPIDs(tb testing.TB, pool *pgxpool.Pool) func() []int {
	tb.Helper()
	return func() []int {
		rows, err := pool.Query(context.Background(), "SELECT pid FROM pg_stat_activity")
		if err != nil {
			tb.Fatal(err)
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			tb.Fatal(err)
		}
		out := make([]int, len(pids))
		for i, p := range pids {
			out[i] = int(p)
		}
		return out
	}
}

// runCallers stores logs through repo from callers goroutines, each
// taking the next log, and returns the rate; with m, it reports the CPU
// time used.
func runCallers(b *testing.B, repo audit.Repository, logs []audit.Log, callers int, m *cpuMeter) float64 {
	b.Helper()
	b.ResetTimer()
	if m != nil {
		m.start(b)
	}
	elapsed := inParallel(b, len(logs), callers, func(i int) error {
		return repo.Create(context.Background(), &logs[i])
	})
	b.StopTimer()
	if m != nil {
		m.report(b, len(logs), elapsed)
	}
	return float64(len(logs)) / elapsed.Seconds()
}

// inParallel calls fn(0) … fn(n-1) from callers goroutines, each taking
// the next i, and returns how long it took; an error fails b.
func inParallel(b *testing.B, n, callers int, fn func(i int) error) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range callers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := fn(int(i)); err != nil {
					b.Errorf("%v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

func BenchmarkCreate(b *testing.B) {
	for _, callers := range []int{64, 256} {
		b.Run(fmt.Sprintf("stream/callers=%d", callers), func(b *testing.B) {
			js := mustJetStream(b, mustNATS(b))
			pool := mustPool(b)
			trail := newTrail(b, js, pool, DefaultPartitions)
			repo := openRepo(b, js, pool, trail)
			m := &cpuMeter{servers: natsPIDs(b)}
			recordRate(b, fmt.Sprintf("stream/callers=%d", callers), runCallers(b, repo, benchLogs(b.N), callers, m))
		})
		b.Run(fmt.Sprintf("postgres/callers=%d", callers), func(b *testing.B) {
			// Group commit writes on one connection of the pool.
			pool := mustPool(b)
			schema := newSchema(b, pool)
			repo := postgres.NewRepository(pool, postgres.WithSchema(schema))
			defer repo.Close()
			m := &cpuMeter{servers: postgresPIDs(b, pool)}
			recordRate(b, fmt.Sprintf("postgres/callers=%d", callers), runCallers(b, repo, benchLogs(b.N), callers, m))
		})
	}
}

// BenchmarkCreateSyncAlways is BenchmarkCreate's stream case on a cluster
// of its own whose servers run with sync_interval: always, so that an
// acknowledged log is on the disk of a majority, not only in its memory.
func BenchmarkCreateSyncAlways(b *testing.B) {
	c := startCluster(b, clusterOptions{syncInterval: "always"})
	nc, err := connect(c.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js := mustJetStream(b, nc)
	for _, callers := range []int{64, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			pool := mustPool(b)
			trail := newTrail(b, js, pool, DefaultPartitions)
			repo := openRepo(b, js, pool, trail)
			m := &cpuMeter{servers: c.pids}
			recordRate(b, fmt.Sprintf("sync-always/callers=%d", callers), runCallers(b, repo, benchLogs(b.N), callers, m))
		})
	}
}

// BenchmarkPublish publishes logs from 256 callers to two 3-replica
// streams, one with the headers that make the server check that no
// message of the ID is stored, one without: the difference is what the
// check costs. The two alternate, in publishRounds rounds of b.N /
// publishRounds logs each, so that the machine's load changes both alike.
func BenchmarkPublish(b *testing.B) {
	js := mustJetStream(b, mustNATS(b))
	pool := mustPool(b)
	streams := map[bool]Trail{true: newTrail(b, js, pool, 1), false: newTrail(b, js, pool, 1)}
	logs := benchLogs(b.N)
	chunk := max(b.N/publishRounds, 1)
	var elapsed [2]time.Duration
	b.ResetTimer()
	for from := 0; from < b.N; from += chunk {
		for k, check := range []bool{true, false} {
			trail := streams[check]
			round := logs[from:min(from+chunk, b.N)]
			start := time.Now()
			publishAll(b, js, len(round), func(i int) *nats.Msg {
				l := &round[i]
				data, _ := json.Marshal(l)
				msg := &nats.Msg{Subject: trail.Subject(l.ID, l.OrgID, l.Source), Data: data, Header: nats.Header{}}
				if check {
					msg.Header.Set(hdrExpectedLastSubjSeq, "0")
					msg.Header.Set(hdrExpectedLastSubjSeqSubj, trail.idFilter(0, l.ID))
				}
				return msg
			})
			elapsed[k] += time.Since(start)
		}
	}
	b.StopTimer()
	checked, unchecked := float64(b.N)/elapsed[0].Seconds(), float64(b.N)/elapsed[1].Seconds()
	b.ReportMetric(checked, "checked-logs/s")
	b.ReportMetric(unchecked, "unchecked-logs/s")
	b.ReportMetric(checked/unchecked, "checked/unchecked")
	if b.N > 1 {
		benchMu.Lock()
		benchResults["publish/checked"] = append(benchResults["publish/checked"], checked)
		benchResults["publish/unchecked"] = append(benchResults["publish/unchecked"], unchecked)
		benchReport = printBenchReport
		benchMu.Unlock()
	}
}

// publishRounds is how many times BenchmarkPublish alternates.
const publishRounds = 8

// publishAll publishes the messages msg(0) … msg(n-1) from 256 callers
// and returns the rate.
func publishAll(b *testing.B, js natsjs.JetStream, n int, msg func(i int) *nats.Msg) float64 {
	b.Helper()
	elapsed := inParallel(b, n, 256, func(i int) error {
		_, err := js.PublishMsg(context.Background(), msg(i))
		return err
	})
	return float64(n) / elapsed.Seconds()
}

// BenchmarkProjector measures how fast a Projector applies a backlog of
// b.N logs spread over the partitions.
func BenchmarkProjector(b *testing.B) {
	js := mustJetStream(b, mustNATS(b))
	pool := mustPool(b)
	trail := newTrail(b, js, pool, DefaultPartitions)
	repo := openRepo(b, js, pool, trail)
	runCallers(b, repo, benchLogs(b.N), 256, nil)
	b.ResetTimer()
	start := time.Now()
	startProjector(b, js, pool, trail)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := repo.List(ctx, audit.Filter{Limit: 1}); err != nil {
		b.Fatal(err)
	}
	rate := float64(b.N) / time.Since(start).Seconds()
	b.StopTimer()
	recordRate(b, "projector/backlog", rate)
}

// BenchmarkProjectorUnderLoad writes b.N logs from 64 callers with a
// Projector running, sampling its lag (logs in the streams not yet in the
// projection) every 100 ms, and reports the rates (written; applied
// while writing; applied, from the start until the projection caught
// up), the lag, how long the projection took to catch up once the writes
// stopped, the logs per batch, and, while writing, the CPU the servers and
// this process (callers and Projector) used and the cores left idle.
func BenchmarkProjectorUnderLoad(b *testing.B) {
	js := mustJetStream(b, mustNATS(b))
	pool := mustPool(b)
	trail := newTrail(b, js, pool, DefaultPartitions)
	repo := openRepo(b, js, pool, trail)
	proj := startProjector(b, js, pool, trail)
	stop := make(chan struct{})
	var lags []int64
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			last, err := repo.lastSequences(context.Background())
			if err != nil {
				continue
			}
			var total uint64
			for _, s := range last {
				total += s
			}
			lags = append(lags, int64(total)-proj.Stats().Applied)
		}
	})
	start := time.Now()
	written := runCallers(b, repo, benchLogs(b.N), 64, &cpuMeter{servers: natsPIDs(b)})
	writeEnd := time.Now()
	during := proj.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := repo.List(ctx, audit.Filter{Limit: 1}); err != nil {
		b.Fatal(err)
	}
	drained := time.Since(writeEnd)
	applied := float64(b.N) / time.Since(start).Seconds()
	close(stop)
	sampler.Wait()
	slices.Sort(lags)
	var p50, maxLag int64
	if len(lags) > 0 {
		p50, maxLag = lags[len(lags)/2], lags[len(lags)-1]
	}
	b.ReportMetric(float64(maxLag), "max-lag-logs")
	b.ReportMetric(float64(p50), "p50-lag-logs")
	b.ReportMetric(drained.Seconds()*1000, "drain-ms")
	b.ReportMetric(float64(during.Applied)/float64(max(during.Batches, 1)), "logs/batch")
	recordRate(b, "under-load/written", written)
	recordRate(b, "under-load/applied-while-writing", float64(during.Applied)/writeEnd.Sub(start).Seconds())
	recordRate(b, "under-load/applied", applied)
}

// BenchmarkSubjectIndex writes b.N logs to a 3-replica stream on a
// cluster of its own, each on its own subject as Create does, and the
// same number to another cluster's stream on one subject, and reports
// the servers' memory growth per log of each, after their caches of
// recent messages have expired: the difference is what the index of
// subjects, which makes the duplicate check a lookup, holds per log.
func BenchmarkSubjectIndex(b *testing.B) {
	if b.N == 1 {
		return // the framework's first run, of one log, would measure nothing but noise
	}
	perLog := map[bool]float64{}
	for _, unique := range []bool{true, false} {
		c := startCluster(b, clusterOptions{})
		nc, err := connect(c.URL())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js := mustJetStream(b, nc)
		trail := newTrail(b, js, mustPool(b), 1)
		time.Sleep(5 * time.Second)
		before := c.memory(b)
		logs := benchLogs(b.N)
		publishAll(b, js, b.N, func(i int) *nats.Msg {
			l := &logs[i]
			subject := trail.Subject(l.ID, l.OrgID, l.Source)
			if !unique {
				subject = trail.Subject("one", "org", "frontier")
			}
			data, _ := json.Marshal(l)
			return &nats.Msg{Subject: subject, Data: data}
		})
		time.Sleep(15 * time.Second) // the filestore drops its cache of a block after 10 s unused
		perLog[unique] = float64(c.memory(b)-before) / float64(b.N) / 3
		si, err := js.Stream(context.Background(), trail.Stream(0))
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("own subjects: %v: %d messages on %d subjects; %.0f bytes more per log and server", unique,
			si.CachedInfo().State.Msgs, si.CachedInfo().State.NumSubjects, perLog[unique])
	}
	b.ReportMetric(perLog[true], "B/log-own-subject")
	b.ReportMetric(perLog[false], "B/log-one-subject")
	b.ReportMetric(perLog[true]-perLog[false], "B/subject")
}

// pids returns the processes of c's servers.
func (c *testCluster) pids() []int {
	var pids []int
	for _, n := range c.nodes {
		pids = append(pids, n.cmd.Process.Pid)
	}
	return pids
}

// memory returns the resident memory of every server of c, summed, as
// their monitoring endpoints report it.
func (c *testCluster) memory(tb testing.TB) int64 {
	tb.Helper()
	var total int64
	for _, n := range c.nodes {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/varz", n.http))
		if err != nil {
			tb.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			tb.Fatal(err)
		}
		var v struct {
			Mem int64 `json:"mem"`
		}
		if err := json.NewDecoder(strings.NewReader(string(body))).Decode(&v); err != nil {
			tb.Fatal(err)
		}
		total += v.Mem
	}
	return total
}
