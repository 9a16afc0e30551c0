package tree

import (
	"bytes"
	"errors"
	"testing"

	"coord/proto/coordpb"
)

func as(c *Caller, ops ...*coordpb.Op) *coordpb.Command {
	return &coordpb.Command{Cmd: &coordpb.Command_Txn{Txn: &coordpb.Txn{Ops: ops, Caller: c}}}
}

func who(ids ...string) *Caller { return &Caller{Ids: ids} }

func createACL(p string, acl ...*coordpb.ACLEntry) *coordpb.Op {
	return &coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: p, Acl: acl}}}
}

func setACLOp(p string, v int64, acl ...*coordpb.ACLEntry) *coordpb.Op {
	return &coordpb.Op{Op: &coordpb.Op_SetAcl{SetAcl: &coordpb.SetACLOp{Path: p, Acl: acl, AclVersion: v}}}
}

func grant(id string, p Perm) *coordpb.ACLEntry { return &coordpb.ACLEntry{Id: id, Perms: uint32(p)} }

func (h *harness) code(cmd *coordpb.Command) coordpb.ErrorCode {
	h.t.Helper()
	return h.apply(cmd).Code
}

// TestACL_Apply: every write op checks the permission ZooKeeper asks for,
// a multi fails as a whole on one denied sub-op, and a missing node under
// an unreadable parent answers NoAuth, not NoNode.
func TestACL_Apply(t *testing.T) {
	h := newHarness(t)
	alice, bob, ops, anon := who("x509:alice"), who("user:bob"), who("x509:carol", "group:ops"), (*Caller)(nil)
	root := &Caller{Super: true}
	// /a: alice all; ops group read+create; world nothing.
	h.ok(as(alice, createACL("/a", grant(IDCreator, PermAll), grant("group:ops", PermRead|PermCreate))))
	if h.tree.ACLNodes() != 1 {
		t.Fatalf("ACLNodes = %d", h.tree.ACLNodes())
	}
	acl, st, err := h.tree.ACL("/a")
	if err != nil || len(acl) != 2 || acl[0].Id != "x509:alice" || st.Aversion != 0 {
		t.Fatalf("ACL(/a) = %v %v %v (creator must become x509:alice)", acl, st, err)
	}
	h.ok(as(alice, createOp("/a/x", "1")))
	for _, tc := range []struct {
		name string
		cmd  *coordpb.Command
		want coordpb.ErrorCode
	}{
		{"anon create under /a", as(anon, createOp("/a/y", "")), coordpb.ErrorCode_NO_AUTH},
		{"bob create under /a", as(bob, createOp("/a/y", "")), coordpb.ErrorCode_NO_AUTH},
		{"bob delete /a/x", as(bob, deleteOp("/a/x", -1, false)), coordpb.ErrorCode_NO_AUTH},
		{"ops delete /a/x (no d)", as(ops, deleteOp("/a/x", -1, false)), coordpb.ErrorCode_NO_AUTH},
		{"bob set /a", as(bob, setOp("/a", "v", -1)), coordpb.ErrorCode_NO_AUTH},
		{"bob check /a", as(bob, checkOp("/a", -1)), coordpb.ErrorCode_NO_AUTH},
		{"ops setacl /a", as(ops, setACLOp("/a", -1)), coordpb.ErrorCode_NO_AUTH},
		{"bob recursive delete /a", as(bob, deleteOp("/a", -1, true)), coordpb.ErrorCode_NO_AUTH},
		{"bob: missing node under unreadable /a is NoAuth", as(bob, setOp("/a/nope/deeper", "", -1)), coordpb.ErrorCode_NO_AUTH},
		{"ops: missing node under readable /a is NoNode", as(ops, setOp("/a/nope", "", -1)), coordpb.ErrorCode_NO_NODE},
		{"multi with one denied op", as(bob, createOp("/b1", ""), setOp("/a", "v", -1)), coordpb.ErrorCode_NO_AUTH},
		{"bad acl id", as(alice, createACL("/c", grant("root", PermAll))), coordpb.ErrorCode_INVALID_ACL},
		{"bad perms", as(alice, createACL("/c", grant(IDAnyone, 0))), coordpb.ErrorCode_INVALID_ACL},
		{"anonymous creator", as(anon, createACL("/c", grant(IDCreator, PermAll))), coordpb.ErrorCode_INVALID_ACL},
		{"setacl bad version", as(alice, setACLOp("/a", 7)), coordpb.ErrorCode_BAD_VERSION},
	} {
		before := dumpState(h.tree, false)
		if got := h.code(tc.cmd); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if dumpState(h.tree, false) != before {
			t.Errorf("%s: a failed command changed the state", tc.name)
		}
	}
	// Allowed: ops creates, alice sets, a superuser does anything.
	h.ok(as(ops, createOp("/a/ops", "")))
	h.ok(as(alice, setOp("/a", "v", -1)))
	h.ok(as(root, setOp("/a/x", "super", -1)))
	// SetACL bumps aversion; an empty ACL opens the node again.
	h.ok(as(alice, setACLOp("/a", 0, grant("x509:alice", PermAll))))
	if st := h.stat("/a"); st.Aversion != 1 {
		t.Errorf("aversion %d after one setacl", st.Aversion)
	}
	h.ok(as(alice, setACLOp("/a", 1)))
	if h.tree.ACLNodes() != 0 {
		t.Errorf("ACLNodes = %d after opening /a", h.tree.ACLNodes())
	}
	h.ok(as(anon, createOp("/a/anon", "")))
	checkInvariants(t, h.tree)
	// Deleting an ACL'd subtree keeps the count right.
	h.ok(as(alice, createACL("/a/anon/z", grant(IDAnyone, PermAll))))
	h.ok(as(anon, deleteOp("/a", -1, true)))
	checkInvariants(t, h.tree)
}

// TestACL_Reads: Check and CheckParent (the read-side helpers the RPC
// layer uses) follow the same rules; an open tree answers nil at once.
func TestACL_Reads(t *testing.T) {
	h := newHarness(t)
	h.ok(txn(createOp("/open", "")))
	if err := h.tree.Check("/open", PermRead, nil); err != nil {
		t.Fatal(err)
	}
	h.ok(as(who("x509:alice"), createACL("/s", grant("x509:alice", PermRead))))
	h.ok(as(&Caller{Super: true}, createOp("/s/child", "")))
	for _, tc := range []struct {
		p    string
		c    *Caller
		perm Perm
		err  error
	}{
		{"/s", who("x509:alice"), PermRead, nil},
		{"/s", who("x509:bob"), PermRead, ErrNoAuth},
		{"/s", who("x509:alice"), PermWrite, ErrNoAuth},
		{"/s/child", who("x509:bob"), PermRead, nil}, // the child itself is open
		{"/s/missing", who("x509:bob"), PermRead, ErrNoAuth},
		{"/s/missing", who("x509:alice"), PermRead, nil},
		{"/s", &Caller{Super: true}, PermAdmin, nil},
	} {
		if err := h.tree.Check(tc.p, tc.perm, tc.c); !errors.Is(err, tc.err) && !(err == nil && tc.err == nil) {
			t.Errorf("Check(%s, %s, %v) = %v, want %v", tc.p, PermString(tc.perm), tc.c.GetIds(), err, tc.err)
		}
	}
	// exists /s/child needs READ on /s.
	if err := h.tree.CheckParent("/s/child", PermRead, who("x509:bob")); !errors.Is(err, ErrNoAuth) {
		t.Errorf("CheckParent: %v", err)
	}
}

// TestACL_Snapshot: ACLs and aversion survive a snapshot round trip.
func TestACL_Snapshot(t *testing.T) {
	h := newHarness(t)
	h.ok(as(who("user:u"), createACL("/a", grant("user:u", PermAll), grant("group:g", PermRead))))
	h.ok(as(who("user:u"), setACLOp("/a", 0, grant("user:u", PermAll))))
	var buf bytes.Buffer
	if err := h.tree.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if dumpState(got, true) != dumpState(h.tree, true) || got.ACLNodes() != 1 {
		t.Fatalf("after restore:\n%s\nwant\n%s", dumpState(got, true), dumpState(h.tree, true))
	}
	checkInvariants(t, got)
}

func TestPerms_Parse(t *testing.T) {
	if p, err := ParsePerms("rwcda"); err != nil || p != PermAll || PermString(p) != "rwcda" {
		t.Errorf("rwcda: %v %v", p, err)
	}
	if p, _ := ParsePerms("rc"); PermString(p) != "r-c--" {
		t.Errorf("rc: %s", PermString(p))
	}
	for _, bad := range []string{"", "x", "rwx"} {
		if _, err := ParsePerms(bad); !errors.Is(err, ErrInvalidACL) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// BenchmarkCheck: the read-side check costs nothing (no lookup, no
// allocation) while no node has an ACL, and a lookup without allocation
// when some do.
func BenchmarkCheck(b *testing.B) {
	tr := New()
	x := tr.Txn()
	x.Apply(1, txn(createOp("/a", "")))
	tr = x.Commit()
	alice := who("x509:alice")
	b.Run("no-acls", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if tr.Check("/a", PermRead, alice) != nil {
				b.Fatal("denied")
			}
		}
	})
	x = tr.Txn()
	x.Apply(2, as(alice, createACL("/b", grant("x509:alice", PermAll))))
	tr2 := x.Commit()
	b.Run("acl", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if tr2.Check("/b", PermRead, alice) != nil {
				b.Fatal("denied")
			}
		}
	})
}
