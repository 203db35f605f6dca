package audit

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDetachedContext(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancelCause(context.WithValue(context.Background(), key{}, "v"))
	cancel(errors.New("request ended"))

	ctx, d := detach(parent, 30*time.Millisecond, time.Now())
	if ctx.Value(key{}) != "v" {
		t.Error("values are lost")
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("got %v, want the parent's cancellation hidden", err)
	}
	if cause := context.Cause(ctx); cause != nil {
		t.Fatalf("context.Cause = %v, want nil before the deadline", cause)
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > 30*time.Millisecond {
		t.Errorf("got deadline %v, %v", dl, ok)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done did not close at the deadline")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("got %v, want DeadlineExceeded", ctx.Err())
	}
	if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Errorf("context.Cause = %v, want DeadlineExceeded, not the parent's cause", context.Cause(ctx))
	}
	d.stop()
}

func TestDetachedContextErrBeforeDone(t *testing.T) {
	// Err noticing the deadline first must leave Done closed too.
	ctx, _ := detach(context.Background(), time.Nanosecond, time.Now().Add(-time.Second))
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", ctx.Err())
	}
	select {
	case <-ctx.Done():
	default:
		t.Fatal("Err reported the deadline but Done is open")
	}
	// A derived context sees the end too.
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	<-child.Done()
}

func TestDetachedContextStop(t *testing.T) {
	ctx, d := detach(context.Background(), time.Hour, time.Now())
	done := ctx.Done() // starts the timer
	d.stop()
	if d.timer.Stop() {
		t.Error("stop left the timer running")
	}
	select {
	case <-done:
		t.Fatal("Done closed an hour early")
	default:
	}
	if ctx.Err() != nil {
		t.Fatal("stopped context reports an error before its deadline")
	}
}

func TestDetachWithoutTimeout(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	cancel()
	ctx, d := detach(parent, 0, time.Now())
	if d != nil {
		t.Error("got a deadline context without a timeout")
	}
	d.stop() // a nil one may be stopped
	if ctx.Err() != nil || ctx.Done() != nil {
		t.Errorf("got err %v and done %v, want a context that never ends", ctx.Err(), ctx.Done())
	}
	if _, ok := ctx.Deadline(); ok {
		t.Error("got a deadline without a timeout")
	}
}
