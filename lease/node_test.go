package lease

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestNode_AcquireRenewRelease(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitReady()
	ctx := ctxT(t, 10*time.Second)
	l, err := c.nodes[0].Acquire(ctx, "shard-1")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Valid() || l.Holder() != "m0" || l.Epoch() == 0 {
		t.Fatalf("fresh lease: valid=%v holder=%s epoch=%d", l.Valid(), l.Holder(), l.Epoch())
	}
	// Others see it held.
	_, err = c.nodes[1].TryAcquire(ctx, "shard-1")
	var held *HeldError
	if !errors.As(err, &held) || held.Holder != "m0" || held.Epoch != l.Epoch() {
		t.Fatalf("TryAcquire on a held resource: %v", err)
	}
	// Automatic renewal keeps it valid well past one lease duration.
	exp := l.Expiry()
	time.Sleep(2 * c.nodes[0].Config().LeaseDuration)
	if !l.Valid() || !l.Expiry().After(exp) {
		t.Fatalf("lease not renewed: valid=%v expiry %v → %v, err=%v", l.Valid(), exp, l.Expiry(), l.Err())
	}
	info, err := c.nodes[2].Holder(ctx, "shard-1")
	if err != nil || info.Holder != "m0" || info.Epoch != l.Epoch() {
		t.Fatalf("Holder = %+v, %v", info, err)
	}
	// Release: invalid at once; another member acquires long before expiry.
	expiry := l.Expiry()
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if l.Valid() || !errors.Is(l.Err(), ErrReleased) {
		t.Fatalf("after release: valid=%v err=%v", l.Valid(), l.Err())
	}
	l2, err := c.nodes[1].TryAcquire(ctx, "shard-1")
	if err != nil {
		t.Fatalf("TryAcquire after release: %v", err)
	}
	if !time.Now().Before(expiry) {
		t.Fatalf("acquired only after the released lease's expiry")
	}
	if l2.Epoch() <= l.Epoch() {
		t.Fatalf("epoch %d after release not above %d", l2.Epoch(), l.Epoch())
	}
	if err := l.Release(ctx); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("second release: %v, want ErrNotOwner", err)
	}
}

func TestNode_KillHolder(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitReady()
	ctx := ctxT(t, 20*time.Second)
	l, err := c.nodes[0].Acquire(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	expiry := l.Expiry()
	eps := c.nodes[0].Config().MaxClockError
	c.kill(0)
	l1, err := c.nodes[1].Acquire(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); !now.After(expiry.Add(eps)) {
		t.Fatalf("took over at %v, before the dead holder's expiry+ε %v", now, expiry.Add(eps))
	}
	if l1.Epoch() <= l.Epoch() {
		t.Fatalf("takeover epoch %d not above %d", l1.Epoch(), l.Epoch())
	}
	// The restarted member is silent in every role for its restart wait.
	c.start(0, nil)
	if _, err := c.nodes[0].TryAcquire(ctx, "other"); !errors.Is(err, ErrRecovering) {
		t.Fatalf("TryAcquire inside the restart wait: %v, want ErrRecovering", err)
	}
	c.waitReady()
	if _, err := c.nodes[0].TryAcquire(ctx, "r"); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("restarted member: %v, want ErrLeaseHeld", err)
	}
}

// TestNode_PartitionedHolder: a holder cut off from the group must find
// Valid() false before anyone else can acquire, and Done must fire.
func TestNode_PartitionedHolder(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitReady()
	ctx := ctxT(t, 20*time.Second)
	l, err := c.nodes[0].Acquire(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	var lastValid atomic.Int64 // unix ns of the last Valid()==true sample
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if l.Valid() {
				lastValid.Store(time.Now().UnixNano())
			}
		}
	}()
	c.isolate(0, true)
	l1, err := c.nodes[1].Acquire(ctx, "r")
	acquiredAt := time.Now().UnixNano()
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-sampled
	if l.Valid() {
		t.Fatal("partitioned holder still valid after another member acquired")
	}
	if lv := lastValid.Load(); lv == 0 || lv >= acquiredAt {
		t.Fatalf("holder valid at %d, not before the takeover at %d", lv, acquiredAt)
	}
	select {
	case <-l.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed for a lost lease")
	}
	if err := l.Err(); !errors.Is(err, ErrExpired) && !errors.Is(err, ErrRenewFailed) {
		t.Fatalf("lost lease Err = %v", err)
	}
	if l.Context().Err() == nil {
		t.Fatal("lease context not cancelled")
	}
	if l1.Epoch() <= l.Epoch() {
		t.Fatalf("epoch %d not above %d", l1.Epoch(), l.Epoch())
	}
	c.isolate(0, false)
}

func TestNode_AcquireContext(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitReady()
	ctx := ctxT(t, 10*time.Second)
	l, err := c.nodes[0].Acquire(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.nodes[1].Acquire(short, "r"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire of a held lease with a short ctx: %v", err)
	}
	// Same process: a second caller waits until the first lease ends.
	got := make(chan *Lease, 1)
	go func() {
		l2, err := c.nodes[0].Acquire(ctx, "r")
		if err != nil {
			t.Error(err)
		}
		got <- l2
	}()
	select {
	case <-got:
		t.Fatal("second local caller got a lease that is still handed out")
	case <-time.After(100 * time.Millisecond):
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := <-got
	if l2 == nil || l2 == l || l2.Epoch() <= l.Epoch() {
		t.Fatalf("second local caller: %v", l2)
	}
	if _, err := c.nodes[0].Acquire(ctx, ""); !errors.Is(err, ErrBadResource) {
		t.Fatalf("empty resource: %v", err)
	}
}

func TestNode_Watch(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitReady()
	ctx := ctxT(t, 10*time.Second)
	wctx, wcancel := context.WithCancel(ctx)
	ev, err := c.nodes[1].Watch(wctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.nodes[0].Acquire(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	for e := range ev {
		if e.Kind == EventHolderChanged && e.Holder == "m0" && e.Epoch == l.Epoch() {
			break
		}
	}
	wcancel()
	for range ev { // must be closed after cancel
	}
}

func TestNode_ConfigMismatch(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		if cfg.ID == "m2" {
			cfg.Version = 2
		}
	})
	c.waitReady()
	ctx := ctxT(t, 10*time.Second)
	// m2 disagrees on the version: m0 and m1 still form a majority.
	if _, err := c.nodes[0].Acquire(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	// m2 alone cannot: every peer refuses it.
	if _, err := c.nodes[2].TryAcquire(ctx, "s"); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("member with another config version: %v, want ErrNoQuorum", err)
	}
}
