package nemesis

import (
	"fmt"
	"os/exec"
	"testing"
)

// reniceAll sets every thread of a running process (a positive value: no
// root needed), and niceOf reads it back from /proc.
func TestReniceAll(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("sleep: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	before, err := niceOf(pid, pid)
	if err != nil {
		t.Fatal(err)
	}
	want := min(before+5, 19)
	n, err := reniceAll(pid, want)
	if err != nil || n < 1 {
		t.Fatalf("reniceAll: %d threads, %v", n, err)
	}
	m, err := threadNices(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || m[want] != n {
		t.Fatalf("threads by nice value %v, want all %d at %d", m, n, want)
	}
	// Pinned to CPU 0 (every host has it).
	if n, err := pinAll(pid, []int{0}); err != nil || n < 1 {
		t.Fatalf("pinAll: %d threads, %v", n, err)
	}
	if got, err := cpusAllowed(pid, pid); err != nil || got != "0" {
		t.Fatalf("cpus allowed %q, %v; want \"0\"", got, err)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]string{"1": "[1]", "2-3": "[2 3]", "0,2-3": "[0 2 3]"} {
		got, err := ParseCPUList(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "3-1", "-1"} {
		if _, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q): no error", bad)
		}
	}
}
