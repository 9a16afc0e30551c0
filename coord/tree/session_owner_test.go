package tree

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"coord/proto/coordpb"
)

var (
	alice = &Caller{Ids: []string{"x509:alice", "group:dev"}}
	bob   = &Caller{Ids: []string{"x509:bob", "group:dev"}}
	root  = &Caller{Ids: []string{"x509:admin"}, Super: true}
)

func openOwned(id uint64, owner string) *coordpb.Command {
	return &coordpb.Command{Cmd: &coordpb.Command_CreateSession{CreateSession: &coordpb.CreateSession{SessionId: id, TimeoutMs: 1000, Owner: owner}}}
}

func closeAs(id uint64, c *Caller) *coordpb.Command {
	return &coordpb.Command{Cmd: &coordpb.Command_CloseSession{CloseSession: &coordpb.CloseSession{SessionId: id, Caller: c}}}
}

func txnAs(c *Caller, sid, rid uint64, ops ...*coordpb.Op) *coordpb.Command {
	return &coordpb.Command{Cmd: &coordpb.Command_Txn{Txn: &coordpb.Txn{Ops: ops, SessionId: sid, RequestId: rid, Caller: c}}}
}

func TestSessionOwner(t *testing.T) {
	for _, tc := range []struct {
		c    *Caller
		want string
	}{{nil, AnonymousOwner}, {&Caller{}, AnonymousOwner}, {alice, "x509:alice"}, {&Caller{Ids: []string{"user:bob", "group:ops"}}, "user:bob"}} {
		if got := SessionOwner(tc.c); got != tc.want {
			t.Errorf("SessionOwner(%v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestTxn_SessionOwnerChecks(t *testing.T) {
	h := newHarness(t)
	h.ok(openOwned(7, "x509:alice"))
	h.ok(txnAs(alice, 0, 0, createMode("/e", coordpb.CreateMode_EPHEMERAL, false, 7, 0)))

	denied := []struct {
		name string
		cmd  *coordpb.Command
	}{
		{"bob closes", closeAs(7, bob)},
		{"anonymous closes", closeAs(7, nil)},
		{"bob creates an ephemeral in alice's session", txnAs(bob, 0, 0, createMode("/b", coordpb.CreateMode_EPHEMERAL, false, 7, 0))},
		{"bob names alice's session in a write header", txnAs(bob, 7, 1, createOp("/p", ""))},
		{"bob names it without a request id", txnAs(bob, 7, 0, createOp("/p", ""))},
	}
	for _, d := range denied {
		if res := h.apply(d.cmd); res.Code != coordpb.ErrorCode_NO_AUTH {
			t.Errorf("%s: code %v (%s), want NO_AUTH", d.name, res.Code, res.Message)
		}
	}
	if !h.tree.HasSession(7) || h.tree.Ephemerals(7)[0] != "/e" {
		t.Fatal("alice's session or ephemeral is gone after denied commands")
	}
	if _, err := h.tree.CheckSession(7, bob); !errors.Is(err, ErrNoAuth) {
		t.Fatalf("CheckSession as bob: %v, want ErrNoAuth", err)
	}
	if ms, err := h.tree.CheckSession(7, alice); err != nil || ms != 1000 {
		t.Fatalf("CheckSession as alice: %d, %v", ms, err)
	}
	if _, err := h.tree.CheckSession(8, alice); !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("CheckSession of an unknown session: %v", err)
	}
	// The owner's own write with the header is remembered as before.
	h.ok(txnAs(alice, 7, 1, createOp("/a", "")))
	// An expiry carries no caller and is always allowed; a superuser may close.
	h.ok(openOwned(8, "x509:alice"))
	h.ok(&coordpb.Command{Cmd: &coordpb.Command_CloseSession{CloseSession: &coordpb.CloseSession{SessionId: 8, Expired: true}}})
	h.ok(closeAs(7, root))
	if h.tree.HasSession(7) || len(h.tree.Ephemerals(7)) != 0 {
		t.Fatal("superuser close left the session")
	}
}

func TestTxn_AnonymousAndLegacySessions(t *testing.T) {
	h := newHarness(t)
	// The open world: every caller is anonymous and owns every session.
	h.ok(openOwned(1, AnonymousOwner))
	h.ok(txnAs(nil, 1, 1, createMode("/e", coordpb.CreateMode_EPHEMERAL, false, 1, 0)))
	if res := h.apply(closeAs(1, alice)); res.Code != coordpb.ErrorCode_NO_AUTH {
		t.Fatalf("alice closes an anonymous session: %v", res.Code)
	}
	h.ok(closeAs(1, nil))
	// A session with no owner (old log entry or snapshot) is anyone's.
	h.ok(openSession(2))
	h.ok(txnAs(bob, 0, 0, createMode("/b", coordpb.CreateMode_EPHEMERAL, false, 2, 0)))
	h.ok(closeAs(2, alice))
}

func TestSnapshot_SessionOwnersAndUserGenerations(t *testing.T) {
	h := newHarness(t)
	h.ok(openOwned(7, "user:alice"))
	h.ok(&coordpb.Command{Cmd: &coordpb.Command_SetUser{SetUser: &coordpb.SetUser{Name: "alice", BcryptHash: bytes.Repeat([]byte("x"), 60)}}})
	gen, ok := h.tree.UserGeneration("alice")
	if !ok || gen != h.zxid {
		t.Fatalf("generation %d, %v; want the zxid %d", gen, ok, h.zxid)
	}
	var buf bytes.Buffer
	if err := h.tree.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if f := formatOf(buf.Bytes()); f != 4 {
		t.Fatalf("format %d, want 4", f)
	}
	got, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Sessions(); len(s) != 1 || s[0].Owner != "user:alice" {
		t.Fatalf("sessions after restore: %+v", s)
	}
	if g, _ := got.UserGeneration("alice"); g != gen {
		t.Fatalf("generation after restore %d, want %d", g, gen)
	}
	// Setting the user again moves the generation.
	h.ok(&coordpb.Command{Cmd: &coordpb.Command_SetUser{SetUser: &coordpb.SetUser{Name: "alice", BcryptHash: bytes.Repeat([]byte("y"), 60)}}})
	if g, _ := h.tree.UserGeneration("alice"); g == gen {
		t.Fatal("generation unchanged by a password change")
	}
}

// TestSnapshot_Format3 reads a snapshot in the previous format: its
// sessions have no owner and anyone may use them.
func TestSnapshot_Format3(t *testing.T) {
	var buf bytes.Buffer
	s := &snapWriter{w: bufio.NewWriter(&buf)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.write(snapshotMagic))
	must(s.record(recHeader, &coordpb.SnapshotHeader{Format: 3, Zxid: 5, Nodes: 2, Sessions: 1}))
	must(s.record(recNode, &coordpb.SnapshotNode{Path: "/", Stat: &coordpb.Stat{NumChildren: 1, Directory: true}}))
	must(s.record(recNode, &coordpb.SnapshotNode{Path: "/e", Stat: &coordpb.Stat{Czxid: 4, Mzxid: 4, Pzxid: 4, Mode: coordpb.CreateMode_EPHEMERAL, EphemeralOwner: 9}}))
	must(s.record(recSession, &coordpb.SnapshotSession{SessionId: 9, TimeoutMs: 1000}))
	must(s.record(recUser, &coordpb.SnapshotUser{Name: "bob", BcryptHash: bytes.Repeat([]byte("x"), 60)}))
	var tr [9]byte
	tr[0] = recTrailer
	binary.BigEndian.PutUint64(tr[1:], s.count)
	must(s.write(tr[:]))
	_, err := s.w.Write(binary.BigEndian.AppendUint32(nil, s.crc))
	must(err)
	must(s.w.Flush())

	got, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatalf("format 3: %v", err)
	}
	if ss := got.Sessions(); len(ss) != 1 || ss[0].Owner != "" {
		t.Fatalf("sessions %+v, want one legacy session", ss)
	}
	if _, err := got.CheckSession(9, bob); err != nil {
		t.Fatalf("a legacy session refused bob: %v", err)
	}
	if g, ok := got.UserGeneration("bob"); !ok || g != 0 {
		t.Fatalf("legacy user generation %d, %v", g, ok)
	}
}
