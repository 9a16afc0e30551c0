package coord_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// A login token dies with its user record: changing bob's password, or
// deleting bob, makes the tokens issued before refused on every node
// (leader and followers), while a fresh login works; a user deleted and
// added again with the old password does not revive an old token.
func TestUsers_TokenRevocation(t *testing.T) {
	d := makeCerts(t)
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = nodeFiles(d.good, cfg.Name)
		cfg.Superusers = []string{"x509:admin"}
		cfg.TokenKeyFile = filepath.Join(d.good, "token.key")
	}})
	ctx := coordtest.Ctx(t, 60*time.Second)
	admin := newClient(t, c.Addrs(), clientTLS(t, d.good, "admin", d.good))
	conns := make([]coordpb.CoordClient, len(c.Nodes()))
	for i := range conns {
		conns[i] = rawConn(t, c.Node(i).Addr, d.good, "")
	}
	login := func(pw string) string {
		t.Helper()
		r, err := conns[c.Follower()].Authenticate(ctx, &coordpb.AuthenticateRequest{User: "bob", Password: pw})
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		return r.Token
	}
	// whoami asks every node; want "" expects a refusal naming why.
	everywhere := func(tok, want string) {
		t.Helper()
		for i, cc := range conns {
			tctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
			r, err := cc.WhoAmI(tctx, &coordpb.WhoAmIRequest{})
			if want == "" {
				if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
					t.Errorf("node %d: revoked token: %v %v, want Unauthenticated (revoked)", i, r, err)
				}
				continue
			}
			if err != nil || len(r.Ids) == 0 || r.Ids[0] != want {
				t.Errorf("node %d: whoami %v %v, want %s", i, r, err, want)
			}
		}
	}
	if err := admin.SetUser(ctx, "bob", "first-password", nil); err != nil {
		t.Fatal(err)
	}
	first := login("first-password")
	everywhere(first, "user:bob")

	// A password change revokes the first token; a new login works.
	if err := admin.SetUser(ctx, "bob", "second-password", nil); err != nil {
		t.Fatal(err)
	}
	c.WaitApplied(c.Node(c.Leader()).Server.Replica().Applied(), 10*time.Second)
	everywhere(first, "")
	second := login("second-password")
	everywhere(second, "user:bob")

	// Deleting bob revokes the second; adding him again (old password
	// even) revives neither.
	if err := admin.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	c.WaitApplied(c.Node(c.Leader()).Server.Replica().Applied(), 10*time.Second)
	everywhere(second, "")
	if err := admin.SetUser(ctx, "bob", "first-password", nil); err != nil {
		t.Fatal(err)
	}
	c.WaitApplied(c.Node(c.Leader()).Server.Replica().Applied(), 10*time.Second)
	everywhere(first, "")
	everywhere(second, "")
	everywhere(login("first-password"), "user:bob")
}
