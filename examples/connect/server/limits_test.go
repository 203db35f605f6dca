package server_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/server"
)

// TestMessageTooLarge checks that a request message larger than
// MaxMessageBytes is refused as it is read, with ResourceExhausted,
// before any handler decodes it, by every protocol.
func TestMessageTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	huge := strings.Repeat("a", server.MaxMessageBytes+1)
	for _, name := range []string{"connect/http1", "connect/h2c", "grpc/h2c", "grpc-go"} {
		c := e.client(t, name)
		_, _, err := call[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob, &projectsv1.CreateProjectRequest{Name: huge})
		if got := connect.CodeOf(err); got != connect.CodeResourceExhausted {
			t.Errorf("%s: got %v (code %v), want resource_exhausted", name, err, got)
		}
		// A message within the bound is read and decoded as usual.
		_, _, err = call[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob, &projectsv1.CreateProjectRequest{Name: huge[:server.MaxMessageBytes/2]})
		checkCode(t, err, connect.CodeInvalidArgument) // too long a name
	}
}

// TestHTTPServerTimeouts checks the limits of NewHTTPServer on the time a
// request takes to arrive, with its read timeout made short: a body that
// stops arriving ends the call, while a server stream that lasts longer
// than the read timeout is not cut, over HTTP/1.1 and h2c, since the
// limit is on reading the request, not on the response.
func TestHTTPServerTimeouts(t *testing.T) {
	t.Parallel()
	hs := server.NewHTTPServer(http.NotFoundHandler(), nil)
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.WriteTimeout != 0 {
		t.Fatalf("got ReadHeaderTimeout %v, ReadTimeout %v, WriteTimeout %v; want the first two set, and no WriteTimeout, which would cut streams",
			hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout)
	}
	const readTimeout = 300 * time.Millisecond
	e := newEnvHTTP(t, func(hs *http.Server) {
		hs.ReadTimeout = readTimeout
		hs.Handler = slowExports(hs.Handler, readTimeout)
	})

	// A body that stops halfway: the server gives up on it.
	conn, err := net.DialTimeout("tcp", e.addr, callTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{\"name\":", procCreate, e.addr, bob)
	if _, err := io.Copy(io.Discard, conn); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("got no answer and an open connection after 10 s, want the stalled body given up on")
	}

	// A server stream that lasts longer than the read timeout.
	c := e.connectClient(t)
	for _, name := range []string{"a", "b"} {
		mustCall[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](t, c, procCreate, bob, &projectsv1.CreateProjectRequest{Name: name})
	}
	for _, name := range []string{"connect/http1", "connect/h2c", "grpc/h2c", "grpcweb/http1", "grpc-go"} {
		start := time.Now()
		ps, err := export(t, e.client(t, name), bob)
		if err != nil || len(ps) != 2 {
			t.Errorf("%s: got %d projects, %v, after %v; want the 2, the stream not cut", name, len(ps), err, time.Since(start))
		}
		if d := time.Since(start); d < readTimeout {
			t.Errorf("%s: the export took %v, less than the read timeout %v: the test proves nothing", name, d, readTimeout)
		}
	}
}

// slowExports returns h with the second write of each ExportProjects
// response delayed by d, so that an export goes on sending after d.
func slowExports(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == procExport {
			w = &slowWriter{ResponseWriter: w, d: d}
		}
		h.ServeHTTP(w, r)
	})
}

type slowWriter struct {
	http.ResponseWriter
	d      time.Duration
	writes int // one goroutine writes a response
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if w.writes++; w.writes == 2 {
		time.Sleep(w.d)
	}
	return w.ResponseWriter.Write(p)
}

func (w *slowWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *slowWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
