package coord_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"coord/client"
	"coord/coord"
	"coord/coord/auth"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// Password users: a certificate superuser adds bob; bob logs in on any
// node with no client certificate, his token names him and his group on
// every node, ACLs for user:bob and group:ops admit him; a wrong password
// and a forged token are refused.
func TestUsers_PasswordLogin(t *testing.T) {
	d := makeCerts(t)
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = nodeFiles(d.good, cfg.Name)
		cfg.Superusers = []string{"x509:admin"}
		cfg.TokenKeyFile = filepath.Join(d.good, "token.key")
	}})
	// 28 calls over TLS on 3 nodes took 31 s once at load average 27:
	// the bound is for a hang, not for speed.
	ctx := coordtest.Ctx(t, 2*time.Minute)
	admin := newClient(t, c.Addrs(), clientTLS(t, d.good, "admin", d.good))
	if err := admin.SetUser(ctx, "bob", "bobs-password", []string{"ops"}); err != nil {
		t.Fatal(err)
	}
	if us, err := admin.ListUsers(ctx); err != nil || len(us) != 1 || us[0].Name != "bob" {
		t.Fatalf("ListUsers: %v %v", us, err)
	}
	if _, _, err := admin.Create(ctx, "/bob", []byte("b"), &client.CreateOptions{ACL: []client.ACL{{ID: "user:bob", Perms: client.PermAll}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.Create(ctx, "/ops", []byte("o"), &client.CreateOptions{ACL: []client.ACL{{ID: "group:ops", Perms: client.PermRead}}}); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes() {
		bob := newClient(t, []string{c.Node(i).Addr}, clientTLS(t, d.good, "", d.good))
		if _, _, err := bob.Get(ctx, "/bob", nil); !errors.Is(err, client.ErrNoAuth) {
			t.Fatalf("node %d: anonymous get: %v", i, err)
		}
		if _, err := bob.Login(ctx, "bob", "wrong-password"); !errors.Is(err, client.ErrUnauthenticated) {
			t.Fatalf("node %d: wrong password: %v", i, err)
		}
		if _, err := bob.Login(ctx, "bob", "bobs-password"); err != nil {
			t.Fatalf("node %d: login: %v", i, err)
		}
		ids, super, err := bob.WhoAmI(ctx)
		if err != nil || super || !slices.Equal(ids, []string{"user:bob", "group:ops"}) {
			t.Fatalf("node %d: whoami %v %v %v", i, ids, super, err)
		}
		if _, err := bob.Set(ctx, "/bob", []byte("mine"), -1); err != nil {
			t.Fatalf("node %d: bob set: %v", i, err)
		}
		if _, _, err := bob.Get(ctx, "/ops", nil); err != nil {
			t.Fatalf("node %d: group read: %v", i, err)
		}
		if _, err := bob.Set(ctx, "/ops", nil, -1); !errors.Is(err, client.ErrNoAuth) {
			t.Fatalf("node %d: group write: %v", i, err)
		}
	}
	// A token signed with another key, or garbage, is refused outright.
	cc, err := grpc.NewClient(c.Node(0).Addr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(t, d.good, "", d.good))))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	forged := auth.IssueToken([]byte("some-other-key-some-other-key-xx"), "admin", 0, nil, time.Now().Add(time.Hour))
	for _, tok := range []string{forged, "garbage"} {
		fctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		if _, err := coordpb.NewCoordClient(cc).WhoAmI(fctx, &coordpb.WhoAmIRequest{}); !denied(err) {
			t.Errorf("token %.10s...: %v, want unauthenticated", tok, err)
		}
	}
}
