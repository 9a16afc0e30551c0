package main

import (
	"path/filepath"
	"strings"
	"testing"

	"coord/coord"
	"coord/coord/auth"
	"coord/coord/coordtest"
)

// certs init, then a TLS node driven with --cert/--key/--ca: whoami,
// create --acl, getacl, setacl, and a denied get as another identity.
func TestRun_CertsAndACL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out, errs, code := ctl("", "certs", "init", "--nodes", "n1", "--clients", "admin,alice,bob", dir)
	if code != 0 || !strings.Contains(out, "wrote CA and 4 certificates") {
		t.Fatalf("certs init: %d %q %q", code, out, errs)
	}
	if _, errs, code := ctl("", "certs", "init", "--nodes", "n1", dir); code != 1 || !strings.Contains(errs, "already exist") {
		t.Errorf("second certs init: %d %q", code, errs)
	}
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = auth.TLSFiles{CertFile: filepath.Join(dir, "n1.crt"), KeyFile: filepath.Join(dir, "n1.key"), CAFile: filepath.Join(dir, "ca.crt")}
		cfg.Superusers = []string{"x509:admin"}
	}})
	as := func(who string, args ...string) (string, string, int) {
		base := []string{"--endpoints", c.Node(0).Addr, "--ca", filepath.Join(dir, "ca.crt")}
		if who != "" {
			base = append(base, "--cert", filepath.Join(dir, who+".crt"), "--key", filepath.Join(dir, who+".key"))
		}
		return ctl("", append(base, args...)...)
	}
	if out, errs, code := as("admin", "whoami"); code != 0 || out != "x509:admin\n(superuser)\n" {
		t.Errorf("whoami admin: %d %q %q", code, out, errs)
	}
	if out, _, code := as("", "whoami"); code != 0 || out != "anonymous\n" {
		t.Errorf("whoami anon: %d %q", code, out)
	}
	if _, errs, code := as("alice", "create", "--acl", "creator:all,x509:bob:r", "/alice", "secret"); code != 0 {
		t.Fatalf("create --acl: %q", errs)
	}
	if out, _, code := as("bob", "getacl", "/alice"); code != 0 || out != "x509:alice rwcda\nx509:bob r----\n" {
		t.Errorf("getacl: %d %q", code, out)
	}
	if out, _, code := as("bob", "get", "/alice"); code != 0 || out != "secret" {
		t.Errorf("bob get: %d %q", code, out)
	}
	if _, errs, code := as("bob", "set", "/alice", "x"); code != 1 || !strings.Contains(errs, "permission denied") {
		t.Errorf("bob set: %d %q", code, errs)
	}
	if out, errs, code := as("alice", "setacl", "/alice", "x509:alice:all"); code != 0 || out != "aclVersion 1\n" {
		t.Errorf("setacl: %d %q %q", code, out, errs)
	}
	if _, errs, code := as("bob", "get", "/alice"); code != 1 || !strings.Contains(errs, "permission denied") {
		t.Errorf("bob get after setacl: %d %q", code, errs)
	}
	if _, errs, code := as("", "status"); code != 1 || !strings.Contains(errs, "unauthenticated") {
		t.Errorf("anonymous status: %d %q", code, errs)
	}
	if _, errs, code := ctl("", "--endpoints", c.Node(0).Addr, "--timeout", "1s", "get", "/alice"); code != 1 {
		t.Errorf("plaintext coordctl to a TLS node: %d %q", code, errs)
	}
	if _, errs, code := as("bob", "setacl", "/alice", "x509:bob:rwx"); code != 2 || !strings.Contains(errs, "rwcda") {
		t.Errorf("bad acl: %d %q", code, errs)
	}
}

// coordctl auth add-user/list/delete-user as a certificate superuser, then
// --user/--password-file logins.
func TestRun_AuthUsers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if _, errs, code := ctl("", "certs", "init", "--nodes", "n1", "--clients", "admin", dir); code != 0 {
		t.Fatal(errs)
	}
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = auth.TLSFiles{CertFile: filepath.Join(dir, "n1.crt"), KeyFile: filepath.Join(dir, "n1.key"), CAFile: filepath.Join(dir, "ca.crt")}
		cfg.Superusers = []string{"x509:admin"}
		cfg.TokenKeyFile = filepath.Join(dir, "token.key")
	}})
	base := []string{"--endpoints", c.Node(0).Addr, "--ca", filepath.Join(dir, "ca.crt")}
	admin := append(append([]string{}, base...), "--cert", filepath.Join(dir, "admin.crt"), "--key", filepath.Join(dir, "admin.key"))
	if _, errs, code := ctl("s3cret-pass\n", append(admin, "auth", "add-user", "--groups", "ops,dev", "bob")...); code != 0 {
		t.Fatalf("add-user: %q", errs)
	}
	if out, _, code := ctl("", append(admin, "auth", "list")...); code != 0 || out != "bob ops,dev\n" {
		t.Errorf("auth list: %d %q", code, out)
	}
	if out, errs, code := ctl("s3cret-pass\n", append(base, "--user", "bob", "--password-file", "-", "whoami")...); code != 0 || out != "user:bob\ngroup:ops\ngroup:dev\n" {
		t.Errorf("whoami as bob: %d %q %q", code, out, errs)
	}
	if _, errs, code := ctl("wrong-pass\n", append(base, "--user", "bob", "--password-file", "-", "whoami")...); code != 1 || !strings.Contains(errs, "wrong user or password") {
		t.Errorf("wrong password: %d %q", code, errs)
	}
	if _, errs, code := ctl("s3cret-pass\n", append(base, "--user", "bob", "--password-file", "-", "auth", "list")...); code != 1 || !strings.Contains(errs, "superuser") {
		t.Errorf("auth list as bob: %d %q", code, errs)
	}
	if _, errs, code := ctl("", append(admin, "auth", "delete-user", "bob")...); code != 0 {
		t.Errorf("delete-user: %q", errs)
	}
}
