package nemesis

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

var coorddBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nemesis-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	coorddBin = filepath.Join(dir, "coordd")
	out, err := exec.Command("go", "build", "-o", coorddBin, "coord/cmd/coordd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build coordd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// envInt reads a count from the environment (for longer local runs).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func runOne(t *testing.T, cfg RunConfig) Result {
	t.Helper()
	cfg.Coordd = coorddBin
	cfg.Dir = t.TempDir()
	cfg.Log = func(f string, a ...any) { t.Logf(f, a...) }
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Schedule.Length+90*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("seed %d: %v", cfg.Schedule.Seed, err)
	}
	t.Logf("seed %d nodes %d: %d ops (%d unknown) %s, %d watch events, %d session probes, %d lock sections (%d stale rejected), recovery %v, violations %d",
		res.Schedule.Seed, res.Schedule.Nodes, res.Ops, res.Unknown, res.Linearizable, res.WatchEvents, res.SessionChecks, res.LockSections, res.LockRejected, res.Recovery.Round(time.Millisecond), len(res.Violations))
	return res
}

// TestSchedules runs randomized fault schedules against 3- and 5-node
// clusters of real coordd processes; every checker must pass.
func TestSchedules(t *testing.T) {
	n := envInt("NEMESIS_SCHEDULES", 24)
	base := uint64(envInt("NEMESIS_SEED", 1))
	length := time.Duration(envInt("NEMESIS_LENGTH_MS", 4000)) * time.Millisecond
	for i := 0; i < n; i++ {
		seed := base + uint64(i)
		nodes := 3
		if i%4 == 3 {
			nodes = 5
		}
		sch := Generate(seed, nodes, length)
		res := runOne(t, RunConfig{Schedule: sch})
		if res.Failed() {
			t.Errorf("seed %d: %d violations:\n%v\nschedule: %s", seed, len(res.Violations), res.Violations, sch)
		}
	}
}
