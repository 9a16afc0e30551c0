package tree

import (
	"strings"
	"testing"

	"coord/proto/coordpb"
)

func createParents(p string, mode coordpb.CreateMode, session uint64, seq bool) *coordpb.Command {
	return txn(&coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: p, Mode: mode, SessionId: session, Sequential: seq, Parents: true}}})
}

// Parents makes the missing ancestors as containers in one step; they go
// away with their last child like any container, and the next create
// with Parents makes them again.
func TestTxn_Apply_CreateParents(t *testing.T) {
	tr := New()
	x := tr.Txn()
	x.Apply(1, openSession(7))
	r := x.Apply(2, createParents("/locks/a/b/lock-", coordpb.CreateMode_EPHEMERAL, 7, true))
	if r.Code != coordpb.ErrorCode_OK {
		t.Fatalf("create with parents: %v %s", r.Code, r.Message)
	}
	got := r.GetResults()[0].GetCreate().GetPath()
	if got != "/locks/a/b/lock-0000000000" {
		t.Fatalf("path %q", got)
	}
	tr = x.Commit()
	checkInvariants(t, tr)
	for _, p := range []string{"/locks", "/locks/a", "/locks/a/b"} {
		n, ok := tr.get(p)
		if !ok || n.mode != coordpb.CreateMode_CONTAINER || !n.dir || n.czxid != 2 || n.numChildren != 1 {
			t.Fatalf("%s: %+v (ok %v), want a container made at zxid 2 with one child", p, n, ok)
		}
	}
	if root, _ := tr.get("/"); root.numChildren != 1 || root.pzxid != 2 {
		t.Fatalf("root: %+v", root)
	}
	// Events: each ancestor created, each parent's children changed.
	var created int
	for _, e := range x.Events() {
		if e.Type == EventNodeCreated {
			created++
		}
	}
	if created != 4 {
		t.Fatalf("created events %d, want 4: %v", created, x.Events())
	}
	// Deleting the child takes the container chain with it.
	x = tr.Txn()
	x.Apply(3, txn(deleteOp(got, -1, false)))
	tr = x.Commit()
	checkInvariants(t, tr)
	if _, ok := tr.get("/locks"); ok {
		t.Fatal("emptied containers should be gone")
	}
	// Existing parents are used as they are; no parents flag, no magic.
	x = tr.Txn()
	if r := x.Apply(4, txn(createOp("/x/y", ""))); r.Code != coordpb.ErrorCode_NO_NODE {
		t.Fatalf("without Parents: %v", r.Code)
	}
	x.Apply(5, txn(createOp("/x", "")))
	if r := x.Apply(6, createParents("/x/y/z", coordpb.CreateMode_PERSISTENT, 0, false)); r.Code != coordpb.ErrorCode_OK {
		t.Fatal(r.Message)
	}
	tr = x.Commit()
	checkInvariants(t, tr)
	if n, _ := tr.get("/x"); n.mode != coordpb.CreateMode_PERSISTENT {
		t.Fatalf("/x changed mode: %v", n.mode)
	}
}

// A refused create with Parents leaves nothing behind.
func TestTxn_Apply_CreateParentsRefusedChangesNothing(t *testing.T) {
	tr := New()
	x := tr.Txn()
	x.Apply(1, openSession(7))
	x.Apply(2, txn(&coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: "/e", Mode: coordpb.CreateMode_EPHEMERAL, SessionId: 7}}}))
	tr = x.Commit()
	before := dumpState(tr, false)
	long := "/p/" + strings.Repeat("x", MaxPathBytes-12)
	for i, c := range []struct {
		cmd  *coordpb.Command
		want coordpb.ErrorCode
	}{
		{createParents("/e/a/b", coordpb.CreateMode_PERSISTENT, 0, false), coordpb.ErrorCode_NO_CHILDREN_FOR_EPHEMERALS},
		{createParents("/q/.lock/x", coordpb.CreateMode_PERSISTENT, 0, false), coordpb.ErrorCode_INVALID_PATH},
		{createParents(long, coordpb.CreateMode_PERSISTENT, 0, true), coordpb.ErrorCode_INVALID_PATH},
		{createParents("/n/x", coordpb.CreateMode_EPHEMERAL, 99, false), coordpb.ErrorCode_SESSION_EXPIRED},
	} {
		x = tr.Txn()
		r := x.Apply(uint64(10+i), c.cmd)
		if r.Code != c.want {
			t.Fatalf("case %d: %v %s, want %v", i, r.Code, r.Message, c.want)
		}
		if after := dumpState(x.Commit(), false); after != before {
			t.Fatalf("case %d changed the tree:\n%s\nwant\n%s", i, after, before)
		}
	}
}
