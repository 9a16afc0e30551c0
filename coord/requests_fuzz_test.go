package coord_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// coordRequests names every Coord request type, in the order the fuzz
// input's first byte selects them.
var coordRequests = []func() proto.Message{
	func() proto.Message { return new(coordpb.CreateRequest) },
	func() proto.Message { return new(coordpb.DeleteRequest) },
	func() proto.Message { return new(coordpb.SetRequest) },
	func() proto.Message { return new(coordpb.GetRequest) },
	func() proto.Message { return new(coordpb.ExistsRequest) },
	func() proto.Message { return new(coordpb.ChildrenRequest) },
	func() proto.Message { return new(coordpb.MultiRequest) },
	func() proto.Message { return new(coordpb.SyncRequest) },
	func() proto.Message { return new(coordpb.OpenSessionRequest) },
	func() proto.Message { return new(coordpb.KeepAliveRequest) },
	func() proto.Message { return new(coordpb.CloseSessionRequest) },
	func() proto.Message { return new(coordpb.MembersRequest) },
	func() proto.Message { return new(coordpb.AddMemberRequest) },
	func() proto.Message { return new(coordpb.RemoveMemberRequest) },
	func() proto.Message { return new(coordpb.StatusRequest) },
	func() proto.Message { return new(coordpb.SnapshotRequest) },
	func() proto.Message { return new(coordpb.WatchRequest) },
}

// checkStatus: a refused request carries a gRPC status that is not
// Unknown (a raw error escaped the error table) and not Internal (the
// server hit something it did not expect).
func checkStatus(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || errors.Is(err, io.EOF) {
		return
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%s: error without a gRPC status: %v", what, err)
	}
	switch st.Code() {
	case codes.Unknown, codes.Internal:
		t.Fatalf("%s: %v", what, err)
	}
}

// FuzzCoordRequests decodes arbitrary bytes as each Coord request type
// and sends it to a real in-process server over TCP: no panic, no raw or
// internal error, and the server keeps serving.
func FuzzCoordRequests(f *testing.F) {
	c := coordtest.NewCluster(f, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.MaxDataBytes = 4096
		cfg.MaxRequestBytes = 4096 + 128<<10
	}})
	cl := c.Conn(0)
	for i, m := range []proto.Message{
		&coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/a", Data: []byte("x")}},
		&coordpb.DeleteRequest{Op: &coordpb.DeleteOp{Path: "/a", Version: -1}},
		&coordpb.SetRequest{Op: &coordpb.SetOp{Path: "/a", Data: []byte("y"), Version: 3}},
		&coordpb.GetRequest{Path: "/a"},
		&coordpb.ExistsRequest{Path: "/"},
		&coordpb.ChildrenRequest{Path: "/", Limit: 2},
		&coordpb.MultiRequest{Ops: []*coordpb.Op{{Op: &coordpb.Op_Check{Check: &coordpb.CheckOp{Path: "/", Version: -1}}}}},
		&coordpb.SyncRequest{},
		&coordpb.OpenSessionRequest{TimeoutMs: 100},
		&coordpb.KeepAliveRequest{SessionId: 7},
		&coordpb.CloseSessionRequest{SessionId: 7},
		&coordpb.MembersRequest{},
		&coordpb.AddMemberRequest{Name: "x", Address: "127.0.0.1:1", NonVoter: true},
		&coordpb.RemoveMemberRequest{Name: "x"},
		&coordpb.StatusRequest{},
		&coordpb.SnapshotRequest{},
		&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Create{Create: &coordpb.WatchCreate{Path: "/", Kind: coordpb.WatchKind_WATCH_PERSISTENT_RECURSIVE}}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{byte(i)}, b...))
	}
	f.Add([]byte{6, 0x0a, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		m := coordRequests[int(data[0])%len(coordRequests)]()
		if err := proto.Unmarshal(data[1:], m); err != nil {
			return // not a message of this type: grpc would refuse it too
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		switch r := m.(type) {
		case *coordpb.CreateRequest:
			_, err = cl.Create(ctx, r)
		case *coordpb.DeleteRequest:
			_, err = cl.Delete(ctx, r)
		case *coordpb.SetRequest:
			_, err = cl.Set(ctx, r)
		case *coordpb.GetRequest:
			_, err = cl.Get(ctx, r)
		case *coordpb.ExistsRequest:
			_, err = cl.Exists(ctx, r)
		case *coordpb.ChildrenRequest:
			_, err = cl.Children(ctx, r)
		case *coordpb.MultiRequest:
			_, err = cl.Multi(ctx, r)
		case *coordpb.SyncRequest:
			_, err = cl.Sync(ctx, r)
		case *coordpb.OpenSessionRequest:
			_, err = cl.OpenSession(ctx, r)
		case *coordpb.KeepAliveRequest:
			_, err = cl.KeepAlive(ctx, r)
		case *coordpb.CloseSessionRequest:
			_, err = cl.CloseSession(ctx, r)
		case *coordpb.MembersRequest:
			_, err = cl.Members(ctx, r)
		case *coordpb.AddMemberRequest:
			// A voter that never answers would cost the one-node cluster
			// its quorum: that is an operator's choice, not bad input.
			r.NonVoter = true
			_, err = cl.AddMember(ctx, r)
		case *coordpb.RemoveMemberRequest:
			if r.Name == c.Node(0).Name {
				return
			}
			_, err = cl.RemoveMember(ctx, r)
		case *coordpb.StatusRequest:
			_, err = cl.Status(ctx, r)
		case *coordpb.SnapshotRequest:
			var s coordpb.Coord_SnapshotClient
			if s, err = cl.Snapshot(ctx, r); err == nil {
				for err == nil {
					_, err = s.Recv()
				}
			}
		case *coordpb.WatchRequest:
			var s coordpb.Coord_WatchClient
			if s, err = cl.Watch(ctx); err == nil {
				if err = s.Send(r); err == nil {
					rctx, rcancel := context.WithTimeout(ctx, 100*time.Millisecond)
					go func() { <-rctx.Done(); s.CloseSend() }()
					_, err = s.Recv()
					rcancel()
					if status.Code(err) == codes.DeadlineExceeded || status.Code(err) == codes.Canceled {
						err = nil
					}
				}
			}
			cancel()
		}
		if ctx.Err() == nil {
			checkStatus(t, string(m.ProtoReflect().Descriptor().Name()), err)
		}
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer hcancel()
		if _, err := cl.Exists(hctx, &coordpb.ExistsRequest{Path: "/"}); err != nil {
			t.Fatalf("server stopped serving after %v: %v", m, err)
		}
	})
}

// FuzzPeerRequests sends arbitrary Peer requests (a forwarded raft
// command is decoded and, if valid, applied) to a real server.
func FuzzPeerRequests(f *testing.F) {
	c := coordtest.NewCluster(f, 1, coordtest.Options{})
	cc, err := grpc.NewClient(c.Node(0).Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { cc.Close() })
	peer := coordpb.NewPeerClient(cc)
	cl := c.Conn(0)
	f.Add(byte(0), []byte{})
	f.Add(byte(0), []byte{1, 0x0a, 0x03, 0x0a, 0x01, 0x2f})
	f.Add(byte(1), []byte{})
	f.Add(byte(2), []byte{0x08, 0x07, 0x08, 0x09})
	f.Add(byte(3), []byte{0x12, 0x03, 0x0a, 0x01, 0x78})
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		switch kind % 4 {
		case 0:
			_, err = peer.Propose(ctx, &coordpb.ProposeRequest{Command: data})
		case 1:
			_, err = peer.ReadIndex(ctx, &coordpb.ReadIndexRequest{})
		case 2:
			var r coordpb.KeepAlivesRequest
			if proto.Unmarshal(data, &r) != nil {
				return
			}
			_, err = peer.KeepAlives(ctx, &r)
		case 3:
			var r coordpb.ChangeMembersRequest
			if proto.Unmarshal(data, &r) != nil {
				return
			}
			if a := r.GetAdd(); a != nil {
				a.NonVoter = true
			}
			if rm := r.GetRemove(); rm != nil && rm.Name == c.Node(0).Name {
				return
			}
			_, err = peer.ChangeMembers(ctx, &r)
		}
		if ctx.Err() == nil {
			checkStatus(t, "peer", err)
		}
		if _, err := cl.Exists(ctx, &coordpb.ExistsRequest{Path: "/"}); err != nil {
			t.Fatalf("server stopped serving: %v", err)
		}
	})
}

// FuzzParseCluster: --initial-cluster parsing never panics, and what it
// accepts has a name and an address for every entry.
func FuzzParseCluster(f *testing.F) {
	for _, s := range []string{"", "n1=127.0.0.1:4180", "n1=127.0.0.1:1,n2=127.0.0.1:2", "=x", "n1=", "a=b=c", " , ", "n1=[::1]:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		peers, err := coord.ParseCluster(s)
		if err != nil {
			return
		}
		for _, p := range peers {
			if p.Name == "" || p.Address == "" {
				t.Fatalf("ParseCluster(%q) accepted %+v", s, p)
			}
		}
	})
}
