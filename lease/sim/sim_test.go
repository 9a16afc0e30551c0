package sim

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func cfg(seed uint64) Config {
	return Config{Seed: seed, Nodes: 3 + 2*int(seed%4/3), Resources: 1 + int(seed%3), Duration: 2 * time.Second, Timing: TestTiming()}
}

func TestRun_Smoke(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		r := Run(cfg(seed))
		if len(r.Violations) > 0 {
			t.Fatalf("seed %d: %v", seed, r)
		}
		if seed < 5 {
			t.Logf("seed %d: %s", seed, r)
		}
	}
}

// seeds is the number of seeds TestRun_Seeds checks (-short: a tenth).
const seeds = 100_000

func TestRun_Seeds(t *testing.T) {
	n, first := seeds, 0
	if testing.Short() {
		n /= 10
	}
	// Soak: LEASE_SIM_SEEDS=1000000 [LEASE_SIM_FIRST=k] go test -run Seeds ./lease/sim
	if v, err := strconv.Atoi(os.Getenv("LEASE_SIM_SEEDS")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("LEASE_SIM_FIRST")); err == nil && v > 0 {
		first = v
	}
	workers := runtime.GOMAXPROCS(0)
	var failed atomic.Int64
	failed.Store(-1)
	var events, tenures, crashes atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := first + w; seed < first+n && failed.Load() < 0; seed += workers {
				r := Run(cfg(uint64(seed)))
				events.Add(int64(r.Events))
				tenures.Add(int64(r.Tenures))
				crashes.Add(int64(r.Crashes))
				if len(r.Violations) > 0 && failed.CompareAndSwap(-1, int64(seed)) {
					t.Errorf("seed %d: %v", seed, r)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d seeds: %d events, %d tenures, %d crashes", n, events.Load(), tenures.Load(), crashes.Load())
	if tenures.Load() < int64(n) {
		t.Errorf("only %d tenures over %d seeds: the workload is not exercising the protocol", tenures.Load(), n)
	}
}

// TestRun_Liveness: after faults stop (GST), a fresh resource is acquired
// within a few rounds in every seed, with the workload still running.
func TestRun_Liveness(t *testing.T) {
	n := 5000
	if testing.Short() {
		n = 500
	}
	bound := 10 * TestTiming().RoundTimeout
	var worst time.Duration
	for seed := 0; seed < n; seed++ {
		c := cfg(uint64(seed))
		c.GST = time.Second
		c.Duration = 3 * time.Second
		r := Run(c)
		if len(r.Violations) > 0 {
			t.Fatalf("seed %d: %v", seed, r)
		}
		if r.Probe < 0 || r.Probe > bound {
			t.Fatalf("seed %d: probe acquired after %v (bound %v): %v", seed, r.Probe, bound, r)
		}
		worst = max(worst, r.Probe)
	}
	t.Logf("%d seeds: worst time to acquire a free resource after GST: %v", n, worst)
}
