package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"coord/client"
	"coord/coord/coordtest"
)

func newClient(t *testing.T, endpoints ...string) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Endpoints = endpoints
	cfg.RequestTimeout = 10 * time.Second
	c, err := client.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestCluster_OpsAndErrors(t *testing.T) {
	cl := coordtest.NewCluster(t, 1, coordtest.Options{})
	// The first endpoint is dead: the client fails over, even for writes
	// (a refused connection cannot have applied anything).
	c := newClient(t, deadAddr(t), cl.Addrs()[0])
	ctx := coordtest.Ctx(t, 20*time.Second)

	p, st, err := c.Create(ctx, "/a", []byte("x"), nil)
	if err != nil || p != "/a" || st.Version != 0 {
		t.Fatalf("create = %q %v %v", p, st, err)
	}
	if _, _, err := c.Create(ctx, "/a", nil, nil); !errors.Is(err, client.ErrNodeExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, _, err := c.Get(ctx, "/missing", nil); !errors.Is(err, client.ErrNoNode) || err.Error() != "node does not exist" {
		t.Fatalf("get missing: %v", err)
	}
	if _, _, err := c.Create(ctx, "bad", nil, nil); !errors.Is(err, client.ErrInvalidPath) {
		t.Fatalf("bad path: %v", err)
	}
	if _, _, err := c.Create(ctx, "/big", make([]byte, 2<<20), nil); !errors.Is(err, client.ErrDataTooLarge) && !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("oversized data: %v", err)
	}
	if _, _, err := c.Create(ctx, "/big", make([]byte, 1<<20+1), nil); !errors.Is(err, client.ErrDataTooLarge) {
		t.Fatalf("data just over the limit: %v", err)
	}
	if _, err := c.Set(ctx, "/a", []byte("y"), 5); !errors.Is(err, client.ErrBadVersion) {
		t.Fatalf("stale set: %v", err)
	}
	seq, _, err := c.Create(ctx, "/a/s-", nil, &client.CreateOptions{Sequential: true})
	if err != nil || seq != "/a/s-0000000000" {
		t.Fatalf("sequential: %q %v", seq, err)
	}
	if err := c.Delete(ctx, "/a", -1); !errors.Is(err, client.ErrNotEmpty) {
		t.Fatalf("delete non-empty: %v", err)
	}
	_, err = c.Multi(ctx, client.CreateOp("/m1", nil, nil), client.SetOp("/a", nil, 7))
	var me *client.MultiError
	if !errors.As(err, &me) || me.Index != 1 || !errors.Is(err, client.ErrBadVersion) {
		t.Fatalf("multi: %v", err)
	}
	if st, err := c.Exists(ctx, "/m1", nil); err != nil || st != nil {
		t.Fatalf("failed multi left /m1: %v %v", st, err)
	}
	if n, err := c.DeleteAll(ctx, "/a", -1); err != nil || n != 2 {
		t.Fatalf("delete all: %d %v", n, err)
	}
}

func TestCluster_ChildrenPaging(t *testing.T) {
	cl := coordtest.NewCluster(t, 1, coordtest.Options{})
	c := newClient(t, cl.Addrs()...)
	ctx := coordtest.Ctx(t, 60*time.Second)
	if _, _, err := c.Create(ctx, "/p", nil, nil); err != nil {
		t.Fatal(err)
	}
	const n = 12000 // more than two server pages
	ops := make([]client.Op, 0, 1000)
	for i := 0; i < n; i++ {
		ops = append(ops, client.CreateOp(fmt.Sprintf("/p/c%05d", i), nil, nil))
		if len(ops) == cap(ops) {
			if _, err := c.Multi(ctx, ops...); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	names, st, err := c.Children(ctx, "/p", nil)
	if err != nil || len(names) != n || st.NumChildren != n || names[0] != "c00000" || names[n-1] != fmt.Sprintf("c%05d", n-1) {
		t.Fatalf("children: %d names, stat %v, %v", len(names), st, err)
	}
}

func TestCluster_SessionEphemeralsAndLocalReads(t *testing.T) {
	cl := coordtest.NewCluster(t, 3, coordtest.Options{})
	ctx := coordtest.Ctx(t, 30*time.Second)
	writer := newClient(t, cl.Addrs()[cl.Leader()])
	if _, _, err := writer.Create(ctx, "/e", []byte("mine"), &client.CreateOptions{Ephemeral: true}); err != nil {
		t.Fatal(err)
	}
	if writer.SessionID() == 0 {
		t.Fatal("no session opened")
	}
	st, err := writer.Exists(ctx, "/e", nil)
	if err != nil || st == nil || st.EphemeralOwner != writer.SessionID() || st.Mode != client.ModeEphemeral {
		t.Fatalf("ephemeral stat: %v %v", st, err)
	}
	// Local reads on a follower never go back in time for this client.
	reader := newClient(t, cl.Addrs()[cl.Follower()])
	for i := 0; i < 20; i++ {
		if _, err := reader.Set(ctx, "/e", []byte(fmt.Sprint(i)), -1); err != nil {
			t.Fatal(err)
		}
		data, _, err := reader.Get(ctx, "/e", &client.ReadOptions{Local: true})
		if err != nil || string(data) != fmt.Sprint(i) {
			t.Fatalf("local read after own write %d: %q %v", i, data, err)
		}
	}
	// Close ends the session: its ephemeral goes at once.
	if err := writer.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := reader.Exists(ctx, "/e", nil); err != nil || st != nil {
		t.Fatalf("ephemeral after close: %v %v", st, err)
	}
	if _, _, err := writer.Get(ctx, "/", nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("closed client: %v", err)
	}
}
