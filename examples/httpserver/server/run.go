package server

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/raystack/salt/audit/auditmeta"
)

// ShutdownTimeout bounds how long Run and Serve wait for requests in
// flight, and for what closes after them, once their context ends.
const ShutdownTimeout = 10 * time.Second

// Run serves s on addr, a "host:port" to listen on, until ctx ends; then
// it stops taking requests, waits up to ShutdownTimeout for those in
// flight, whose audit logs are still written, and closes s. Once it
// listens it calls ready, if not nil, with the base URL of the server,
// e.g. "http://127.0.0.1:8080", which tells the port when addr's is 0.
//
// It returns nil after a graceful shutdown, or the error that stopped it.
func Run(ctx context.Context, addr string, s *Server, ready func(baseURL string)) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.errorLog.Handler(), slog.LevelWarn),
	}
	return Serve(ctx, addr, hs, ready, s.Close)
}

// Serve serves hs on addr, as Run does, for any http.Server: it listens,
// calls ready, if not nil, with the base URL, and serves until ctx ends;
// then it shuts hs down, waiting up to ShutdownTimeout for the requests in
// flight, and calls closeAfter, if not nil, with what is left of that
// time, for what must close once no request runs (a Logger, whose logs
// those requests still write). examples/connect serves its Connect
// handler with it.
//
// It returns nil after a graceful shutdown, or the errors that stopped it
// or that shutting down met.
func Serve(ctx context.Context, addr string, hs *http.Server, ready func(baseURL string), closeAfter func(context.Context) error) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if ready != nil {
		ready("http://" + ln.Addr().String())
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err = hs.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if closeAfter != nil {
		err = errors.Join(err, closeAfter(sctx))
	}
	return err
}

// Flags are the command-line flags the example servers share: where to
// listen, and which proxies to believe about the client's address.
type Flags struct {
	// Addr is -addr, the "host:port" to listen on.
	Addr string
	// TrustedProxies is -trusted-proxies, comma-separated prefixes and
	// addresses for auditmeta.ParseTrustedProxies.
	TrustedProxies string
	// ForwardedHeader is -forwarded-header, the header the trusted
	// proxies set.
	ForwardedHeader string
}

// Define defines -addr, -trusted-proxies and -forwarded-header on fs,
// into f. Each defaults to an environment variable read with getenv:
// ADDR (127.0.0.1:8080), TRUSTED_PROXIES (none) and FORWARDED_HEADER
// (X-Forwarded-For).
func (f *Flags) Define(fs *flag.FlagSet, getenv func(string) string) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&f.Addr, "addr", env("ADDR", "127.0.0.1:8080"), "`address` to listen on (env ADDR)")
	fs.StringVar(&f.TrustedProxies, "trusted-proxies", getenv("TRUSTED_PROXIES"),
		"comma-separated `CIDRs` or addresses of reverse proxies whose forwarding header is believed (env TRUSTED_PROXIES)")
	fs.StringVar(&f.ForwardedHeader, "forwarded-header", env("FORWARDED_HEADER", auditmeta.HeaderXForwardedFor),
		"the `header` the trusted proxies set: X-Forwarded-For or Forwarded (env FORWARDED_HEADER)")
}

// Metadata returns the auditmeta.Config that f's proxy flags describe, or
// the error that -trusted-proxies or -forwarded-header holds.
func (f Flags) Metadata() (auditmeta.Config, error) {
	trusted, err := auditmeta.ParseTrustedProxies(f.TrustedProxies)
	if err != nil {
		return auditmeta.Config{}, err
	}
	cfg := auditmeta.Config{TrustedProxies: trusted, ForwardedHeader: f.ForwardedHeader}
	if err := cfg.Validate(); err != nil {
		return auditmeta.Config{}, err
	}
	return cfg, nil
}
