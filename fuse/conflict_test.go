package fuse

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestWrite_ConflictsAndAppend: a file opened without O_TRUNC is written
// at close only if nobody changed it since the open (else ESTALE, and
// the other write stays); O_APPEND re-applies its bytes on top of a
// concurrent change; O_TRUNC replaces.
func TestWrite_ConflictsAndAppend(t *testing.T) {
	cl := newCluster(t, 1)
	m := mountAt(t, cl.Addrs(), nil)
	c := newClient(t, cl.Addrs())
	ctx := ctxT(t, 30*time.Second)
	p := m.Dir() + "/f"
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}

	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(ctx, "/f", []byte("theirs"), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("MINE"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("close after a concurrent change: %v, want ESTALE", err)
	}
	if data, _, _ := c.Get(ctx, "/f", nil); string(data) != "theirs" {
		t.Fatalf("the concurrent write was overwritten: %q", data)
	}

	f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(ctx, "/f", []byte("base"), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("+app")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("append close: %v", err)
	}
	if data, _, _ := c.Get(ctx, "/f", nil); string(data) != "base+app" {
		t.Fatalf("append over a concurrent change: %q, want base+app", data)
	}

	if err := os.WriteFile(p, []byte("replaced"), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, _, _ := c.Get(ctx, "/f", nil); string(data) != "replaced" {
		t.Fatalf("O_TRUNC write: %q", data)
	}
}
