package lease

import (
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"coord/internal/tlsconf"
	"coord/proto/leasepb"
)

func tlsFiles(dir, name string) TLSFiles {
	return TLSFiles{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key"), CAFile: filepath.Join(dir, "ca.crt")}
}

// A group whose members m0 and m1 speak mutual TLS and whose m2 is
// plaintext: m2 cannot join (its rounds get no quorum, its messages never
// reach the others), m0 and m1 still elect a holder; a CA-signed
// certificate of another name cannot speak for a member, and a plaintext
// connection does not get through the handshake.
func TestTLS_PlaintextPeerCannotJoin(t *testing.T) {
	dir := t.TempDir()
	if err := tlsconf.CreateCerts(dir, tlsconf.CertSpec{Nodes: []string{"m0", "m1", "m2", "rogue"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	ids := []NodeID{"m0", "m1", "m2"}
	var lns []net.Listener
	var members []Member
	for _, id := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		members = append(members, Member{ID: id, Addr: ln.Addr().String()})
	}
	nodes := make([]*Node, len(ids))
	for i, id := range ids {
		cfg := testConfig()
		cfg.ID, cfg.Group, cfg.Version, cfg.Members = id, "g", 1, members
		cfg.Clock, cfg.Logger = UncheckedClock(nil), testLogger(t)
		var opts []grpc.ServerOption
		if id != "m2" {
			store, err := LoadTLS(tlsFiles(dir, string(id)))
			if err != nil {
				t.Fatal(err)
			}
			cfg.TLS = store
			opts = append(opts, grpc.Creds(ServerCredentials(store)))
		}
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer(opts...)
		n.Register(s)
		go s.Serve(lns[i])
		nodes[i] = n
		t.Cleanup(func() { s.Stop(); n.Close() })
	}
	for _, n := range nodes {
		time.Sleep(time.Until(n.RecoveringUntil()) + 5*time.Millisecond)
	}
	ctx := ctxT(t, 20*time.Second)

	if _, err := nodes[2].TryAcquire(ctx, "x"); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("plaintext member acquires: %v, want ErrNoQuorum", err)
	}
	l, err := nodes[0].Acquire(ctx, "r")
	if err != nil {
		t.Fatalf("TLS member acquires: %v", err)
	}
	if h, err := nodes[1].Holder(ctx, "r"); err != nil || h.Holder != "m0" {
		t.Fatalf("holder seen by m1: %+v %v, want m0", h, err)
	}
	if h, _ := nodes[0].LocalHolder(ctx, "x"); !h.Free() {
		t.Fatalf("the plaintext member's attempt reached m0: %+v", h)
	}
	if !l.Valid() {
		t.Fatal("m0's lease is not valid")
	}

	probe := func(cert string, from NodeID) error {
		t.Helper()
		tc, err := tlsconf.ClientConfig(tlsFiles(dir, cert))
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpc.NewClient(members[0].Addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		_, err = leasepb.NewFleasePeerClient(cc).Probe(ctx, &leasepb.ProbeRequest{Header: &leasepb.Header{
			GroupId: "g", ConfigVersion: 1, From: string(from), SentUnixNanos: time.Now().UnixNano()}})
		return err
	}
	if err := probe("m1", "m1"); err != nil {
		t.Fatalf("m1's certificate as m1: %v", err)
	}
	for _, c := range []struct {
		cert string
		from NodeID
	}{{"rogue", "m1"}, {"m2", "m1"}, {"admin", "m1"}} {
		if err := probe(c.cert, c.from); status.Code(err) != codes.PermissionDenied {
			t.Errorf("certificate %s as %s: %v, want PermissionDenied", c.cert, c.from, err)
		}
	}
	// Plaintext, and TLS without a client certificate, fail the handshake.
	cc, err := grpc.NewClient(members[0].Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := leasepb.NewFleasePeerClient(cc).Probe(ctx, &leasepb.ProbeRequest{Header: &leasepb.Header{GroupId: "g", ConfigVersion: 1, From: "m2"}}); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext probe: %v, want Unavailable (no handshake)", err)
	}
	nc, err := tlsconf.ClientConfig(TLSFiles{CAFile: filepath.Join(dir, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", members[0].Addr, nc)
	if err == nil {
		// TLS 1.3: the refusal of a missing client certificate arrives
		// on the first read.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Error("TLS without a client certificate was served")
	}
}
