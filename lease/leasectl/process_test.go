package leasectl

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a lease member process: with
// LEASECTL_TEST_SERVE set it runs `lease serve` with those arguments.
func TestMain(m *testing.M) {
	if args := os.Getenv("LEASECTL_TEST_SERVE"); args != "" {
		err := func() error {
			c := Command()
			c.SetArgs(append([]string{"serve"}, strings.Split(args, " ")...))
			return c.Execute()
		}()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type proc struct {
	id, addr string
	cmd      *exec.Cmd
	args     string
}

func startProc(t *testing.T, p *proc) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LEASECTL_TEST_SERVE="+p.args)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if testing.Verbose() == false {
		cmd.Stdout, cmd.Stderr = nil, nil
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// startProcs runs a 3-member group as 3 OS processes.
func startProcs(t *testing.T) []*proc {
	ps := []*proc{{id: "a"}, {id: "b"}, {id: "c"}}
	var peers []string
	for _, p := range ps {
		p.addr = freeAddr(t)
		peers = append(peers, p.id+"="+p.addr)
	}
	for _, p := range ps {
		p.args = fmt.Sprintf("--id %s --listen %s --peers %s --unchecked-clock --lease-duration 600ms --max-clock-error 10ms --round-timeout 60ms",
			p.id, p.addr, strings.Join(peers, ","))
		startProc(t, p)
	}
	for _, p := range ps {
		waitListening(t, p.addr)
	}
	return ps
}

func epochOf(t *testing.T, out string) uint64 {
	t.Helper()
	i := strings.Index(out, "epoch=")
	var e uint64
	if i < 0 {
		t.Fatalf("no epoch in %q", out)
	}
	fmt.Sscanf(out[i:], "epoch=%d", &e)
	return e
}

// TestProcesses_KillHolder: kill -9 the holder's process; another member
// takes over after the lease expires, with a higher epoch; the restarted
// process is in its restart wait and then sees the new holder.
func TestProcesses_KillHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ps := startProcs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := run(ctx, "acquire", "--endpoint", ps[0].addr, "r")
	if err != nil || !strings.Contains(out, "holder=a") {
		t.Fatalf("acquire: %v %s", err, out)
	}
	e0 := epochOf(t, out)
	ps[0].cmd.Process.Kill() // kill -9
	ps[0].cmd.Wait()
	killed := time.Now()
	out, err = run(ctx, "acquire", "--endpoint", ps[1].addr, "r")
	if err != nil || !strings.Contains(out, "holder=b") {
		t.Fatalf("takeover: %v %s", err, out)
	}
	if el := time.Since(killed); el < 500*time.Millisecond {
		t.Fatalf("took over %v after kill -9; the lease had up to 600ms left", el)
	}
	if e1 := epochOf(t, out); e1 <= e0 {
		t.Fatalf("takeover epoch %d not above %d", e1, e0)
	}
	startProc(t, ps[0])
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, err = run(ctx, "get", "--endpoint", ps[0].addr, "r")
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "recovering") && !strings.Contains(err.Error(), "connection refused") &&
			!strings.Contains(err.Error(), "Unavailable") {
			t.Fatalf("restarted member: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted member never served: %v", err)
		}
	}
	if !strings.Contains(out, "holder=b") {
		t.Fatalf("restarted member sees %q, want holder=b", out)
	}
}

// TestProcesses_PausedHolder: SIGSTOP the member serving a `lease hold`;
// hold must kill CMD before any other member can acquire, and the member,
// resumed, must not hold the lease any more.
func TestProcesses_PausedHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ps := startProcs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type res struct {
		out  string
		err  error
		when time.Time
	}
	held := make(chan res, 1)
	go func() {
		out, err := run(ctx, "hold", "--endpoint", ps[0].addr, "r", "--", "sh", "-c", "exec sleep 30")
		held <- res{out, err, time.Now()}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, _ := run(ctx, "get", "--local", "--endpoint", ps[1].addr, "r")
		if strings.Contains(out, "holder=a") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hold never acquired")
		}
	}
	ps[0].cmd.Process.Signal(syscall.SIGSTOP)
	out, err := run(ctx, "acquire", "--endpoint", ps[1].addr, "r")
	took := time.Now()
	if err != nil || !strings.Contains(out, "holder=b") {
		t.Fatalf("takeover from a paused holder: %v %s", err, out)
	}
	h := <-held
	if ExitCode(h.err) != 137 {
		t.Fatalf("hold exit %d (%v), want 137\n%s", ExitCode(h.err), h.err, h.out)
	}
	if !h.when.Before(took) {
		t.Fatalf("CMD killed at %v, after the takeover at %v", h.when, took)
	}
	ps[0].cmd.Process.Signal(syscall.SIGCONT)
	out, err = run(ctx, "get", "--endpoint", ps[0].addr, "r")
	if err != nil || !strings.Contains(out, "holder=b") {
		t.Fatalf("resumed member: %v %s", err, out)
	}
}
