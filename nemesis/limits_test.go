package nemesis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"coord/client"
	"coord/coord"
	"coord/coord/coordtest"
	"coord/coord/rpc"
	"coord/proto/coordpb"
)

// TestLimits: each limit the server enforces answers with a typed error
// and a message naming the limit (README "Limits").
func TestLimits(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.MaxDataBytes = 1024
		cfg.MaxRequestBytes = 1024 + 128<<10
	}})
	// One context for every limit: the watch limit alone opens 10,000
	// watches, which takes most of 30 s on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Endpoints: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(ctx)

	t.Run("data size", func(t *testing.T) {
		_, _, err := cl.Create(ctx, "/big", make([]byte, 1025), nil)
		if !errors.Is(err, client.ErrDataTooLarge) || !strings.Contains(err.Error(), "limit is 1024") {
			t.Fatalf("got %v, want ErrDataTooLarge naming the limit", err)
		}
	})
	t.Run("request size", func(t *testing.T) {
		var ops []client.Op
		for i := 0; i < 200; i++ {
			ops = append(ops, client.CreateOp(fmt.Sprintf("/r%d", i), make([]byte, 1000), nil))
		}
		_, err := cl.Multi(ctx, ops...)
		if !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), "larger than max") {
			t.Fatalf("got %v, want a refusal naming the request size limit", err)
		}
	})
	t.Run("ops per multi", func(t *testing.T) {
		ops := make([]client.Op, rpc.MaxMultiOps+1)
		for i := range ops {
			ops[i] = client.CheckOp("/", -1)
		}
		_, err := cl.Multi(ctx, ops...)
		if !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), fmt.Sprintf("limit is %d", rpc.MaxMultiOps)) {
			t.Fatalf("got %v, want ErrInvalidArgument naming the limit", err)
		}
		if _, err := cl.Multi(ctx, ops[:rpc.MaxMultiOps]...); err != nil {
			t.Fatalf("a multi at the limit: %v", err)
		}
	})
	t.Run("watches per stream", func(t *testing.T) {
		if testing.Short() {
			t.Skip("10,001 watches; skipped in -short")
		}
		// 10,001 creates take seconds on a loaded machine: its own bound.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		stream, err := c.Conn(0).Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.CloseSend()
		const limit = 10_000 // coord/watch.go maxWatchesPerStream
		go func() {
			for i := 1; i <= limit+1; i++ {
				if stream.Send(&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Create{Create: &coordpb.WatchCreate{WatchId: int64(i), Path: "/", Kind: coordpb.WatchKind_WATCH_PERSISTENT}}}) != nil {
					return
				}
			}
		}()
		for created := 0; ; {
			r, err := stream.Recv()
			if err != nil {
				t.Fatalf("after %d watches: %v", created, err)
			}
			if r.Created {
				created++
				continue
			}
			if r.Canceled && r.Error != "" {
				if r.WatchId != limit+1 || created != limit || !strings.Contains(r.Error, "limit 10000") {
					t.Fatalf("watch %d refused after %d created: %q", r.WatchId, created, r.Error)
				}
				return
			}
		}
	})
	t.Run("children page", func(t *testing.T) {
		if _, _, err := cl.Create(ctx, "/p", nil, nil); err != nil {
			t.Fatal(err)
		}
		var ops []client.Op
		for i := 0; i < 30; i++ {
			ops = append(ops, client.CreateOp(fmt.Sprintf("/p/c%02d", i), nil, nil))
		}
		if _, err := cl.Multi(ctx, ops...); err != nil {
			t.Fatal(err)
		}
		names, _, more, err := cl.ChildrenPage(ctx, "/p", "", 10, nil)
		if err != nil || len(names) != 10 || !more {
			t.Fatalf("page of 10: %d names, more=%v, %v", len(names), more, err)
		}
		_, _, _, err = cl.ChildrenPage(ctx, "/p", "", -1, nil)
		if !errors.Is(err, client.ErrInvalidArgument) {
			t.Fatalf("negative page: got %v, want ErrInvalidArgument", err)
		}
	})
}

// TestLimits_SessionsPerAddress: one client address cannot hold more than
// the limit of live sessions on a node; closing one makes room.
func TestLimits_SessionsPerAddress(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.MaxSessionsPerAddress = 3
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := c.Conn(0)
	var ids []uint64
	for i := 0; i < 3; i++ {
		r, err := conn.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: 5000})
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		ids = append(ids, r.SessionId)
	}
	cl, err := client.New(ctx, client.Config{Endpoints: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close(ctx)
	_, err = cl.Session(ctx)
	if !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), "the limit is 3") {
		t.Fatalf("fourth session: got %v, want ErrInvalidArgument naming the limit", err)
	}
	if _, err := conn.CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: ids[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: 5000}); err != nil {
		t.Fatalf("after closing one: %v", err)
	}
}
