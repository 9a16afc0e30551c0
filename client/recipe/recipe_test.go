package recipe_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"coord/client"
	"coord/client/recipe"
	"coord/coord"
	"coord/coord/coordtest"
	"coord/session"
)

func newClient(t *testing.T, eps []string) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Endpoints = eps
	cfg.SessionTimeout = 2 * time.Second
	c, err := client.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func cluster(t *testing.T, n int) *coordtest.Cluster {
	return coordtest.NewCluster(t, n, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.Sessions = session.Limits{Min: 500 * time.Millisecond, Max: 10 * time.Second, Default: 2 * time.Second}
	}})
}

// fencedResource accepts a write only with a token at least the highest
// seen, and detects overlapping critical sections.
type fencedResource struct {
	mu      sync.Mutex
	highest uint64
	inside  atomic.Int32
	writes  int
}

func (r *fencedResource) write(token uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if token < r.highest {
		return errors.New("stale token")
	}
	r.highest = token
	r.writes++
	return nil
}

func TestLock_MutualExclusionAndFencingAcrossLeaderKill(t *testing.T) {
	cl := cluster(t, 3)
	ctx := coordtest.Ctx(t, 90*time.Second)
	res := &fencedResource{}
	var tokens []uint64
	var tmu sync.Mutex
	const workers, rounds = 8, 12
	var wg sync.WaitGroup
	var overlap atomic.Bool
	killed := make(chan struct{})
	var acquired atomic.Int32
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t, cl.Addrs())
			l := recipe.NewLock(c, "/locks/job")
			for i := 0; i < rounds; i++ {
				token, err := l.Lock(ctx)
				if err != nil {
					t.Errorf("lock: %v", err)
					return
				}
				if acquired.Add(1) == workers*rounds/3 {
					close(killed)
				}
				if res.inside.Add(1) != 1 {
					overlap.Store(true)
				}
				if err := res.write(token); err != nil {
					t.Errorf("token %d rejected: %v", token, err)
				}
				tmu.Lock()
				tokens = append(tokens, token)
				tmu.Unlock()
				time.Sleep(2 * time.Millisecond)
				res.inside.Add(-1)
				if err := l.Unlock(ctx); err != nil {
					t.Errorf("unlock: %v", err)
					return
				}
			}
		}()
	}
	<-killed
	cl.Stop(cl.Leader())
	wg.Wait()
	if overlap.Load() {
		t.Fatal("two holders in the critical section at once")
	}
	if len(tokens) != workers*rounds {
		t.Fatalf("%d acquisitions, want %d", len(tokens), workers*rounds)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("fencing tokens not strictly increasing: %d then %d", tokens[i-1], tokens[i])
		}
	}
}

func TestLock_TryLockLostAndGuard(t *testing.T) {
	cl := cluster(t, 1)
	ctx := coordtest.Ctx(t, 30*time.Second)
	a, b := newClient(t, cl.Addrs()), newClient(t, cl.Addrs())
	la, lb := recipe.NewLock(a, "/l"), recipe.NewLock(b, "/l")
	tokA, err := la.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.TryLock(ctx); !errors.Is(err, recipe.ErrLocked) {
		t.Fatalf("TryLock while held: %v", err)
	}
	// Guarded writes succeed while held.
	if _, err := la.Guard(ctx, client.CreateOp("/protected", []byte("a"), nil)); err != nil {
		t.Fatalf("guard while held: %v", err)
	}
	// Someone deletes the holder's node: Lost closes, Guard refuses.
	if err := b.Delete(ctx, la.Node(), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-la.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost did not close after the node was deleted")
	}
	if _, err := la.Guard(ctx, client.SetOp("/protected", []byte("stale"), -1)); !errors.Is(err, recipe.ErrLost) {
		t.Fatalf("guard after loss: %v", err)
	}
	tokB, err := lb.TryLock(ctx)
	if err != nil || tokB <= tokA {
		t.Fatalf("second holder token %d (first %d): %v", tokB, tokA, err)
	}
	if data, _, _ := b.Get(ctx, "/protected", nil); string(data) != "a" {
		t.Fatalf("stale guarded write landed: %q", data)
	}
}

func TestLock_LostOnSessionExpiry(t *testing.T) {
	cl := cluster(t, 1)
	ctx := coordtest.Ctx(t, 30*time.Second)
	cfg := client.DefaultConfig()
	cfg.Endpoints = cl.Addrs()
	cfg.SessionTimeout = 500 * time.Millisecond
	c, err := client.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := recipe.NewLock(c, "/exp")
	if _, err := l.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	// Kill the server side of the session: close it from another client.
	conn := cl.Conn(0)
	if _, err := conn.CloseSession(ctx, closeReq(c.SessionID())); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost did not close after the session ended")
	}
	c.Close(ctx)
}

func TestElection_HandoverAndObserve(t *testing.T) {
	cl := cluster(t, 3)
	ctx := coordtest.Ctx(t, 60*time.Second)
	obs := newClient(t, cl.Addrs())
	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	seen := recipe.Observe(octx, obs, "/election")
	a, b := newClient(t, cl.Addrs()), newClient(t, cl.Addrs())
	ea, eb := recipe.NewElection(a, "/election"), recipe.NewElection(b, "/election")
	tokA, err := ea.Campaign(ctx, []byte("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	won := make(chan uint64, 1)
	go func() {
		tok, err := eb.Campaign(ctx, []byte("beta"))
		if err != nil {
			t.Errorf("campaign b: %v", err)
		}
		won <- tok
	}()
	waitLeader := func(want string) recipe.LeaderInfo {
		t.Helper()
		for {
			select {
			case li := <-seen:
				if string(li.Proposal) == want {
					return li
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("observer never saw %q lead", want)
			}
		}
	}
	if li := waitLeader("alpha"); li.Token != tokA {
		t.Fatalf("observed token %d, campaign returned %d", li.Token, tokA)
	}
	if li, err := recipe.Leader(ctx, obs, "/election"); err != nil || string(li.Proposal) != "alpha" {
		t.Fatalf("Leader = %q, %v", li.Proposal, err)
	}
	// The leader's client dies: its session ends, b takes over.
	a.Close(ctx)
	var tokB uint64
	select {
	case tokB = <-won:
	case <-time.After(10 * time.Second):
		t.Fatal("b never won")
	}
	if tokB <= tokA {
		t.Fatalf("term tokens %d then %d", tokA, tokB)
	}
	if li := waitLeader("beta"); li.Token != tokB {
		t.Fatalf("observed %d, want %d", li.Token, tokB)
	}
	if err := eb.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := recipe.Leader(ctx, obs, "/election"); !errors.Is(err, recipe.ErrNoLeader) {
		t.Fatalf("after resign: %v", err)
	}
}
