package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCreateCerts_RefusesOverwriteAndBadNames(t *testing.T) {
	dir := t.TempDir()
	if err := CreateCerts(dir, CertSpec{Nodes: []string{"n1"}}); err != nil {
		t.Fatal(err)
	}
	if err := CreateCerts(dir, CertSpec{Nodes: []string{"n1"}}); !errors.Is(err, ErrCertsExist) {
		t.Errorf("second init: %v, want ErrCertsExist", err)
	}
	for _, bad := range [][]string{{"../x"}, {"a", "a"}, {""}, {"ca"}} {
		if err := CreateCerts(t.TempDir(), CertSpec{Nodes: bad}); !errors.Is(err, ErrBadConfig) {
			t.Errorf("names %q: %v, want ErrBadConfig", bad, err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v, %v; want 0600", fi.Mode(), err)
	}
}

func files(dir, name string) Files {
	return Files{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key"), CAFile: filepath.Join(dir, "ca.crt")}
}

func leafOf(t *testing.T, f Files) *x509.Certificate {
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

func TestVerifyPeer(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	spec := CertSpec{Nodes: []string{"n1", "rogue"}, Clients: []string{"alice"}}
	if err := CreateCerts(a, spec); err != nil {
		t.Fatal(err)
	}
	if err := CreateCerts(b, spec); err != nil {
		t.Fatal(err)
	}
	s, err := LoadStore(files(a, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	_, pool := s.current()
	state := func(dir, name string) tls.ConnectionState {
		return tls.ConnectionState{PeerCertificates: []*x509.Certificate{leafOf(t, files(dir, name))}}
	}
	if name, err := VerifyPeer(state(a, "n1"), pool, []string{"n1", "n2"}, x509.ExtKeyUsageServerAuth); err != nil || name != "n1" {
		t.Errorf("n1: %q, %v", name, err)
	}
	for what, st := range map[string]tls.ConnectionState{
		"name not allowed":       state(a, "rogue"),
		"client cert, no server": state(a, "alice"),
		"other CA":               state(b, "n1"),
		"no certificate at all":  {},
	} {
		if _, err := VerifyPeer(st, pool, []string{"n1", "n2", "alice"}, x509.ExtKeyUsageServerAuth); !errors.Is(err, ErrNotPeer) {
			t.Errorf("%s: %v, want ErrNotPeer", what, err)
		}
	}
	if _, err := VerifyPeer(state(a, "rogue"), pool, []string{"n1"}, x509.ExtKeyUsageServerAuth); !errors.Is(err, ErrNotPeer) {
		t.Errorf("rogue: %v, want ErrNotPeer", err)
	}
}

// Rewriting the files rotates the certificate without a restart; broken
// files keep the old one and report the error.
func TestStore_Reload(t *testing.T) {
	dir := t.TempDir()
	if err := CreateCerts(filepath.Join(dir, "a"), CertSpec{Nodes: []string{"n1"}}); err != nil {
		t.Fatal(err)
	}
	if err := CreateCerts(filepath.Join(dir, "b"), CertSpec{Nodes: []string{"n1"}}); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, "live")
	copyFiles := func(from string) {
		if err := os.MkdirAll(live, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"n1.crt", "n1.key", "ca.crt"} {
			b, err := os.ReadFile(filepath.Join(from, n))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(live, n), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyFiles(filepath.Join(dir, "a"))
	s, err := LoadStore(files(live, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	s.now = func() time.Time { return clock }
	first, _ := s.current()
	copyFiles(filepath.Join(dir, "b"))
	later := time.Now().Add(time.Hour) // files' mtimes differ from the first copy's
	for _, n := range []string{"n1.crt", "n1.key", "ca.crt"} {
		_ = os.Chtimes(filepath.Join(live, n), later, later)
	}
	if c, _ := s.current(); !sameCert(c, first) {
		t.Fatal("reloaded before the check interval")
	}
	clock = clock.Add(2 * reloadCheckEvery)
	second, _ := s.current()
	if sameCert(second, first) {
		t.Fatal("certificate not reloaded after the files changed")
	}
	// A broken key keeps the current certificate.
	if err := os.WriteFile(filepath.Join(live, "n1.key"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); !errors.Is(err, ErrBadConfig) {
		t.Errorf("reload of a broken key: %v, want ErrBadConfig", err)
	}
	if c, _ := s.current(); !sameCert(c, second) {
		t.Error("a failed reload replaced the certificate")
	}
}

func sameCert(a, b *tls.Certificate) bool {
	return string(a.Certificate[0]) == string(b.Certificate[0])
}

func TestFiles_Validate(t *testing.T) {
	if err := (Files{}).Validate(); err != nil {
		t.Errorf("empty: %v", err)
	}
	if err := (Files{CAFile: "ca"}).Validate(); !errors.Is(err, ErrBadConfig) {
		t.Errorf("ca only: %v", err)
	}
	if _, err := LoadStore(Files{}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("LoadStore(empty): %v", err)
	}
}
