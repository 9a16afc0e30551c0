package recipe_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"coord/client/recipe"
	"coord/coord/coordtest"
)

func TestRWLock_ReadersShareWritersExclude(t *testing.T) {
	cl := cluster(t, 1)
	ctx := coordtest.Ctx(t, 30*time.Second)
	r1 := recipe.NewReadLock(newClient(t, cl.Addrs()), "/rw")
	r2 := recipe.NewReadLock(newClient(t, cl.Addrs()), "/rw")
	w := recipe.NewWriteLock(newClient(t, cl.Addrs()), "/rw")
	if _, err := r1.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.TryLock(ctx); err != nil {
		t.Fatalf("second reader blocked by a reader: %v", err)
	}
	if _, err := w.TryLock(ctx); !errors.Is(err, recipe.ErrLocked) {
		t.Fatalf("writer got in with readers: %v", err)
	}
	got := make(chan error, 1)
	go func() { _, err := w.Lock(ctx); got <- err }()
	time.Sleep(200 * time.Millisecond)
	// A reader arriving after a queued writer waits for it.
	r3 := recipe.NewReadLock(newClient(t, cl.Addrs()), "/rw")
	if _, err := r3.TryLock(ctx); !errors.Is(err, recipe.ErrLocked) {
		t.Fatalf("reader overtook a queued writer: %v", err)
	}
	select {
	case err := <-got:
		t.Fatalf("writer got the lock while readers hold it: %v", err)
	default:
	}
	r1.Unlock(ctx)
	r2.Unlock(ctx)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("writer never got the lock")
	}
}

func TestSemaphore_AtMostNHolders(t *testing.T) {
	cl := cluster(t, 1)
	ctx := coordtest.Ctx(t, 30*time.Second)
	const n, workers = 3, 8
	var inside, peak atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := recipe.NewSemaphore(newClient(t, cl.Addrs()), "/sem", n)
			for r := 0; r < 3; r++ {
				if _, err := s.Lock(ctx); err != nil {
					t.Error(err)
					return
				}
				v := inside.Add(1)
				for {
					p := peak.Load()
					if v <= p || peak.CompareAndSwap(p, v) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				inside.Add(-1)
				s.Unlock(ctx)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > n || p < 2 {
		t.Fatalf("peak holders %d, want 2..%d", p, n)
	}
}

func TestBarrier_WaitUntilRemoved(t *testing.T) {
	cl := cluster(t, 1)
	ctx := coordtest.Ctx(t, 30*time.Second)
	b := recipe.NewBarrier(newClient(t, cl.Addrs()), "/barriers/start")
	if err := b.Set(ctx); err != nil {
		t.Fatal(err)
	}
	released := make(chan error, 1)
	go func() { released <- recipe.NewBarrier(newClient(t, cl.Addrs()), "/barriers/start").Wait(ctx) }()
	select {
	case <-released:
		t.Fatal("Wait returned while the barrier stands")
	case <-time.After(300 * time.Millisecond):
	}
	if err := b.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-released:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not released")
	}
}

func TestGroup_MembersFollowSessions(t *testing.T) {
	cl := cluster(t, 1)
	ctx := coordtest.Ctx(t, 30*time.Second)
	watcher := recipe.NewGroup(newClient(t, cl.Addrs()), "/members")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lists := watcher.Watch(wctx)
	a := newClient(t, cl.Addrs())
	if err := recipe.NewGroup(a, "/members").Join(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	if err := recipe.NewGroup(newClient(t, cl.Addrs()), "/members").Join(ctx, "b", nil); err != nil {
		t.Fatal(err)
	}
	waitFor := func(want []string) {
		t.Helper()
		for {
			select {
			case l := <-lists:
				if reflect.DeepEqual(l, want) || (len(want) == 0 && len(l) == 0) {
					return
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("member list never became %v", want)
			}
		}
	}
	waitFor([]string{"a", "b"})
	a.Close(ctx) // a's session ends: it leaves the group
	waitFor([]string{"b"})
	if err := recipe.NewGroup(a, "/members").Join(ctx, "bad/name", nil); err == nil {
		t.Fatal("joined with a slash in the name")
	}
}
