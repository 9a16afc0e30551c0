package auth

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"
)

func files(dir, name string) TLSFiles {
	return TLSFiles{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key"), CAFile: filepath.Join(dir, "ca.crt")}
}

func leafOf(t *testing.T, f TLSFiles) *x509.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A client certificate that happens to carry a peer's name is not a peer:
// only node certificates (server usage) are.
func TestFromTLS_ClientCertNamedLikeAPeer(t *testing.T) {
	dir := t.TempDir()
	if err := CreateCerts(dir, CertSpec{Nodes: []string{"n1"}, Clients: []string{"n2"}}); err != nil {
		t.Fatal(err)
	}
	st := func(name string) tls.ConnectionState {
		l := leafOf(t, files(dir, name))
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{l}, VerifiedChains: [][]*x509.Certificate{{l}}}
	}
	if id := FromTLS(st("n1"), []string{"n1", "n2"}); id.Kind != Peer || id.Name != "n1" {
		t.Errorf("node cert n1: %v", id)
	}
	if id := FromTLS(st("n2"), []string{"n1", "n2"}); id.Kind != Cert || id.String() != "x509:n2" {
		t.Errorf("client cert named n2: %v, want x509:n2", id)
	}
	if id := FromTLS(tls.ConnectionState{}, nil); id != Anyone {
		t.Errorf("no cert: %v", id)
	}
}
