package gorun

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCloseWaitsForGoroutines(t *testing.T) {
	g := New()
	release := make(chan struct{})
	finished := make(chan struct{})
	if err := g.Go(func(ctx context.Context) {
		<-ctx.Done()
		<-release
		close(finished)
	}); err != nil {
		t.Fatal(err)
	}
	if g.Running() != 1 {
		t.Fatalf("Running = %d, want 1", g.Running())
	}
	closeErr := make(chan error, 1)
	go func() { closeErr <- g.Close(context.Background()) }()
	select {
	case err := <-closeErr:
		t.Fatalf("Close returned %v before the goroutine finished", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-closeErr; err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Close returned but the goroutine had not finished")
	}
}

func TestGoAfterCloseRefused(t *testing.T) {
	g := New()
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ran := false
	if err := g.Go(func(context.Context) { ran = true }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Go after Close = %v, want ErrClosed", err)
	}
	if ran {
		t.Fatal("fn ran after Close")
	}
	if g.Stop() {
		t.Fatal("second Stop claimed to be the first")
	}
	if err := g.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseDeadline(t *testing.T) {
	g := New()
	release := make(chan struct{})
	_ = g.Go(func(context.Context) { <-release })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := g.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	close(release)
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Sleep returns true after d, and false when ctx ends first (on
// synctest's fake clock: the times are exact).
func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Sleep(context.Background(), 20*time.Millisecond) || time.Since(start) != 20*time.Millisecond {
			t.Fatalf("Sleep(20ms) returned false or after %v", time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start = time.Now()
		if Sleep(ctx, time.Hour) {
			t.Fatal("Sleep with an ended context reported the whole hour")
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("Sleep returned %v after the start, its context ended after 1s", d)
		}
	})
}
