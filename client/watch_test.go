package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"coord/client"
	"coord/coord"
	"coord/coord/coordtest"
)

func nextEvent(t *testing.T, w *client.Watch) client.Event {
	t.Helper()
	select {
	case e, ok := <-w.Events:
		if !ok {
			t.Fatalf("watch ended: %v", w.Err())
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event in time")
	}
	return client.Event{}
}

func TestWatch_GetWFiresOnceOnChange(t *testing.T) {
	cl := coordtest.NewCluster(t, 3, coordtest.Options{})
	ctx := coordtest.Ctx(t, 30*time.Second)
	c := newClient(t, cl.Addrs()[cl.Follower()])
	other := newClient(t, cl.Addrs()[cl.Leader()])
	if _, _, err := other.Create(ctx, "/cfg", []byte("v1"), nil); err != nil {
		t.Fatal(err)
	}
	data, _, w, err := c.GetW(ctx, "/cfg")
	if err != nil || string(data) != "v1" {
		t.Fatalf("GetW: %q %v", data, err)
	}
	st, err := other.Set(ctx, "/cfg", []byte("v2"), -1)
	if err != nil {
		t.Fatal(err)
	}
	e := nextEvent(t, w)
	if e.Type != client.EventDataChanged || e.Path != "/cfg" || e.Zxid != st.Mzxid {
		t.Fatalf("event = %+v, want changed /cfg at %d", e, st.Mzxid)
	}
	// One-shot: the channel closes, no second event.
	if _, ok := <-w.Events; ok {
		t.Fatal("one-shot watch delivered twice")
	}
	if w.Err() != nil {
		t.Fatalf("fired watch Err = %v", w.Err())
	}
	// ExistsW on a missing node fires on create.
	st0, ew, err := c.ExistsW(ctx, "/later")
	if err != nil || st0 != nil {
		t.Fatalf("ExistsW: %v %v", st0, err)
	}
	if _, _, err := other.Create(ctx, "/later", nil, nil); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, ew); e.Type != client.EventCreated {
		t.Fatalf("exists event %+v", e)
	}
	// ChildrenW fires on a new child.
	_, _, cw, err := c.ChildrenW(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Create(ctx, "/third", nil, nil); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, cw); e.Type != client.EventChildrenChanged || e.Path != "/" {
		t.Fatalf("children event %+v", e)
	}
}

// TestWatch_RecursiveSurvivesServerKill: the watch's server is killed;
// the watch resumes on another server from the last zxid it delivered:
// every acknowledged write's event arrives once, in zxid order.
func TestWatch_RecursiveSurvivesServerKill(t *testing.T) {
	cl := coordtest.NewCluster(t, 3, coordtest.Options{})
	ctx := coordtest.Ctx(t, 60*time.Second)
	li := cl.Leader()
	// The watcher lists the leader first: its stream starts there.
	eps := []string{cl.Addrs()[li]}
	for i, a := range cl.Addrs() {
		if i != li {
			eps = append(eps, a)
		}
	}
	wc := newClient(t, eps...)
	writer := newClient(t, cl.Addrs()...)
	if _, err := writer.Session(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := writer.Create(ctx, "/r", nil, nil); err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, "/r", client.WatchRecursive, 0)
	if err != nil {
		t.Fatal(err)
	}
	var acked []uint64
	for i := 0; i < 300; i++ {
		if i == 100 {
			cl.Stop(li)
		}
		_, st, err := writer.Create(ctx, fmt.Sprintf("/r/n%03d", i), nil, nil)
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		acked = append(acked, st.Czxid)
	}
	var got []client.Event
	for len(got) < len(acked) {
		got = append(got, nextEvent(t, w))
	}
	for i, e := range got {
		if e.Type != client.EventCreated || e.Path != fmt.Sprintf("/r/n%03d", i) || e.Zxid != acked[i] {
			t.Fatalf("event %d = %+v, want created /r/n%03d at %d", i, e, i, acked[i])
		}
	}
	w.Cancel()
	<-w.Done()
}

func TestWatch_CompactedIsReported(t *testing.T) {
	cl := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) { cfg.WatchHistory = 10 }})
	ctx := coordtest.Ctx(t, 20*time.Second)
	c := newClient(t, cl.Addrs()...)
	_, st, err := c.Create(ctx, "/x0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 40; i++ {
		if _, _, err := c.Create(ctx, fmt.Sprintf("/x%d", i), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.Watch(ctx, "/", client.WatchRecursive, st.Czxid)
	if !errors.Is(err, client.ErrCompacted) {
		t.Fatalf("watch from a compacted zxid: %v", err)
	}
	if _, err := c.Watch(context.Background(), "bad", client.WatchData, 0); !errors.Is(err, client.ErrInvalidArgument) && !errors.Is(err, client.ErrInvalidPath) {
		t.Fatalf("bad path: %v", err)
	}
}

// TestWatch_EventBeforeRead: a read that reflects a change returns only
// after the watch event for that change is queued, even though the write
// came from another client through another server.
func TestWatch_EventBeforeRead(t *testing.T) {
	cl := coordtest.NewCluster(t, 3, coordtest.Options{})
	ctx := coordtest.Ctx(t, 60*time.Second)
	c := newClient(t, cl.Addrs()[cl.Follower()])
	writer := newClient(t, cl.Addrs()[cl.Leader()])
	if _, _, err := writer.Create(ctx, "/o", []byte("0"), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx, "/"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, "/o", client.WatchPersistent, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range w.Events {
		}
	}()
	for i := 1; i <= 150; i++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			writer.Set(ctx, "/o", []byte(fmt.Sprint(i)), -1)
		}()
		_, st, err := c.Get(ctx, "/o", &client.ReadOptions{Local: true})
		if err != nil {
			t.Fatal(err)
		}
		if q := w.Queued(); q < st.Mzxid {
			t.Fatalf("read returned data of zxid %d before its watch event was queued (queued up to %d)", st.Mzxid, q)
		}
		<-done
	}
}
