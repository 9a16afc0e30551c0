package leasectl

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for CMD's output copier and hold's
// own messages writing at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// run executes `lease ARGS...` and returns its output and error.
func run(ctx context.Context, args ...string) (string, error) {
	c := Command()
	var out lockedBuffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs(args)
	err := c.ExecuteContext(ctx)
	return out.String(), err
}

type member struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

func startGroup(t *testing.T) []*member {
	ids := []string{"a", "b", "c"}
	var ms []*member
	var peers []string
	for _, id := range ids {
		m := &member{addr: freeAddr(t), done: make(chan struct{})}
		ms = append(ms, m)
		peers = append(peers, id+"="+m.addr)
	}
	var wg sync.WaitGroup
	for i, m := range ms {
		ctx, cancel := context.WithCancel(context.Background())
		m.cancel = cancel
		wg.Add(1)
		go func() {
			defer close(m.done)
			wg.Done()
			out, err := run(ctx, "serve", "--id", ids[i], "--listen", m.addr, "--peers", strings.Join(peers, ","),
				"--unchecked-clock", "--lease-duration", "600ms", "--max-clock-error", "10ms", "--round-timeout", "60ms")
			if err != nil {
				t.Errorf("serve %s: %v\n%s", ids[i], err, out)
			}
		}()
		t.Cleanup(func() { cancel(); <-m.done })
	}
	wg.Wait()
	for _, m := range ms {
		waitListening(t, m.addr)
	}
	return ms
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s not listening", addr)
		}
	}
}

func TestCommand_Lifecycle(t *testing.T) {
	ms := startGroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must := func(want string, args ...string) string {
		t.Helper()
		out, err := run(ctx, args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("lease %v: %v\n%s(want %q)", args, err, out, want)
		}
		return out
	}
	must("holder=a", "acquire", "--endpoint", ms[0].addr, "r1")
	must("holder=a", "get", "--endpoint", ms[1].addr, "r1")
	if out, err := run(ctx, "hold", "--endpoint", ms[1].addr, "--timeout", "300ms", "r1", "--", "true"); err == nil ||
		!strings.Contains(err.Error(), "not acquired within") {
		t.Fatalf("hold of a held lease: %v\n%s", err, out)
	}
	must("released", "release", "--endpoint", ms[0].addr, "r1")
	out, err := run(ctx, "hold", "--endpoint", ms[1].addr, "--timeout", "5s", "r1", "--",
		"sh", "-c", "echo epoch=$COORD_LEASE_EPOCH res=$COORD_LEASE_RESOURCE; exit 7")
	if ExitCode(err) != 7 {
		t.Fatalf("hold exit code %d (%v), want CMD's 7\n%s", ExitCode(err), err, out)
	}
	var epoch uint64
	if _, err := fmt.Sscanf(out[strings.Index(out, "epoch="):], "epoch=%d res=r1", &epoch); err != nil || epoch == 0 {
		t.Fatalf("CMD did not see COORD_LEASE_EPOCH: %q", out)
	}
	// After hold exits the member releases the lease (asynchronously: the
	// stream's end is the signal), so another member's acquire succeeds.
	must("holder=c", "acquire", "--endpoint", ms[2].addr, "r1")
	must("r1", "list", "--endpoint", ms[1].addr)
}

func TestCommand_HoldKillsOnLoss(t *testing.T) {
	ms := startGroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type res struct {
		out string
		err error
	}
	done := make(chan res, 1)
	go func() {
		out, err := run(ctx, "hold", "--endpoint", ms[2].addr, "r2", "--", "sh", "-c", "echo started; exec sleep 30")
		done <- res{out, err}
	}()
	// Wait until CMD runs, then stop the member that holds the lease.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, _ := run(ctx, "get", "--local", "--endpoint", ms[0].addr, "r2")
		if strings.Contains(out, "holder=c") {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("hold ended before it was seen holding: %v\n%s", r.err, r.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hold never acquired (last view from a: %q)", out)
		}
	}
	start := time.Now()
	ms[2].cancel()
	r := <-done
	if code := ExitCode(r.err); code != 128+9 {
		t.Fatalf("hold after the member died: exit %d (%v), want 137 (CMD killed)\n%s", code, r.err, r.out)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("CMD killed %v after the member died; the lease bound is 600ms", el)
	}
}
