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
	const watchesPerStream, watchesPerNode = 100, 150
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.MaxDataBytes = 1024
		cfg.MaxRequestBytes = 1024 + 128<<10
		cfg.MaxWatchesPerStream = watchesPerStream
		cfg.MaxWatches = watchesPerNode
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
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
	srv := c.Node(0).Server
	// waitWatches: the node's count reaches n (a closed stream's watches
	// go when the server sees it close).
	waitWatches := func(t *testing.T, n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); srv.Watches() != n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the node counts %d watches, want %d", srv.Watches(), n)
			}
		}
	}
	t.Run("watches per stream", func(t *testing.T) {
		stream, closeStream := openWatchStream(ctx, t, c)
		defer func() { closeStream(); waitWatches(t, 0) }()
		for i := int64(1); i <= watchesPerStream; i++ {
			if msg := createWatch(t, stream, i, "/quiet", coordpb.WatchKind_WATCH_PERSISTENT); msg != "" {
				t.Fatalf("watch %d refused under the stream's limit: %q", i, msg)
			}
		}
		msg := createWatch(t, stream, watchesPerStream+1, "/quiet", coordpb.WatchKind_WATCH_PERSISTENT)
		if !strings.Contains(msg, fmt.Sprintf("too many watches on one stream (limit %d)", watchesPerStream)) {
			t.Fatalf("watch %d: got %q, want the stream's limit named", watchesPerStream+1, msg)
		}
	})
	t.Run("watches per node", func(t *testing.T) {
		waitWatches(t, 0) // the stream above is closed
		a, closeA := openWatchStream(ctx, t, c)
		b, _ := openWatchStream(ctx, t, c)
		id := int64(0)
		fill := func(stream coordpb.Coord_WatchClient, n int) {
			t.Helper()
			for ; n > 0; n-- {
				id++
				if msg := createWatch(t, stream, id, "/quiet", coordpb.WatchKind_WATCH_PERSISTENT); msg != "" {
					t.Fatalf("watch %d refused under the node's limit: %q", id, msg)
				}
			}
		}
		refused := func(stream coordpb.Coord_WatchClient, kind coordpb.WatchKind) {
			t.Helper()
			id++
			msg := createWatch(t, stream, id, "/quiet", kind)
			if !strings.Contains(msg, fmt.Sprintf("too many watches on this node (limit %d)", watchesPerNode)) {
				t.Fatalf("watch %d: got %q, want the node's limit named", id, msg)
			}
		}
		const onA = watchesPerStream - 10 // a keeps room under its own limit
		fill(a, onA)
		fill(b, watchesPerNode-onA-1)
		// The last place goes to a one-shot watch; when it fires, its
		// place is free again.
		if _, _, err := cl.Create(ctx, "/fire", nil, nil); err != nil {
			t.Fatal(err)
		}
		id++
		oneShot := id
		if msg := createWatch(t, b, oneShot, "/fire", coordpb.WatchKind_WATCH_DATA); msg != "" {
			t.Fatalf("one-shot watch refused at the last place: %q", msg)
		}
		refused(b, coordpb.WatchKind_WATCH_PERSISTENT)
		refused(a, coordpb.WatchKind_WATCH_DATA)
		waitWatches(t, watchesPerNode) // refusals hold no place
		if _, err := cl.Set(ctx, "/fire", []byte("x"), -1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, b, func(r *coordpb.WatchResponse) bool { return r.WatchId == oneShot && r.Canceled })
		waitWatches(t, watchesPerNode-1) // a fired one-shot watch is gone
		fill(b, 1)
		refused(b, coordpb.WatchKind_WATCH_PERSISTENT)
		// A cancelled watch frees its place.
		if err := a.Send(&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Cancel{Cancel: &coordpb.WatchCancel{WatchId: 1}}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, a, func(r *coordpb.WatchResponse) bool { return r.WatchId == 1 && r.Canceled })
		fill(a, 1)
		refused(a, coordpb.WatchKind_WATCH_PERSISTENT)
		// A closed stream frees all of its places.
		closeA()
		waitWatches(t, watchesPerNode-onA)
		fill(b, 10)
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

// openWatchStream opens a raw watch stream on the cluster's first node;
// the returned func closes it (the test's cleanup does too).
func openWatchStream(ctx context.Context, t *testing.T, c *coordtest.Cluster) (coordpb.Coord_WatchClient, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	stream, err := c.Conn(0).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream, cancel
}

// createWatch asks for a watch and returns "" when it is created or the
// server's refusal.
func createWatch(t *testing.T, stream coordpb.Coord_WatchClient, id int64, path string, kind coordpb.WatchKind) string {
	t.Helper()
	if err := stream.Send(&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Create{Create: &coordpb.WatchCreate{WatchId: id, Path: path, Kind: kind}}}); err != nil {
		t.Fatalf("watch %d: %v", id, err)
	}
	var msg string
	waitFor(t, stream, func(r *coordpb.WatchResponse) bool {
		if r.WatchId != id {
			return false
		}
		msg = r.Error
		return r.Created || r.Canceled
	})
	return msg
}

// waitFor reads the stream until done accepts a response.
func waitFor(t *testing.T, stream coordpb.Coord_WatchClient, done func(*coordpb.WatchResponse) bool) {
	t.Helper()
	for {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if done(r) {
			return
		}
	}
}
