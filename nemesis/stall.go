package nemesis

import (
	"context"
	"fmt"
	"math"
	"runtime/metrics"
	"sync"
	"syscall"
	"time"
)

// A session worker holds thousands of clients on the machine that also
// runs the servers. When a run expires sessions whose clients were alive,
// the first question is whether those clients could run at all: a worker
// process starved of the CPU (it runs at a lower priority than coordd, on
// 2 shared cores) sends no keepalives, and its sessions expire for a
// reason no server can tell from a dead client. stallMeter answers it from
// inside the worker: how late a goroutine woken every stallTick ran (the
// process could not run it: no CPU, or a stop-the-world pause), the Go
// scheduler's own latency histogram, and the share of a core the process
// got.

// stallTick is how often the meter's goroutine asks to run.
const stallTick = 50 * time.Millisecond

// stallMeter keeps the longest wake-up delay per report window and over
// the whole run. run and longest may be called from any goroutine; report
// from one goroutine only (it owns the fields after mu).
type stallMeter struct {
	mu        sync.Mutex
	windowMax time.Duration
	runMax    time.Duration
	runMaxAt  time.Time // when the run's longest delay ended

	lastCPU  time.Duration // process CPU time at the last report
	lastWall time.Time
	sched    schedLatency
}

func newStallMeter() *stallMeter {
	return &stallMeter{lastCPU: processCPU(), lastWall: time.Now()}
}

// observe records one wake-up: due when the ticker fired, now when the
// goroutine ran.
func (m *stallMeter) observe(due, now time.Time) {
	late := now.Sub(due)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.windowMax = max(m.windowMax, late)
	if late > m.runMax {
		m.runMax, m.runMaxAt = late, now
	}
}

// run wakes every stallTick until ctx ends.
func (m *stallMeter) run(ctx context.Context) {
	t := time.NewTicker(stallTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case due := <-t.C:
			m.observe(due, time.Now())
		}
	}
}

// report returns the window's longest wake-up delay, the scheduler's p99
// latency and the process's CPU share (1 = one core) since the last
// report, and starts a new window.
func (m *stallMeter) report() string {
	m.mu.Lock()
	late := m.windowMax
	m.windowMax = 0
	m.mu.Unlock()
	now, cpu := time.Now(), processCPU()
	share := float64(cpu-m.lastCPU) / float64(max(now.Sub(m.lastWall), 1))
	m.lastCPU, m.lastWall = cpu, now
	return fmt.Sprintf("woke late up to %v, sched p99 %v, cpu %.2f cores",
		late.Round(time.Millisecond), m.sched.p99().Round(100*time.Microsecond), share)
}

// longest is the run's longest wake-up delay and when it ended.
func (m *stallMeter) longest() (time.Duration, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runMax, m.runMaxAt
}

// processCPU is this process's user + system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// schedLatency reads the Go scheduler's latency histogram (time
// goroutines spent runnable before running) and reports the p99 of what
// was added since the last read.
type schedLatency struct {
	last []uint64
}

const schedLatencyMetric = "/sched/latencies:seconds"

func (s *schedLatency) p99() time.Duration {
	sample := []metrics.Sample{{Name: schedLatencyMetric}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	h := sample[0].Value.Float64Histogram()
	delta := make([]uint64, len(h.Counts))
	var total uint64
	for i, c := range h.Counts {
		if i < len(s.last) {
			c -= s.last[i]
		}
		delta[i] = c
		total += c
	}
	s.last = append(s.last[:0], h.Counts...)
	return histQuantile(h.Buckets, delta, total, 0.99)
}

// histQuantile returns the upper bound of the bucket holding quantile q
// of counts (buckets[i], buckets[i+1]) holds counts[i]); 0 when empty.
func histQuantile(buckets []float64, counts []uint64, total uint64, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := uint64(q * float64(total))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen > rank {
			hi := buckets[i+1]
			if math.IsInf(hi, 1) { // the last bucket is open: report its floor
				hi = buckets[i]
			}
			return time.Duration(hi * float64(time.Second))
		}
	}
	return 0
}
