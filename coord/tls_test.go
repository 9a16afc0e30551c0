package coord_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"coord/client"
	"coord/coord"
	"coord/coord/auth"
	"coord/coord/coordtest"
)

// certDirs writes a good CA, an unrelated CA and an expired set.
type certDirs struct{ good, other, expired string }

func makeCerts(t *testing.T) certDirs {
	t.Helper()
	base := t.TempDir()
	d := certDirs{good: filepath.Join(base, "good"), other: filepath.Join(base, "other"), expired: filepath.Join(base, "expired")}
	spec := auth.CertSpec{Nodes: []string{"n1", "n2", "n3", "rogue"}, Clients: []string{"admin", "alice", "bob"}}
	if err := auth.CreateCerts(d.good, spec); err != nil {
		t.Fatal(err)
	}
	if err := auth.CreateCerts(d.other, spec); err != nil {
		t.Fatal(err)
	}
	old := spec
	old.NotBefore = time.Now().Add(-48 * time.Hour)
	old.Validity = 24 * time.Hour
	if err := auth.CreateCerts(d.expired, old); err != nil {
		t.Fatal(err)
	}
	return d
}

func nodeFiles(dir, name string) auth.TLSFiles {
	return auth.TLSFiles{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key"), CAFile: filepath.Join(dir, "ca.crt")}
}

func clientTLS(t *testing.T, certDir, name, caDir string) *tls.Config {
	t.Helper()
	f := client.TLSFiles{CAFile: filepath.Join(caDir, "ca.crt")}
	if name != "" {
		f.CertFile = filepath.Join(certDir, name+".crt")
		f.KeyFile = filepath.Join(certDir, name+".key")
	}
	cfg, err := client.LoadTLS(f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func tlsCluster(t *testing.T, n int, dir string) *coordtest.Cluster {
	return coordtest.NewCluster(t, n, coordtest.Options{Configure: func(c *coord.Config) {
		c.TLS = nodeFiles(dir, c.Name)
	}})
}

func newClient(t *testing.T, addrs []string, tc *tls.Config) *client.Client {
	t.Helper()
	cl, err := client.New(context.Background(), client.Config{
		Endpoints: addrs, TLS: tc, DialTimeout: 500 * time.Millisecond, RequestTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(context.Background()) })
	return cl
}

// A 3-node cluster elects and replicates over TLS raft, forwards writes
// from a follower to the leader over TLS peer gRPC, and serves a TLS
// client; every way of getting TLS wrong is refused.
func TestTLS_Cluster(t *testing.T) {
	d := makeCerts(t)
	c := tlsCluster(t, 3, d.good)
	f := c.Follower()
	ctx := coordtest.Ctx(t, 10*time.Second)

	good := newClient(t, []string{c.Node(f).Addr}, clientTLS(t, d.good, "admin", d.good))
	if _, _, err := good.Create(ctx, "/tls", []byte("v"), nil); err != nil {
		t.Fatalf("create through a follower over TLS: %v", err)
	}
	for i := range c.Nodes() {
		cl := newClient(t, []string{c.Node(i).Addr}, clientTLS(t, d.good, "", d.good))
		data, _, err := cl.Get(ctx, "/tls", nil)
		if err != nil || string(data) != "v" {
			t.Fatalf("node %d: get over TLS without a client cert = %q, %v", i, data, err)
		}
	}

	refused := map[string]*client.Client{
		"plaintext client":              newClient(t, []string{c.Node(0).Addr}, nil),
		"client trusting another CA":    newClient(t, []string{c.Node(0).Addr}, clientTLS(t, d.good, "admin", d.other)),
		"client cert from another CA":   newClient(t, []string{c.Node(0).Addr}, clientTLS(t, d.other, "admin", d.good)),
		"expired client cert":           newClient(t, []string{c.Node(0).Addr}, clientTLS(t, d.expired, "admin", d.good)),
		"client cert signed by expired": newClient(t, []string{c.Node(0).Addr}, clientTLS(t, d.expired, "alice", d.expired)),
	}
	var wg sync.WaitGroup
	for name, cl := range refused {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			if _, _, err := cl.Get(rctx, "/tls", nil); err == nil {
				t.Errorf("%s: get succeeded, want refusal", name)
			}
		}()
	}
	wg.Wait()
}

// A node whose certificate has expired cannot serve: clients refuse it.
func TestTLS_ExpiredNodeCert(t *testing.T) {
	d := makeCerts(t)
	c := tlsCluster(t, 1, d.expired)
	_ = c // an expired cert still lets a lone node elect itself
	cl := newClient(t, []string{c.Node(0).Addr}, clientTLS(t, d.good, "", d.expired))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, _, err := cl.Get(ctx, "/", nil); err == nil {
		t.Fatal("client accepted a node with an expired certificate")
	} else if !strings.Contains(err.Error(), "expired") && !strings.Contains(err.Error(), "certificate") {
		t.Logf("error (no 'expired' in text): %v", err)
	}
}

// The raft side of the address admits only certificates on the peer
// allow-list: a CA-signed "rogue" node and a client certificate are cut
// off after the raft magic; an allowed peer is kept.
func TestTLS_RaftPeerAllowList(t *testing.T) {
	d := makeCerts(t)
	c := tlsCluster(t, 1, d.good)
	addr := c.Node(0).Addr
	try := func(name string) bool {
		t.Helper()
		cert, err := tls.LoadX509KeyPair(filepath.Join(d.good, name+".crt"), filepath.Join(d.good, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr,
			&tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
		if err != nil {
			return false
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("CRAFT1\n")); err != nil {
			return false
		}
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = conn.Read(make([]byte, 1))
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout() // still open: admitted
	}
	if !try("n1") {
		t.Error("allowed peer n1 was cut off")
	}
	if try("rogue") {
		t.Error("CA-signed node 'rogue' not on the allow-list was admitted to raft")
	}
	if try("alice") {
		t.Error("a client certificate was admitted to raft")
	}
	// Plaintext raft to a TLS node: the handshake fails, the conn closes.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, _ = raw.Write([]byte("CRAFT1\n"))
	_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(raw)
	if bytes.Contains(b, []byte("CRAFT")) || (err != nil && !errors.Is(err, io.EOF) && !isReset(err)) {
		t.Errorf("plaintext raft: read %q, %v; want the connection closed", b, err)
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "reset") }

// A node that dials peers whose certificates name no allowed peer cannot
// form a cluster: n1 allows only itself and n2, so n3's cert is refused.
func TestTLS_WrongPeerName(t *testing.T) {
	d := makeCerts(t)
	base := t.TempDir()
	lns := make([]net.Listener, 2)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
	}
	// Both nodes think the other is "n2", but the second node holds the
	// rogue certificate: no quorum can form.
	cluster, err := coord.ParseCluster("n1=" + lns[0].Addr().String() + ",n2=" + lns[1].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var srvs []*coord.Server
	for i, certName := range []string{"n1", "rogue"} {
		cfg := coord.DefaultConfig()
		cfg.Name = []string{"n1", "n2"}[i]
		cfg.DataDir = filepath.Join(base, cfg.Name)
		cfg.HTTP = ""
		cfg.InitialCluster = cluster
		cfg.TLS = nodeFiles(d.good, certName)
		cfg.PeerNames = []string{"n1", "n2"}
		cfg.ElectionTimeout = 300 * time.Millisecond
		cfg.HeartbeatTimeout = 300 * time.Millisecond
		cfg.LeaderLease = 150 * time.Millisecond
		s, err := coord.Start(cfg, lns[i])
		if err != nil {
			t.Fatal(err)
		}
		srvs = append(srvs, s)
		defer s.Close()
	}
	time.Sleep(2 * time.Second)
	for _, s := range srvs {
		if s.Replica().IsLeader() {
			t.Fatalf("%s became leader with a peer whose certificate is not allowed", s.Name())
		}
	}
}

// Start refuses a non-loopback address without TLS unless insecure, and
// refuses half a TLS config.
func TestConfig_SafeDefaults(t *testing.T) {
	cfg := coord.DefaultConfig()
	cfg.Listen = "0.0.0.0:0"
	cfg.HTTP = ""
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Errorf("non-loopback without TLS: %v", err)
	}
	cfg.TLS = auth.TLSFiles{CertFile: "x.crt"}
	err := cfg.Validate()
	if !errors.Is(err, auth.ErrBadConfig) {
		t.Errorf("half TLS config: %v, want ErrBadConfig", err)
	}
	cfg.TLS = auth.TLSFiles{CertFile: "x.crt", KeyFile: "x.key", CAFile: "ca.crt"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("non-loopback with TLS: %v", err)
	}
	cfg.TLS = auth.TLSFiles{}
	cfg.InsecureNonLoopback = true
	if err := cfg.Validate(); err != nil {
		t.Errorf("non-loopback with insecure: %v", err)
	}
	// Missing files: Start fails with a message, not a panic.
	cfg = coord.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTP = ""
	cfg.DataDir = t.TempDir()
	cfg.TLS = auth.TLSFiles{CertFile: "/nope.crt", KeyFile: "/nope.key", CAFile: "/nope.ca"}
	if s, err := coord.Start(cfg, nil); err == nil {
		s.Close()
		t.Fatal("start with missing TLS files succeeded")
	}
}

// A node picks up a rotated certificate for new connections without a
// restart.
func TestTLS_CertReload(t *testing.T) {
	d := makeCerts(t)
	live := t.TempDir()
	copyCert := func(name string) {
		for _, ext := range []string{".crt", ".key"} {
			b, err := os.ReadFile(filepath.Join(d.good, name+ext))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(live, "node"+ext), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyCert("n1")
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = auth.TLSFiles{CertFile: filepath.Join(live, "node.crt"), KeyFile: filepath.Join(live, "node.key"), CAFile: filepath.Join(d.good, "ca.crt")}
	}})
	served := func() string {
		conn, err := tls.Dial("tcp", c.Node(0).Addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "n1" {
		t.Fatalf("serving %q", cn)
	}
	copyCert("n2") // any CA-signed cert will do to tell old from new
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(filepath.Join(live, "node.crt"), later, later)
	deadline := time.Now().Add(5 * time.Second)
	for served() != "n2" {
		if time.Now().After(deadline) {
			t.Fatal("the rotated certificate was not picked up")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A compaction pace that is not a finite number (coordd
// --raft-compact-pace) is refused before anything starts; a negative one
// (no pacing) is valid.
func TestConfig_RaftCompactPace(t *testing.T) {
	cfg := coord.DefaultConfig()
	for _, ok := range []float64{0, 1, 0.5, -1} {
		cfg.RaftCompactPace = ok
		if err := cfg.Validate(); err != nil {
			t.Errorf("pace %v: %v", ok, err)
		}
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1)} {
		cfg.RaftCompactPace = bad
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "compaction pace") {
			t.Errorf("pace %v: %v, want a compaction pace error", bad, err)
		}
	}
}
