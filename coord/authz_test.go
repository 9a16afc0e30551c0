package coord_test

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/coord/rpc"
	"coord/proto/coordpb"
	"coord/proto/parpb"
)

func dialAs(t *testing.T, addr, certDir, name string) *grpc.ClientConn {
	t.Helper()
	cfg := clientTLS(t, certDir, name, certDir)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func acl(id string, perms coordpb.Perm) *coordpb.ACLEntry {
	return &coordpb.ACLEntry{Id: id, Perms: uint32(perms)}
}

const all = coordpb.Perm_READ | coordpb.Perm_WRITE | coordpb.Perm_CREATE | coordpb.Perm_DELETE | coordpb.Perm_ADMIN

// denied: the call was refused for want of identity or permission. A
// watch reports denial in its first response.
func denied(err error) bool {
	c := status.Code(err)
	return c == codes.PermissionDenied || c == codes.Unauthenticated
}

// TestPermissionMatrix calls every gRPC method of both services as an
// unauthenticated caller, a wrong identity and the right one, on a TLS
// node with a superuser and ACLs, and asserts denial or allowance. A
// method without a row here, or without an authorization rule, fails.
func TestPermissionMatrix(t *testing.T) {
	d := makeCerts(t)
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = nodeFiles(d.good, cfg.Name)
		cfg.Superusers = []string{"x509:admin"}
		cfg.TokenKeyFile = filepath.Join(d.good, "token.key")
	}})
	addr := c.Node(0).Addr
	cc := map[string]*grpc.ClientConn{
		"anon":  dialAs(t, addr, d.good, ""),
		"alice": dialAs(t, addr, d.good, "alice"),
		"bob":   dialAs(t, addr, d.good, "bob"),
		"admin": dialAs(t, addr, d.good, "admin"),
		"n1":    dialAs(t, addr, d.good, "n1"),
	}
	ctx := coordtest.Ctx(t, 30*time.Second)
	admin := coordpb.NewCoordClient(cc["admin"])
	bobOnly := []*coordpb.ACLEntry{acl("x509:bob", all)}
	for _, p := range []string{"/sec", "/sec/del-anon", "/sec/del-alice", "/sec/del-bob", "/sec/child"} {
		if _, err := admin.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: p, Acl: bobOnly}}); err != nil {
			t.Fatalf("setup create %s as superuser: %v", p, err)
		}
	}
	type call func(ctx context.Context, conn *grpc.ClientConn, who string) error
	co := func(conn *grpc.ClientConn) coordpb.CoordClient { return coordpb.NewCoordClient(conn) }
	pe := func(conn *grpc.ClientConn) coordpb.PeerClient { return coordpb.NewPeerClient(conn) }
	type row struct {
		right string
		// allowed for anon, alice (the wrong identity), right
		anon, wrong, ok bool
		call            call
	}
	aclRow := func(f call) row { return row{right: "bob", anon: false, wrong: false, ok: true, call: f} }
	open := func(f call) row { return row{right: "bob", anon: true, wrong: true, ok: true, call: f} }
	super := func(f call) row { return row{right: "admin", call: f, ok: true} }
	peer := func(f call) row { return row{right: "n1", call: f, ok: true} }
	matrix := map[string]row{
		"/coord.v1.Coord/Create": aclRow(func(ctx context.Context, conn *grpc.ClientConn, who string) error {
			_, err := co(conn).Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/sec/by-" + who}})
			return err
		}),
		"/coord.v1.Coord/Delete": aclRow(func(ctx context.Context, conn *grpc.ClientConn, who string) error {
			_, err := co(conn).Delete(ctx, &coordpb.DeleteRequest{Op: &coordpb.DeleteOp{Path: "/sec/del-" + who, Version: -1}})
			return err
		}),
		"/coord.v1.Coord/Set": aclRow(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).Set(ctx, &coordpb.SetRequest{Op: &coordpb.SetOp{Path: "/sec", Data: []byte("x"), Version: -1}})
			return err
		}),
		"/coord.v1.Coord/Get": aclRow(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).Get(ctx, &coordpb.GetRequest{Path: "/sec"})
			return err
		}),
		"/coord.v1.Coord/Exists": aclRow(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).Exists(ctx, &coordpb.ExistsRequest{Path: "/sec/child"})
			return err
		}),
		"/coord.v1.Coord/Children": aclRow(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).Children(ctx, &coordpb.ChildrenRequest{Path: "/sec"})
			return err
		}),
		"/coord.v1.Coord/Multi": aclRow(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).Multi(ctx, &coordpb.MultiRequest{Ops: []*coordpb.Op{
				{Op: &coordpb.Op_Check{Check: &coordpb.CheckOp{Path: "/", Version: -1}}},
				{Op: &coordpb.Op_Check{Check: &coordpb.CheckOp{Path: "/sec", Version: -1}}},
			}})
			return err
		}),
		"/coord.v1.Coord/Sync": aclRow(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).Sync(ctx, &coordpb.SyncRequest{Path: "/sec"})
			return err
		}),
		"/coord.v1.Coord/SetACL": aclRow(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).SetACL(ctx, &coordpb.SetACLRequest{Op: &coordpb.SetACLOp{Path: "/sec/child", Acl: bobOnly, AclVersion: -1}})
			return err
		}),
		"/coord.v1.Coord/GetACL": aclRow(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).GetACL(ctx, &coordpb.GetACLRequest{Path: "/sec"})
			return err
		}),
		"/coord.v1.Coord/Watch": aclRow(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			st, err := co(conn).Watch(ctx)
			if err != nil {
				return err
			}
			defer st.CloseSend()
			if err := st.Send(&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Create{Create: &coordpb.WatchCreate{WatchId: 1, Path: "/sec", Kind: coordpb.WatchKind_WATCH_PERSISTENT_RECURSIVE}}}); err != nil {
				return err
			}
			r, err := st.Recv()
			if err != nil {
				return err
			}
			if strings.Contains(r.Error, "permission denied") {
				return status.Error(codes.PermissionDenied, r.Error)
			}
			return nil
		}),
		"/coord.v1.Coord/Call": aclRow(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			// The data operations on the Call stream: each request is
			// checked like its unary twin; a denial comes back in-band.
			st, err := co(conn).Call(ctx)
			if err != nil {
				return err
			}
			defer st.CloseSend()
			if err := st.Send(&coordpb.CallRequest{Id: 1, Op: &coordpb.CallRequest_Get{Get: &coordpb.GetRequest{Path: "/sec"}}}); err != nil {
				return err
			}
			r, err := st.Recv()
			if err != nil {
				return err
			}
			if len(r.GetStatus()) > 0 {
				return rpc.DecodeStatusError(r.GetStatus())
			}
			return nil
		}),
		"/coord.v1.Coord/OpenSession": open(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).OpenSession(ctx, &coordpb.OpenSessionRequest{})
			return err
		}),
		"/coord.v1.Coord/KeepAlive": open(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: 12345})
			return err
		}),
		"/coord.v1.Coord/CloseSession": open(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: 12345})
			return err
		}),
		"/coord.v1.Coord/WhoAmI": open(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).WhoAmI(ctx, &coordpb.WhoAmIRequest{})
			return err
		}),
		"/coord.v1.Coord/Authenticate": open(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).Authenticate(ctx, &coordpb.AuthenticateRequest{User: "nobody", Password: "whatever"})
			if status.Code(err) == codes.Unauthenticated && strings.Contains(err.Error(), "wrong user or password") {
				return nil // reached the password check: the method itself is open
			}
			return err
		}),
		"/coord.v1.Coord/SetUser": super(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).SetUser(ctx, &coordpb.SetUserRequest{Name: "carol", Password: "carols-password"})
			return err
		}),
		"/coord.v1.Coord/DeleteUser": super(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).DeleteUser(ctx, &coordpb.DeleteUserRequest{Name: "nobody"})
			return err
		}),
		"/coord.v1.Coord/ListUsers": super(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).ListUsers(ctx, &coordpb.ListUsersRequest{})
			return err
		}),
		"/coord.v1.Coord/Members": {right: "bob", anon: false, wrong: true, ok: true, call: func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).Members(ctx, &coordpb.MembersRequest{})
			return err
		}},
		"/coord.v1.Coord/Status": {right: "bob", anon: false, wrong: true, ok: true, call: func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).Status(ctx, &coordpb.StatusRequest{})
			return err
		}},
		"/coord.v1.Coord/AddMember": super(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).AddMember(ctx, &coordpb.AddMemberRequest{})
			return err
		}),
		"/coord.v1.Coord/RemoveMember": super(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := co(conn).RemoveMember(ctx, &coordpb.RemoveMemberRequest{Name: "nope"})
			return err
		}),
		"/coord.v1.Coord/Snapshot": super(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			st, err := co(conn).Snapshot(ctx, &coordpb.SnapshotRequest{})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}),
		"/coord.v1.Peer/Propose": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := pe(conn).Propose(ctx, &coordpb.ProposeRequest{Command: []byte{0xff}})
			return err
		}),
		"/coord.v1.Peer/ReadIndex": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := pe(conn).ReadIndex(ctx, &coordpb.ReadIndexRequest{})
			return err
		}),
		"/coord.v1.Peer/ChangeMembers": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := pe(conn).ChangeMembers(ctx, &coordpb.ChangeMembersRequest{})
			return err
		}),
		"/coord.v1.Peer/ProposeBatch": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := pe(conn).ProposeBatch(ctx, &coordpb.ProposeBatchRequest{Commands: [][]byte{{0xff}}})
			return err
		}),
		"/coord.v1.Peer/Events": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			// A permitted peer gets the stream (and then waits for events:
			// the short deadline ends it); a refused one an error at once.
			sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			st, err := pe(conn).Events(sctx, &coordpb.EventsRequest{})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			if status.Code(err) == codes.DeadlineExceeded {
				return nil
			}
			return err
		}),
		"/coord.par.v1.PeerRepair/GetEntries": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := parpb.NewPeerRepairClient(conn).GetEntries(ctx, &parpb.GetEntriesRequest{Requester: "n9"})
			return err
		}),
		"/coord.par.v1.PeerRepair/GetLogRange": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := parpb.NewPeerRepairClient(conn).GetLogRange(ctx, &parpb.GetLogRangeRequest{Requester: "n9", From: 1, To: 1})
			return err
		}),
		"/coord.par.v1.PeerRepair/GetTerm": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := parpb.NewPeerRepairClient(conn).GetTerm(ctx, &parpb.GetTermRequest{})
			return err
		}),
		"/coord.par.v1.PeerRepair/ListSnapshots": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := parpb.NewPeerRepairClient(conn).ListSnapshots(ctx, &parpb.ListSnapshotsRequest{Requester: "n9"})
			return err
		}),
		"/coord.par.v1.PeerRepair/FetchSnapshot": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			// A permitted peer asking for a snapshot nobody has gets
			// NotFound; a refused one PermissionDenied.
			st, err := parpb.NewPeerRepairClient(conn).FetchSnapshot(ctx, &parpb.FetchSnapshotRequest{Requester: "n9", Id: "no-such"})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			if status.Code(err) == codes.NotFound {
				return nil
			}
			return err
		}),
		"/coord.par.v1.PeerRepair/RequestSnapshot": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := parpb.NewPeerRepairClient(conn).RequestSnapshot(ctx, &parpb.RequestSnapshotRequest{Requester: "n9"})
			return err
		}),
		"/coord.par.v1.PeerRepair/Hello": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := parpb.NewPeerRepairClient(conn).Hello(ctx, &parpb.HelloRequest{Name: "n9"})
			return err
		}),
		"/coord.par.v1.PeerRepair/Status": {right: "bob", anon: false, wrong: true, ok: true, call: func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := parpb.NewPeerRepairClient(conn).Status(ctx, &parpb.StatusRequest{})
			return err
		}},
		"/coord.v1.Peer/KeepAlives": peer(func(ctx context.Context, conn *grpc.ClientConn, _ string) error {
			_, err := pe(conn).KeepAlives(ctx, &coordpb.KeepAlivesRequest{})
			return err
		}),
	}

	// Every method of both services has a row and a rule, and no row or
	// rule names a method that does not exist.
	var methods []string
	for _, sd := range []grpc.ServiceDesc{coordpb.Coord_ServiceDesc, coordpb.Peer_ServiceDesc, parpb.PeerRepair_ServiceDesc} {
		for _, m := range sd.Methods {
			methods = append(methods, "/"+sd.ServiceName+"/"+m.MethodName)
		}
		for _, s := range sd.Streams {
			methods = append(methods, "/"+sd.ServiceName+"/"+s.StreamName)
		}
	}
	sort.Strings(methods)
	for _, m := range methods {
		if _, ok := matrix[m]; !ok {
			t.Errorf("method %s has no row in the permission matrix", m)
		}
		if _, ok := rpc.Rules[m]; !ok {
			t.Errorf("method %s has no rule in rpc.Rules", m)
		}
	}
	if len(matrix) != len(methods) || len(rpc.Rules) != len(methods) {
		t.Errorf("%d rows, %d rules, %d methods", len(matrix), len(rpc.Rules), len(methods))
	}

	for _, m := range methods {
		r, ok := matrix[m]
		if !ok {
			continue
		}
		for _, tc := range []struct {
			who   string
			allow bool
		}{{"anon", r.anon}, {"alice", r.wrong}, {r.right, r.ok}} {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := r.call(cctx, cc[tc.who], tc.who)
			cancel()
			if got := !denied(err); got != tc.allow {
				t.Errorf("%s as %s: allowed=%v (err %v), want allowed=%v", m, tc.who, got, err, tc.allow)
			}
		}
	}
}

// A recursive watch on an open root never shows events (names included)
// of nodes the watcher may not read; the owner sees them.
func TestWatch_FilteredByACL(t *testing.T) {
	d := makeCerts(t)
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = nodeFiles(d.good, cfg.Name)
		cfg.Superusers = []string{"x509:admin"}
	}})
	addr := c.Node(0).Addr
	ctx := coordtest.Ctx(t, 20*time.Second)
	watchAll := func(who string) coordpb.Coord_WatchClient {
		st, err := coordpb.NewCoordClient(dialAs(t, addr, d.good, who)).Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Create{Create: &coordpb.WatchCreate{WatchId: 1, Path: "/", Kind: coordpb.WatchKind_WATCH_PERSISTENT_RECURSIVE}}}); err != nil {
			t.Fatal(err)
		}
		if r, err := st.Recv(); err != nil || !r.Created {
			t.Fatalf("watch create as %s: %v %v", who, r, err)
		}
		return st
	}
	alice, bob := watchAll("alice"), watchAll("bob")
	admin := coordpb.NewCoordClient(dialAs(t, addr, d.good, "admin"))
	bobOnly := []*coordpb.ACLEntry{acl("x509:bob", all)}
	for _, op := range []*coordpb.CreateOp{
		{Path: "/secret-name", Acl: bobOnly},
		{Path: "/pub"},
	} {
		if _, err := admin.Create(ctx, &coordpb.CreateRequest{Op: op}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Delete(ctx, &coordpb.DeleteRequest{Op: &coordpb.DeleteOp{Path: "/secret-name", Version: -1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/end"}}); err != nil {
		t.Fatal(err)
	}
	paths := func(st coordpb.Coord_WatchClient) []string {
		var got []string
		for {
			r, err := st.Recv()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Events {
				got = append(got, e.Type.String()+" "+e.Path)
				if e.Path == "/end" {
					return got
				}
			}
		}
	}
	if got := strings.Join(paths(alice), ","); strings.Contains(got, "secret") || got != "NODE_CREATED /pub,NODE_CREATED /end" {
		t.Errorf("alice saw %s", got)
	}
	if got := strings.Join(paths(bob), ","); got != "NODE_CREATED /secret-name,NODE_CREATED /pub,NODE_DELETED /secret-name,NODE_CREATED /end" {
		t.Errorf("bob saw %s", got)
	}
}

// Reads through followers run as the caller, also when the follower hands
// them to the leader: bob always reads his node, alice never does.
func TestACL_ReadsThroughFollowers(t *testing.T) {
	d := makeCerts(t)
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = nodeFiles(d.good, cfg.Name)
		cfg.Superusers = []string{"x509:admin"}
	}})
	ctx := coordtest.Ctx(t, 30*time.Second)
	l := c.Leader()
	admin := coordpb.NewCoordClient(dialAs(t, c.Node(l).Addr, d.good, "admin"))
	if _, err := admin.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/b", Data: []byte("v"), Acl: []*coordpb.ACLEntry{acl("x509:bob", coordpb.Perm_READ)}}}); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes() {
		if i == l {
			continue
		}
		bob := coordpb.NewCoordClient(dialAs(t, c.Node(i).Addr, d.good, "bob"))
		alice := coordpb.NewCoordClient(dialAs(t, c.Node(i).Addr, d.good, "alice"))
		for j := 0; j < 20; j++ {
			// A write first makes the follower likely to be behind the
			// read index, so the read is handed to the leader.
			if _, err := admin.Set(ctx, &coordpb.SetRequest{Op: &coordpb.SetOp{Path: "/b", Data: []byte("v"), Version: -1}}); err != nil {
				t.Fatal(err)
			}
			if _, err := bob.Get(ctx, &coordpb.GetRequest{Path: "/b"}); err != nil {
				t.Fatalf("bob via node %d: %v", i, err)
			}
			if _, err := alice.Get(ctx, &coordpb.GetRequest{Path: "/b"}); !denied(err) {
				t.Fatalf("alice via node %d: %v, want denied", i, err)
			}
		}
	}
}
