package nemesis

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

func TestStallMeter_LongestPerWindowAndRun(t *testing.T) {
	m := newStallMeter()
	t0 := time.Now()
	m.observe(t0, t0.Add(3*time.Millisecond))
	m.observe(t0, t0.Add(1200*time.Millisecond))
	m.observe(t0, t0.Add(40*time.Millisecond))
	if r := m.report(); !strings.Contains(r, "woke late up to 1.2s") {
		t.Fatalf("first window: %q, want the 1.2 s delay", r)
	}
	m.observe(t0, t0.Add(7*time.Millisecond))
	if r := m.report(); !strings.Contains(r, "woke late up to 7ms") {
		t.Fatalf("second window: %q, want only its own 7 ms delay", r)
	}
	if late, at := m.longest(); late != 1200*time.Millisecond || !at.Equal(t0.Add(1200*time.Millisecond)) {
		t.Fatalf("run's longest = %v at %v, want 1.2s at t0+1.2s", late, at.Sub(t0))
	}
}

func TestStallMeter_RunsAndReportsCPU(t *testing.T) {
	m := newStallMeter()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.run(ctx) }()
	// Burn some CPU so the share is above zero.
	end := time.Now().Add(300 * time.Millisecond)
	n := 0
	for time.Now().Before(end) {
		n++
	}
	cancel()
	<-done
	r := m.report()
	if strings.Contains(r, "cpu 0.00 cores") {
		t.Fatalf("report %q: a busy process reported no CPU", r)
	}
	if late, _ := m.longest(); late <= 0 {
		t.Fatalf("meter ran %v without observing a wake-up", 300*time.Millisecond)
	}
}

func TestHistQuantile(t *testing.T) {
	buckets := []float64{0, 0.001, 0.01, 0.1, math.Inf(1)}
	counts := []uint64{90, 8, 2, 0}
	if got := histQuantile(buckets, counts, 100, 0.99); got != 100*time.Millisecond {
		t.Fatalf("p99 = %v, want the 10–100 ms bucket's bound", got)
	}
	if got := histQuantile(buckets, counts, 100, 0.5); got != time.Millisecond {
		t.Fatalf("p50 = %v, want 1ms", got)
	}
	if got := histQuantile(buckets, []uint64{0, 0, 0, 5}, 5, 0.99); got != 100*time.Millisecond {
		t.Fatalf("open last bucket = %v, want its floor (100ms)", got)
	}
	if got := histQuantile(buckets, make([]uint64, 4), 0, 0.99); got != 0 {
		t.Fatalf("empty = %v", got)
	}
}
