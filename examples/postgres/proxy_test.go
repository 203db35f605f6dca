package postgres

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// cutProxy is a TCP proxy on loopback between a pool and the server of
// DATABASE_URL. It passes every byte on until it is armed with a command
// tag; then the first statement that completes with a tag starting with it
// (COPY, INSERT, COMMIT) loses its answer: the proxy holds back the
// server's messages from that CommandComplete on and, at the
// ReadyForQuery that follows, when the server is done with the statement
// and has committed it, resets the client's connection, or, stalling,
// keeps it open and silent until the server closes it.
type cutProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	cut    chan struct{} // a message for each cut

	mu    sync.Mutex
	tag   []byte // armed with this tag, or nil
	stall bool
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T) *cutProxy {
	t.Helper()
	cfg := mustPool(t).Config().ConnConfig
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{
		t: t, ln: ln, target: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))),
		cut: make(chan struct{}, 16),
	}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// pool returns a pool of at most n connections through the proxy, closed
// at the end of the test.
func (p *cutProxy) pool(n int32) *pgxpool.Pool {
	p.t.Helper()
	cfg := mustPool(p.t).Config().Copy()
	addr := p.ln.Addr().(*net.TCPAddr)
	cfg.ConnConfig.Host = addr.IP.String()
	cfg.ConnConfig.Port = uint16(addr.Port)
	cfg.ConnConfig.Fallbacks = nil
	cfg.MaxConns = n
	pool, err := newPoolConfig(cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(pool.Close)
	return pool
}

// arm makes the proxy cut the next statement whose command tag starts
// with tag; with stall, it holds the answer back rather than reset the
// connection.
func (p *cutProxy) arm(tag string, stall bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tag, p.stall = []byte(tag), stall
}

// waitCut waits for the proxy to cut a statement.
func (p *cutProxy) waitCut() {
	p.t.Helper()
	select {
	case <-p.cut:
	case <-time.After(10 * time.Second):
		p.t.Fatal("the proxy cut no statement within 10 s")
	}
}

func (p *cutProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Go(func() {
			_, _ = io.Copy(server, client)
			_ = server.Close()
		})
		p.wg.Go(func() { p.answers(client, server) })
	}
}

// answers passes the server's messages on to the client, message by
// message, and cuts the statement it is armed for.
func (p *cutProxy) answers(client, server net.Conn) {
	defer func() { _ = client.Close() }()
	r := bufio.NewReader(server)
	holding := false
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if !holding && hdr[0] == 'C' {
			p.mu.Lock()
			if p.tag != nil && bytes.HasPrefix(body, p.tag) {
				holding, p.tag = true, nil
			}
			p.mu.Unlock()
		}
		if !holding {
			if _, err := client.Write(append(hdr[:], body...)); err != nil {
				return
			}
			continue
		}
		if hdr[0] != 'Z' {
			continue
		}
		p.mu.Lock()
		stall := p.stall
		p.mu.Unlock()
		p.cut <- struct{}{}
		if stall {
			// Silent until the server closes, as it does when the client
			// gives up and says goodbye.
			_, _ = io.Copy(io.Discard, r)
			return
		}
		if tc, ok := client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not an orderly close
		}
		_ = server.Close()
		return
	}
}

func (p *cutProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// startServer starts a PostgreSQL server of the test's own with
// scripts/with-postgres.sh, for a test that changes settings that are the
// whole server's, and returns a pool of at most n connections to it. The
// server runs with env (NAME=value) added to the test's environment. The
// server and the pool stop at the end of the test.
func startServer(t *testing.T, n int32, env ...string) *pgxpool.Pool {
	t.Helper()
	const script = "../../scripts/with-postgres.sh"
	cmd := osexec.Command(script, "sh", "-c", `echo "$DATABASE_URL"; exec cat >/dev/null`)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a server of the test's own with %s: %v", script, err)
	}
	urls := make(chan string, 1)
	exited := make(chan struct{}) // closed once the script has exited
	go func() {
		out := bufio.NewReader(stdout)
		line, _ := out.ReadString('\n')
		urls <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = stdin.Close() // ends cat, and the script stops the server
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			<-exited
			t.Errorf("%s did not stop its server within 30 s", script)
		}
	})
	var url string
	select {
	case url = <-urls:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	if !strings.HasPrefix(url, "postgres://") {
		<-exited // and so is done writing stderr
		t.Fatalf("%s started no server of the test's own (it needs the PostgreSQL server binaries "+
			"under /usr/lib/postgresql, which it installs when it may): %s", script, stderr.String())
	}
	pool, err := newPool(url, n)
	if err != nil {
		t.Fatalf("connecting to the server of the test's own at %s: %v", url, err)
	}
	t.Cleanup(pool.Close)
	return pool
}
