package ntpguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/ntp"

	"coord/lease"
)

// chronyd starts a real chronyd serving its local clock on a loopback UDP
// port and returns host:port. It skips the test if chronyd is not installed.
func chronyd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chronyd")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/chronyd"); err != nil {
			t.Skip("chronyd not on PATH: install chrony (apt-get install -y chrony) to run the real-NTP guard tests")
		}
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "chrony.conf")
	body := fmt.Sprintf("local stratum 8\nport %d\nbindaddress 127.0.0.1\nallow 127.0.0.1\ncmdport 0\npidfile %s\ndriftfile %s\n",
		port, filepath.Join(dir, "chronyd.pid"), filepath.Join(dir, "drift"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", conf, "-x", "-d")
	log, _ := os.Create(filepath.Join(dir, "chronyd.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chronyd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := ntp.QueryWithOptions(addr, ntp.QueryOptions{Timeout: 200 * time.Millisecond})
		if err == nil && r.Validate() == nil {
			return addr
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "chronyd.log"))
			t.Fatalf("chronyd at %s not serving after 5s (last: %v)\n%s", addr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// skewClock is time.Now plus an adjustable offset.
type skewClock struct{ off atomic.Int64 }

func (s *skewClock) now() time.Time { return time.Now().Add(time.Duration(s.off.Load())) }

const eps = 20 * time.Millisecond

func newGuard(t *testing.T, servers []string, sk *skewClock, mod func(*Config)) *Guard {
	t.Helper()
	cfg := Config{Servers: servers, MaxClockError: eps, Now: sk.now, QueryTimeout: 300 * time.Millisecond, PollInterval: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuard_Poll(t *testing.T) {
	srv := chronyd(t)
	ctx := context.Background()
	t.Run("in sync", func(t *testing.T) {
		g := newGuard(t, []string{srv}, &skewClock{}, nil)
		if g.Now().ClockOK || g.Status().State != Unknown {
			t.Fatal("clock OK before the first poll")
		}
		if err := g.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		st := g.Status()
		if st.State != OK || st.Bound <= 0 || st.Bound > eps {
			t.Fatalf("status %+v", st)
		}
		if !g.Now().ClockOK {
			t.Fatal("Now not OK after a good poll")
		}
	})
	t.Run("skewed beyond ε", func(t *testing.T) {
		sk := &skewClock{}
		sk.off.Store(int64(3 * eps))
		g := newGuard(t, []string{srv}, sk, nil)
		if err := g.Poll(ctx); err == nil {
			t.Fatal("poll vouched for a clock 3ε off")
		}
		if g.Now().ClockOK {
			t.Fatal("skewed clock reported OK")
		}
	})
	t.Run("skew develops while OK", func(t *testing.T) {
		sk := &skewClock{}
		g := newGuard(t, []string{srv}, sk, func(c *Config) { c.JumpTolerance = time.Hour }) // slew, not step
		if err := g.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		sk.off.Store(int64(2 * eps))
		if err := g.Poll(ctx); err == nil || g.Now().ClockOK {
			t.Fatalf("offset 2ε at the next poll: err=%v ok=%v", err, g.Now().ClockOK)
		}
		if st := g.Status(); st.State != Unsafe || st.Reason == "" {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("step detected", func(t *testing.T) {
		sk := &skewClock{}
		g := newGuard(t, []string{srv}, sk, func(c *Config) { c.JumpCheckEvery = time.Nanosecond })
		if err := g.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		g.Now()
		sk.off.Store(int64(eps / 2)) // within ε, but a step
		if g.Now().ClockOK {
			t.Fatal("wall step not detected")
		}
		select {
		case <-g.repoll:
		default:
			t.Fatal("step did not request a re-poll")
		}
		if err := g.Poll(ctx); err != nil || !g.Now().ClockOK {
			t.Fatalf("good poll after the step: %v", err)
		}
	})
	t.Run("servers silent past MaxSyncAge", func(t *testing.T) {
		pc, _ := net.ListenPacket("udp", "127.0.0.1:0") // answers nothing
		defer pc.Close()
		g := newGuard(t, []string{pc.LocalAddr().String()}, &skewClock{}, func(c *Config) { c.QueryTimeout = 50 * time.Millisecond })
		if err := g.Poll(ctx); err == nil || g.Now().ClockOK {
			t.Fatal("silent server vouched for the clock")
		}
		g2 := newGuard(t, []string{srv}, &skewClock{}, func(c *Config) { c.MaxSyncAge = 100 * time.Millisecond })
		if err := g2.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		g2.cfg.Servers = []string{pc.LocalAddr().String()}
		g2.cfg.QueryTimeout = 50 * time.Millisecond
		if err := g2.Poll(ctx); err == nil {
			t.Fatal("silent poll reported good")
		}
		if !g2.Now().ClockOK {
			t.Fatal("one silent poll withdrew a fresh bound")
		}
		time.Sleep(110 * time.Millisecond) // MaxSyncAge: the property under test is time-based
		if g2.Now().ClockOK {
			t.Fatal("bound older than MaxSyncAge still OK")
		}
	})
	t.Run("falseticker outvoted", func(t *testing.T) {
		pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
		defer pc.Close()
		g := newGuard(t, []string{srv, srv, pc.LocalAddr().String()}, &skewClock{}, func(c *Config) { c.QueryTimeout = 50 * time.Millisecond })
		if err := g.Poll(ctx); err != nil || !g.Now().ClockOK {
			t.Fatalf("2 of 3 agree: %v", err)
		}
	})
}

func TestNew_Validate(t *testing.T) {
	if _, err := New(Config{MaxClockError: eps}); err == nil {
		t.Fatal("no servers accepted")
	}
	if _, err := New(Config{Servers: []string{"a:1"}, MaxClockError: eps, MinAgree: 2}); err == nil {
		t.Fatal("MinAgree above server count accepted")
	}
}

// TestGuard_LeaseRefuses: a member whose guard measures its clock beyond ε
// refuses to acquire, and a holder whose clock goes bad loses its lease.
func TestGuard_LeaseRefuses(t *testing.T) {
	srv := chronyd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sk := &skewClock{}
	g := newGuard(t, []string{srv}, sk, func(c *Config) { c.JumpTolerance = time.Hour })
	if err := g.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	cfg := lease.DefaultConfig()
	cfg.LeaseDuration, cfg.MaxClockError, cfg.RoundTimeout, cfg.BackoffBase = 400*time.Millisecond, eps, 50*time.Millisecond, time.Millisecond
	cfg.ID, cfg.Group, cfg.Members, cfg.Clock = "solo", "g", []lease.Member{{ID: "solo", Addr: ln.Addr().String()}}, g
	ln.Close()
	n, err := lease.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	time.Sleep(time.Until(n.RecoveringUntil()))
	if err := g.Poll(ctx); err != nil { // fresh bound after the wait
		t.Fatal(err)
	}
	l, err := n.TryAcquire(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	sk.off.Store(int64(3 * eps))
	g.Poll(ctx)
	if l.Valid() {
		t.Fatal("lease valid on a clock the guard rejects")
	}
	select {
	case <-l.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed after the clock became unsafe")
	}
	if !errors.Is(l.Err(), lease.ErrClockUnsafe) {
		t.Fatalf("Err = %v, want ErrClockUnsafe", l.Err())
	}
	if _, err := n.TryAcquire(ctx, "s"); !errors.Is(err, lease.ErrClockUnsafe) {
		t.Fatalf("TryAcquire with an unsafe clock: %v", err)
	}
}
