package coord_test

import (
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"coord/client"
	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// rawConn is a Coord client for one node with a certificate of certName.
func rawConn(t *testing.T, addr, dir, certName string) coordpb.CoordClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(t, dir, certName, dir))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return coordpb.NewCoordClient(cc)
}

func isDenied(err error) bool { return status.Code(err) == codes.PermissionDenied }

// Sessions are bound to the identity that opened them. Alice opens a
// session and an ephemeral; bob, who may READ the ephemeral and so sees
// its ephemeralOwner, cannot close that session, keep it alive, create an
// ephemeral in it or name it in a write header — not on the leader and
// not through a follower (which checks keepalives before it relays them
// and forwards writes with bob as the caller). Alice's session survives;
// the superuser may close it.
func TestSessionOwner_Bound(t *testing.T) {
	d := makeCerts(t)
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = nodeFiles(d.good, cfg.Name)
		cfg.Superusers = []string{"x509:admin"}
	}})
	ctx := coordtest.Ctx(t, 60*time.Second)
	leader, follower := c.Leader(), c.Follower()

	alice := newClient(t, c.Addrs(), clientTLS(t, d.good, "alice", d.good))
	if _, _, err := alice.Create(ctx, "/lock", []byte("held"), &client.CreateOptions{Ephemeral: true}); err != nil {
		t.Fatal(err)
	}
	sid := alice.SessionID()

	for _, i := range []int{leader, follower} {
		bob := rawConn(t, c.Node(i).Addr, d.good, "bob")
		g, err := bob.Get(ctx, &coordpb.GetRequest{Path: "/lock"})
		if err != nil {
			t.Fatalf("node %d: bob reads the lock: %v", i, err)
		}
		if g.Stat.EphemeralOwner != sid {
			t.Fatalf("node %d: ephemeralOwner %#x, want %#x", i, g.Stat.EphemeralOwner, sid)
		}
		if _, err := bob.CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: sid}); !isDenied(err) {
			t.Errorf("node %d: bob closes alice's session: %v, want PermissionDenied", i, err)
		}
		if _, err := bob.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: sid}); !isDenied(err) {
			t.Errorf("node %d: bob keeps alice's session alive: %v, want PermissionDenied", i, err)
		}
		_, err = bob.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/bob", Mode: coordpb.CreateMode_EPHEMERAL, SessionId: sid}})
		if !isDenied(err) {
			t.Errorf("node %d: bob creates an ephemeral in alice's session: %v, want PermissionDenied", i, err)
		}
		_, err = bob.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/bob"}, Write: &coordpb.WriteHeader{SessionId: sid, RequestId: 1}})
		if !isDenied(err) {
			t.Errorf("node %d: bob names alice's session in a write header: %v, want PermissionDenied", i, err)
		}
		// Bob's own session works as usual.
		os, err := bob.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: 2000})
		if err != nil {
			t.Fatalf("node %d: bob opens a session: %v", i, err)
		}
		if _, err := bob.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: os.SessionId}); err != nil {
			t.Errorf("node %d: bob keeps his own session alive: %v", i, err)
		}
		if _, err := bob.CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: os.SessionId}); err != nil {
			t.Errorf("node %d: bob closes his own session: %v", i, err)
		}
	}

	// Alice's session and lock survived; her own keepalive works anywhere.
	for _, i := range []int{leader, follower} {
		if _, err := rawConn(t, c.Node(i).Addr, d.good, "alice").KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: sid}); err != nil {
			t.Fatalf("node %d: alice's keepalive: %v", i, err)
		}
	}
	if st, err := alice.Exists(ctx, "/lock", nil); err != nil || st == nil || alice.SessionID() != sid {
		t.Fatalf("alice's lock after bob's attempts: %v %v (session %#x, was %#x)", st, err, alice.SessionID(), sid)
	}

	// The operator closes it, through a follower.
	admin := rawConn(t, c.Node(follower).Addr, d.good, "admin")
	if _, err := admin.CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: sid}); err != nil {
		t.Fatalf("superuser closes alice's session: %v", err)
	}
	if _, err := admin.Get(ctx, &coordpb.GetRequest{Path: "/lock"}); status.Code(err) != codes.NotFound {
		t.Fatalf("lock after the superuser's close: %v, want NotFound", err)
	}
}

// With password users the owner is the user: bob logged in on one node
// owns his session on every node; carol's token does not.
func TestSessionOwner_PasswordUsers(t *testing.T) {
	d := makeCerts(t)
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = nodeFiles(d.good, cfg.Name)
		cfg.Superusers = []string{"x509:admin"}
		cfg.TokenKeyFile = filepath.Join(d.good, "token.key")
	}})
	ctx := coordtest.Ctx(t, 60*time.Second)
	admin := newClient(t, c.Addrs(), clientTLS(t, d.good, "admin", d.good))
	for _, u := range []string{"bob", "carol"} {
		if err := admin.SetUser(ctx, u, u+"-password", nil); err != nil {
			t.Fatal(err)
		}
	}
	bob := newClient(t, []string{c.Node(c.Leader()).Addr}, clientTLS(t, "", "", d.good))
	if _, err := bob.Login(ctx, "bob", "bob-password"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.Create(ctx, "/b", nil, &client.CreateOptions{Ephemeral: true}); err != nil {
		t.Fatal(err)
	}
	carol := rawConn(t, c.Node(c.Follower()).Addr, d.good, "")
	login, err := carol.Authenticate(ctx, &coordpb.AuthenticateRequest{User: "carol", Password: "carol-password"})
	if err != nil {
		t.Fatal(err)
	}
	cctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+login.Token)
	if _, err := carol.CloseSession(cctx, &coordpb.CloseSessionRequest{SessionId: bob.SessionID()}); !isDenied(err) {
		t.Fatalf("carol closes bob's session: %v, want PermissionDenied", err)
	}
	if _, err := carol.KeepAlive(cctx, &coordpb.KeepAliveRequest{SessionId: bob.SessionID()}); !isDenied(err) {
		t.Fatalf("carol keeps bob's session alive: %v, want PermissionDenied", err)
	}
	if st, err := bob.Exists(ctx, "/b", nil); err != nil || st == nil {
		t.Fatalf("bob's ephemeral: %v %v", st, err)
	}
}
