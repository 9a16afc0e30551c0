package tree

import (
	"bytes"
	"testing"

	"coord/proto/coordpb"
)

func onceTxn(sid, rid, acked uint64, ops ...*coordpb.Op) *coordpb.Command {
	return &coordpb.Command{TimeMs: 1, Cmd: &coordpb.Command_Txn{Txn: &coordpb.Txn{Ops: ops, SessionId: sid, RequestId: rid, AckedBelow: acked}}}
}

func seqCreate(p string) *coordpb.Op {
	return &coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: p, Sequential: true}}}
}

func TestTxn_Apply_ExactlyOnceRetries(t *testing.T) {
	tr := New()
	z := uint64(0)
	apply := func(c *coordpb.Command) *coordpb.ApplyResult {
		z++
		x := tr.Txn()
		r := x.Apply(z, c)
		tr = x.Commit()
		return r
	}
	if r := apply(&coordpb.Command{Cmd: &coordpb.Command_CreateSession{CreateSession: &coordpb.CreateSession{SessionId: 7, TimeoutMs: 1000}}}); r.Code != coordpb.ErrorCode_OK {
		t.Fatal(r.Message)
	}
	first := apply(onceTxn(7, 1, 0, seqCreate("/j-")))
	if first.Code != coordpb.ErrorCode_OK || first.Results[0].GetCreate().GetPath() != "/j-0000000000" {
		t.Fatalf("first: %v", first)
	}
	// The retry of request 1 returns the same result and creates nothing.
	again := apply(onceTxn(7, 1, 0, seqCreate("/j-")))
	if again.Zxid != first.Zxid || again.Results[0].GetCreate().GetPath() != "/j-0000000000" {
		t.Fatalf("retry: %v", again)
	}
	if names, _, _, _ := tr.Children("/", "", 0); len(names) != 1 {
		t.Fatalf("retry applied again: %v", names)
	}
	// A failed request is remembered as failed.
	bad := apply(onceTxn(7, 2, 0, &coordpb.Op{Op: &coordpb.Op_Set{Set: &coordpb.SetOp{Path: "/nope", Version: -1}}}))
	if bad.Code != coordpb.ErrorCode_NO_NODE {
		t.Fatalf("bad: %v", bad)
	}
	apply(&coordpb.Command{Cmd: &coordpb.Command_Txn{Txn: &coordpb.Txn{Ops: []*coordpb.Op{createOp("/nope", "")}}}})
	if r := apply(onceTxn(7, 2, 0, &coordpb.Op{Op: &coordpb.Op_Set{Set: &coordpb.SetOp{Path: "/nope", Version: -1}}})); r.Code != coordpb.ErrorCode_NO_NODE || r.Zxid != bad.Zxid {
		t.Fatalf("retried failure: %v", r)
	}
	if tr.Replies() != 2 {
		t.Fatalf("replies = %d", tr.Replies())
	}
	// Snapshots keep them.
	var buf bytes.Buffer
	if err := tr.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSnapshot(&buf)
	if err != nil || back.Replies() != 2 {
		t.Fatalf("restore: %d, %v", back.Replies(), err)
	}
	// acked_below forgets: request 1 is then new again (a client never
	// reuses an acknowledged id; this shows the result is gone).
	apply(onceTxn(7, 3, 2, seqCreate("/j-")))
	if tr.Replies() != 2 {
		t.Fatalf("after ack: %d replies, want 2 (ids 2 and 3)", tr.Replies())
	}
	// Unknown session, and a request id without a session, are refused.
	if r := apply(onceTxn(9, 1, 0, seqCreate("/j-"))); r.Code != coordpb.ErrorCode_SESSION_EXPIRED {
		t.Fatalf("unknown session: %v", r)
	}
	if r := apply(onceTxn(0, 5, 0, seqCreate("/j-"))); r.Code != coordpb.ErrorCode_INVALID_ARGUMENT {
		t.Fatalf("request id without session: %v", r)
	}
	// Closing the session forgets everything it had.
	apply(&coordpb.Command{Cmd: &coordpb.Command_CloseSession{CloseSession: &coordpb.CloseSession{SessionId: 7}}})
	if tr.Replies() != 0 {
		t.Fatalf("replies after close = %d", tr.Replies())
	}
}

func TestTxn_Apply_RepliesCapped(t *testing.T) {
	tr := New()
	x := tr.Txn()
	x.Apply(1, &coordpb.Command{Cmd: &coordpb.Command_CreateSession{CreateSession: &coordpb.CreateSession{SessionId: 7, TimeoutMs: 1000}}})
	for i := uint64(1); i <= MaxRepliesPerSession+10; i++ {
		x.Apply(i+1, onceTxn(7, i, 0, &coordpb.Op{Op: &coordpb.Op_Check{Check: &coordpb.CheckOp{Path: "/", Version: -1}}}))
	}
	tr = x.Commit()
	if tr.Replies() != MaxRepliesPerSession {
		t.Fatalf("replies = %d, want %d", tr.Replies(), MaxRepliesPerSession)
	}
}
