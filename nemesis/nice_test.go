package nemesis

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestStartNiced: the child runs at the asked priority, and no thread of
// the harness keeps it once the child is reaped (Linux's nice is per
// thread: the child is forked from a thread that carries it).
func TestStartNiced(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	reaped, err := startNiced(cmd, 7)
	if err != nil {
		t.Fatal(err)
	}
	if n, threads, err := processNice(cmd.Process.Pid); err != nil || n != 7 {
		t.Errorf("child: nice %d on %d threads (%v), want 7", n, threads, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	reaped()
	// The forking thread exits with its goroutine; until then the harness
	// has one thread at 7.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, threads, err := processNice(os.Getpid())
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: nice %d on %d threads (%v) after the child was reaped, want 0 on all", n, threads, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Zero leaves the child at the harness's priority.
	cmd = exec.Command("sleep", "30")
	reaped, err = startNiced(cmd, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reaped()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if n, _, err := processNice(cmd.Process.Pid); err != nil || n != 0 {
		t.Errorf("child started with nice 0: nice %d (%v)", n, err)
	}
}
