package nemesis

import (
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
}
