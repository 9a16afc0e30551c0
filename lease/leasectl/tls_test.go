package leasectl

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coord/internal/tlsconf"
)

// TestProcesses_TLS: three `lease serve` processes with --cert/--key/--ca
// elect a holder over mutual TLS; an operator needs a CA-signed
// certificate to reach them; a member restarted without TLS cannot join
// (its rounds find no quorum) while the TLS members keep the lease.
func TestProcesses_TLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	if err := tlsconf.CreateCerts(dir, tlsconf.CertSpec{Nodes: []string{"a", "b", "c"}, Clients: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	tlsArgs := func(name string) []string {
		return []string{"--cert", filepath.Join(dir, name+".crt"), "--key", filepath.Join(dir, name+".key"), "--ca", filepath.Join(dir, "ca.crt")}
	}
	ps := []*proc{{id: "a"}, {id: "b"}, {id: "c"}}
	var peers []string
	for _, p := range ps {
		p.addr = freeAddr(t)
		peers = append(peers, p.id+"="+p.addr)
	}
	base := func(p *proc) string {
		return fmt.Sprintf("--id %s --listen %s --peers %s --unchecked-clock --lease-duration 600ms --max-clock-error 10ms --round-timeout 60ms",
			p.id, p.addr, strings.Join(peers, ","))
	}
	for _, p := range ps {
		p.args = base(p) + " " + strings.Join(tlsArgs(p.id), " ")
		startProc(t, p)
	}
	for _, p := range ps {
		waitListening(t, p.addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := func(args ...string) (string, error) { return run(ctx, append(tlsArgs("admin"), args...)...) }

	out, err := admin("acquire", "--endpoint", ps[0].addr, "r")
	if err != nil || !strings.Contains(out, "holder=a") {
		t.Fatalf("acquire over TLS: %v %s", err, out)
	}
	if out, err := run(ctx, "get", "--timeout", "2s", "--endpoint", ps[1].addr, "r"); err == nil {
		t.Fatalf("plaintext operator was served: %s", out)
	}
	if out, err := run(ctx, "--ca", filepath.Join(dir, "ca.crt"), "get", "--timeout", "2s", "--endpoint", ps[1].addr, "r"); err == nil {
		t.Fatalf("operator without a certificate was served: %s", out)
	}

	// c comes back without TLS: it cannot take a lease, the others can.
	c := ps[2]
	c.cmd.Process.Kill()
	c.cmd.Wait()
	c.args = base(c)
	startProc(t, c)
	waitListening(t, c.addr)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err = run(ctx, "acquire", "--try", "--endpoint", c.addr, "x")
		if err != nil && strings.Contains(err.Error(), "quorum") {
			break
		}
		if err == nil {
			t.Fatalf("plaintext member acquired: %s", out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("plaintext member: %v, want no quorum", err)
		}
	}
	out, err = admin("get", "--endpoint", ps[1].addr, "r")
	if err != nil || !strings.Contains(out, "holder=a") {
		t.Fatalf("TLS members after the plaintext restart: %v %s", err, out)
	}
	out, err = admin("acquire", "--try", "--endpoint", ps[1].addr, "y")
	if err != nil || !strings.Contains(out, "holder=b") {
		t.Fatalf("TLS member b acquires with a plaintext c: %v %s", err, out)
	}
}
