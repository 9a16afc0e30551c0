package main

import (
	"os"
	"strconv"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and a parenthesis, as /proc shows it.
	line := "4242 (coordd (x) y) S 1 4242 4242 0 -1 4194560 1153 0 0 0 250 75 0 0 20 0 12 0 1234 0 0"
	d, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3250 * time.Millisecond; d != want { // (250 + 75) ticks of 10 ms
		t.Fatalf("cpu %v, want %v", d, want)
	}
	for _, bad := range []string{"", "4242 coordd S 1", "4242 (c) S 1 2 3", "4242 (c) S 1 2 3 4 5 6 7 8 9 10 x 75 0"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestProcCPUOfThisProcess(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin until getrusage says this process used 120 ms more CPU (on a
	// loaded machine that takes longer than 120 ms of wall time), then
	// /proc must agree within its 10 ms ticks.
	ru0, err := takeCPU(nil)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		ru, err := takeCPU(nil)
		if err != nil {
			t.Fatal(err)
		}
		if ru.self-ru0.self >= 120*time.Millisecond {
			break
		}
	}
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 90*time.Millisecond {
		t.Fatalf("used 120 ms of CPU (getrusage), /proc shows %v more", after-before)
	}
	if _, err := parsePIDs("1," + strconv.Itoa(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"x", "-3", "0", "999999999"} {
		if _, err := parsePIDs(bad); err == nil {
			t.Errorf("--server-pids %q: no error", bad)
		}
	}
}
