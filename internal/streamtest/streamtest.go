package streamtest

import (
	"runtime"
	"testing"
	"time"
)

// bound is how long a stream may take to end. Generous: a hang is the
// defect, a busy machine is not.
const bound = 30 * time.Second

// Stream is an event stream fed by a goroutine of its own.
type Stream[E any] interface {
	Events() <-chan E
	Err() error
	Close() error
}

// CloseBlocked closes s, whose goroutine may be blocked handing an event to
// a consumer that stopped reading. Close must return within the bound, the
// channel must end after it, Err must be nil and a second Close harmless.
// It returns how many events were left in the channel.
func CloseBlocked[E any](t testing.TB, s Stream[E]) int {
	t.Helper()
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > bound {
		t.Errorf("Close took %v with a blocked consumer", d)
	}
	n := drain(s)
	if err := s.Err(); err != nil {
		t.Errorf("Err after Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	return n
}

// Cancelled checks s after the context it was started with was cancelled:
// its goroutine must end (done is closed when it has) within the bound, the
// channel must end, Err must be nil and Close harmless. It returns how many
// events were left in the channel.
func Cancelled[E any](t testing.TB, s Stream[E], done <-chan struct{}) int {
	t.Helper()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("goroutine still running %v after cancel", bound)
	}
	n := drain(s)
	if err := s.Err(); err != nil {
		t.Errorf("Err after cancel = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after cancel = %v", err)
	}
	return n
}

func drain[E any](s Stream[E]) int {
	n := 0
	for range s.Events() {
		n++
	}
	return n
}

// WaitGoroutines waits until at most n goroutines run, as before a stream
// was started, and fails t with every goroutine's stack when that takes
// longer than the bound.
func WaitGoroutines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
