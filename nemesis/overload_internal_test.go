package nemesis

import (
	"os"
	"testing"
	"time"
)

// The p99 recovery rule forgives one noisy window in any 2 s, not two,
// and not a window that served nothing twice.
func TestRecoveryAt(t *testing.T) {
	const bound = 100 * time.Millisecond
	win := func(p99s ...int) []OverloadWindow {
		var ws []OverloadWindow
		for i, ms := range p99s {
			w := OverloadWindow{Start: time.Duration(i) * overloadWindow, P99: time.Duration(ms) * time.Millisecond}
			if ms >= 0 {
				w.Counts[outOK] = 10
			}
			ws = append(ws, w)
		}
		return ws
	}
	for _, tc := range []struct {
		name string
		p99s []int
		want int
	}{
		{"all good", []int{10, 10, 10, 10, 10}, 0},
		{"backlog then good", []int{900, 800, 500, 10, 10, 10, 10, 10}, 3},
		{"one noisy window late", []int{900, 10, 10, 10, 10, 187, 10, 10, 10, 10}, 1},
		{"noisy window at the end", []int{10, 10, 10, 10, 10, 10, 187}, 0},
		{"two noisy windows in 2 s", []int{10, 10, 10, 10, 187, 10, 187, 10, 10}, 5},
		{"two noisy windows 2 s apart", []int{10, 10, 187, 10, 10, 10, 187, 10}, 0},
		{"never", []int{900, 900, 900, 900, 900, 900}, -1},
		{"good only at the very end", []int{900, 900, 900, 900, 10}, 4},
		{"nothing served twice", []int{10, 10, 10, -1, -1, 10, 10}, 5},
		{"empty", nil, -1},
	} {
		if got := recoveryAt(win(tc.p99s...), bound); got != tc.want {
			t.Errorf("%s: recoveryAt = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestSnapshotName(t *testing.T) {
	idx, at, ok := snapshotName("2-66412-1795458945795")
	if !ok || idx != 66412 || at.UnixMilli() != 1795458945795 {
		t.Fatalf("snapshotName = %d, %v, %v", idx, at, ok)
	}
	for _, bad := range []string{"2-66412-1795458945795.tmp", "meta.json", "2-x-1", ""} {
		if _, _, ok := snapshotName(bad); ok {
			t.Fatalf("snapshotName(%q) accepted", bad)
		}
	}
}

// readCPU sees this process's own CPU time grow while it spins.
func TestReadCPU(t *testing.T) {
	before, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		x++
	}
	after, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("CPU time did not grow while spinning: %v -> %v (%d loops)", before, after, x)
	}
	if _, err := readCPU(-1); err == nil {
		t.Fatal("readCPU(-1) succeeded")
	}
	if l := loadAvg(); l < 0 {
		t.Fatalf("load average %v", l)
	}
}
