package jetstream

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// testCluster is a JetStream cluster of real nats-server processes that a
// test starts, kills, stops and restarts. The processes die with the test
// binary and are killed when the test ends.
type testCluster struct {
	tb    testing.TB
	bin   string
	dir   string
	nodes []*testNode
}

type testNode struct {
	name         string
	client, http int
	conf         string
	cmd          *exec.Cmd
	exited       chan struct{}
}

// clusterOptions are settings of a testCluster.
type clusterOptions struct {
	syncInterval string // the servers' sync_interval; "" leaves the default
	servers      int    // how many; 0 for 3
}

// clusterStarts bounds how many clusters start at once.
var clusterStarts = make(chan struct{}, 2)

// clusterStartTimeout bounds how long a cluster may take to become healthy
// at its start. It is long: on a loaded machine five clusters starting
// took more than 30 s.
const clusterStartTimeout = 90 * time.Second

// startCluster starts a cluster of three servers (or opts.servers) from
// NATS_SERVER_BIN and waits until every one is healthy.
func startCluster(tb testing.TB, opts clusterOptions) *testCluster {
	tb.Helper()
	bin := os.Getenv("NATS_SERVER_BIN")
	if bin == "" {
		tb.Fatal("NATS_SERVER_BIN is not set: the fault tests start servers of their own from the binary that " +
			"scripts/with-nats.sh builds; run them through it, e.g. `../../scripts/with-postgres.sh ../../scripts/with-nats.sh go test ./...`")
	}
	for attempt := 1; ; attempt++ {
		// Three servers starting and electing their leaders take the
		// machine's cores for some seconds: so that parallel tests do not
		// starve each other's start-ups, only a few run at once.
		clusterStarts <- struct{}{}
		c, err := tryCluster(tb, bin, opts)
		<-clusterStarts
		if err == nil {
			return c
		}
		if attempt == 3 {
			tb.Fatalf("starting a cluster: %v", err)
		}
		tb.Logf("starting a cluster (attempt %d): %v", attempt, err)
	}
}

func tryCluster(tb testing.TB, bin string, opts clusterOptions) (*testCluster, error) {
	tb.Helper()
	c := &testCluster{tb: tb, bin: bin, dir: tb.TempDir()}
	servers := opts.servers
	if servers == 0 {
		servers = 3
	}
	ports := freePorts(tb, 3*servers)
	// A name of its own: were a port to be taken by another test's
	// cluster between picking and binding, the two would refuse each
	// other's routes rather than merge.
	name := fmt.Sprintf("faults-%d-%d", os.Getpid(), ports[0])
	var routes []string
	for i := range servers {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3*i+1]))
	}
	for i := range servers {
		n := &testNode{name: fmt.Sprintf("n%d", i), client: ports[3*i], http: ports[3*i+2]}
		n.conf = filepath.Join(c.dir, n.name+".conf")
		sync := ""
		if opts.syncInterval != "" {
			sync = "sync_interval: " + opts.syncInterval
		}
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 16GB
  %s
}
cluster {
  name: %s
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, n.name, n.client, n.http, filepath.Join(c.dir, n.name), sync, name, ports[3*i+1], strings.Join(routes, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	tb.Cleanup(c.stopAll)
	for i := range c.nodes {
		c.start(i)
	}
	if err := c.waitHealthy(clusterStartTimeout); err != nil {
		c.stopAll()
		return nil, err
	}
	return c, nil
}

// freePorts returns n TCP ports of 127.0.0.1 that nothing listens on now.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// URL names every server of the cluster, for nats.Connect.
func (c *testCluster) URL() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.client))
	}
	return strings.Join(urls, ",")
}

// start starts node i, which must not be running, on its own
// configuration and store: after a kill, it recovers what it stored.
func (c *testCluster) start(i int) {
	c.tb.Helper()
	n := c.nodes[i]
	logf, err := os.OpenFile(filepath.Join(c.dir, n.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.tb.Fatal(err)
	}
	n.cmd = exec.Command(c.bin, "-c", n.conf)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		c.tb.Fatalf("starting %s: %v", n.name, err)
	}
	n.exited = make(chan struct{})
	go func() {
		_ = n.cmd.Wait()
		_ = logf.Close()
		close(n.exited)
	}()
}

// kill kills node i with SIGKILL, as a crash would, and waits until it is
// gone.
func (c *testCluster) kill(i int) {
	c.tb.Helper()
	n := c.nodes[i]
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// signal sends sig (SIGSTOP, SIGCONT) to node i; for SIGSTOP, it returns
// once the process is stopped, which a signal does not wait for.
func (c *testCluster) signal(i int, sig syscall.Signal) {
	c.tb.Helper()
	p := c.nodes[i].cmd.Process
	if err := p.Signal(sig); err != nil {
		c.tb.Fatalf("signal %v to %s: %v", sig, c.nodes[i].name, err)
	}
	for sig == syscall.SIGSTOP {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid))
		if err != nil {
			c.tb.Fatal(err)
		}
		// The state follows the command, which is in parentheses.
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); f[0] == "T" {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *testCluster) stopAll() {
	for _, n := range c.nodes {
		if n.cmd == nil || n.cmd.Process == nil {
			continue
		}
		select {
		case <-n.exited:
			continue
		default:
		}
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.exited
	}
}

// waitHealthy waits until every running node's health check says that it
// is up and its JetStream current, for at most d.
func (c *testCluster) waitHealthy(d time.Duration) error {
	deadline := time.Now().Add(d)
	client := &http.Client{Timeout: time.Second}
	for _, n := range c.nodes {
		for {
			select {
			case <-n.exited:
				return fmt.Errorf("%s exited; its log is in %s", n.name, c.dir)
			default:
			}
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", n.http))
			last := fmt.Sprint(err)
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				last = resp.Status
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not healthy after %s (last: %s)", n.name, d, last)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// node returns the index of the node with the given server name.
func (c *testCluster) node(name string) int {
	c.tb.Helper()
	for i, n := range c.nodes {
		if n.name == name {
			return i
		}
	}
	c.tb.Fatalf("no node is named %q", name)
	return -1
}

// leader returns the index of the node that leads stream.
func (c *testCluster) leader(ctx context.Context, js natsjs.JetStream, stream string) int {
	c.tb.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		c.tb.Fatalf("stream %s: %v", stream, err)
	}
	info := s.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader == "" {
		c.tb.Fatalf("stream %s has no leader: %+v", stream, info.Cluster)
	}
	return c.node(info.Cluster.Leader)
}
