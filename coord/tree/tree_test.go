package tree

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"coord/proto/coordpb"
)

// harness applies commands at increasing zxids and commits after each.
type harness struct {
	t    *testing.T
	tree *Tree
	zxid uint64
	now  int64
}

func newHarness(t *testing.T) *harness { return &harness{t: t, tree: New(), now: 1000} }

func (h *harness) apply(cmd *coordpb.Command) *coordpb.ApplyResult {
	h.zxid++
	h.now += 10
	cmd.TimeMs = h.now
	x := h.tree.Txn()
	res := x.Apply(h.zxid, cmd)
	h.tree = x.Commit()
	return res
}

func txn(ops ...*coordpb.Op) *coordpb.Command {
	return &coordpb.Command{Cmd: &coordpb.Command_Txn{Txn: &coordpb.Txn{Ops: ops}}}
}

func createOp(p string, data string) *coordpb.Op {
	return &coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: p, Data: []byte(data)}}}
}

func createMode(p string, mode coordpb.CreateMode, seq bool, session uint64, ttl int64) *coordpb.Op {
	return &coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: p, Mode: mode, Sequential: seq, SessionId: session, TtlMs: ttl}}}
}

func setOp(p, data string, version int64) *coordpb.Op {
	return &coordpb.Op{Op: &coordpb.Op_Set{Set: &coordpb.SetOp{Path: p, Data: []byte(data), Version: version}}}
}

func deleteOp(p string, version int64, recursive bool) *coordpb.Op {
	return &coordpb.Op{Op: &coordpb.Op_Delete{Delete: &coordpb.DeleteOp{Path: p, Version: version, Recursive: recursive}}}
}

func checkOp(p string, version int64) *coordpb.Op {
	return &coordpb.Op{Op: &coordpb.Op_Check{Check: &coordpb.CheckOp{Path: p, Version: version}}}
}

func openSession(id uint64) *coordpb.Command {
	return &coordpb.Command{Cmd: &coordpb.Command_CreateSession{CreateSession: &coordpb.CreateSession{SessionId: id, TimeoutMs: 1000}}}
}

func closeSession(id uint64) *coordpb.Command {
	return &coordpb.Command{Cmd: &coordpb.Command_CloseSession{CloseSession: &coordpb.CloseSession{SessionId: id}}}
}

func (h *harness) ok(cmd *coordpb.Command) *coordpb.ApplyResult {
	h.t.Helper()
	res := h.apply(cmd)
	if res.Code != coordpb.ErrorCode_OK {
		h.t.Fatalf("apply: %v %s (op %d)", res.Code, res.Message, res.FailedOp)
	}
	return res
}

func (h *harness) mustExist(p string, want bool) {
	h.t.Helper()
	_, ok, err := h.tree.Exists(p)
	if err != nil || ok != want {
		h.t.Fatalf("exists(%s) = %v, %v; want %v", p, ok, err, want)
	}
}

func (h *harness) stat(p string) *coordpb.Stat {
	h.t.Helper()
	_, st, err := h.tree.Get(p)
	if err != nil {
		h.t.Fatalf("get %s: %v", p, err)
	}
	return st
}

// TestTxn_Apply covers every op's success (results, stat, events) and
// every error: code, message, no results, zxid advanced, state unchanged.
func TestTxn_Apply(t *testing.T) {
	t.Run("ok", testApplyOK)
	t.Run("error", testApplyErrors)
}

func testApplyErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   []*coordpb.Command
		cmd     *coordpb.Command
		code    coordpb.ErrorCode
		msgPart string
	}{
		{"create under missing parent", nil, txn(createOp("/a/b", "")), coordpb.ErrorCode_NO_NODE, "parent node does not exist: /a"},
		{"create existing", []*coordpb.Command{txn(createOp("/a", ""))}, txn(createOp("/a", "")), coordpb.ErrorCode_NODE_EXISTS, ""},
		{"create root", nil, txn(createOp("/", "")), coordpb.ErrorCode_NODE_EXISTS, ""},
		{"create bad path", nil, txn(createOp("a", "")), coordpb.ErrorCode_INVALID_PATH, "must start with /"},
		{"create empty segment", nil, txn(createOp("/a//b", "")), coordpb.ErrorCode_INVALID_PATH, "empty segment"},
		{"create dotdot", nil, txn(createOp("/a/..", "")), coordpb.ErrorCode_INVALID_PATH, `".." segment`},
		{"create trailing slash", nil, txn(createOp("/a/", "")), coordpb.ErrorCode_INVALID_PATH, "trailing /"},
		{"create control char", nil, txn(createOp("/a\x01", "")), coordpb.ErrorCode_INVALID_PATH, "control character"},
		{"create bad utf8", nil, txn(createOp("/a\xff", "")), coordpb.ErrorCode_INVALID_PATH, "UTF-8"},
		{"create too long", nil, txn(createOp("/"+strings.Repeat("a", MaxPathBytes), "")), coordpb.ErrorCode_INVALID_PATH, "longer than"},
		{"ephemeral without session", nil, txn(createMode("/e", coordpb.CreateMode_EPHEMERAL, false, 0, 0)), coordpb.ErrorCode_SESSION_EXPIRED, "needs a session"},
		{"ephemeral unknown session", nil, txn(createMode("/e", coordpb.CreateMode_EPHEMERAL, false, 7, 0)), coordpb.ErrorCode_SESSION_EXPIRED, "does not exist"},
		{"child of ephemeral", []*coordpb.Command{openSession(7), txn(createMode("/e", coordpb.CreateMode_EPHEMERAL, false, 7, 0))},
			txn(createOp("/e/c", "")), coordpb.ErrorCode_NO_CHILDREN_FOR_EPHEMERALS, ""},
		{"session on persistent", []*coordpb.Command{openSession(7)}, txn(createMode("/p", coordpb.CreateMode_PERSISTENT, false, 7, 0)), coordpb.ErrorCode_INVALID_ARGUMENT, "only for ephemeral"},
		{"ttl without ttl", nil, txn(createMode("/t", coordpb.CreateMode_TTL, false, 0, 0)), coordpb.ErrorCode_INVALID_ARGUMENT, "positive ttl"},
		{"ttl on persistent", nil, txn(createMode("/t", coordpb.CreateMode_PERSISTENT, false, 0, 5)), coordpb.ErrorCode_INVALID_ARGUMENT, "only for TTL"},
		{"unknown mode", nil, txn(createMode("/t", coordpb.CreateMode(42), false, 0, 0)), coordpb.ErrorCode_INVALID_ARGUMENT, "unknown create mode"},
		{"set missing", nil, txn(setOp("/x", "", -1)), coordpb.ErrorCode_NO_NODE, ""},
		{"set bad version", []*coordpb.Command{txn(createOp("/a", ""))}, txn(setOp("/a", "", 3)), coordpb.ErrorCode_BAD_VERSION, "expected 3, current 0"},
		{"delete missing", nil, txn(deleteOp("/x", -1, false)), coordpb.ErrorCode_NO_NODE, ""},
		{"delete root", nil, txn(deleteOp("/", -1, true)), coordpb.ErrorCode_ROOT_NODE, ""},
		{"delete not empty", []*coordpb.Command{txn(createOp("/a", ""), createOp("/a/b", ""))}, txn(deleteOp("/a", -1, false)), coordpb.ErrorCode_NOT_EMPTY, ""},
		{"delete bad version", []*coordpb.Command{txn(createOp("/a", ""))}, txn(deleteOp("/a", 1, false)), coordpb.ErrorCode_BAD_VERSION, ""},
		{"check missing", nil, txn(checkOp("/x", -1)), coordpb.ErrorCode_NO_NODE, ""},
		{"check bad version", []*coordpb.Command{txn(createOp("/a", ""))}, txn(checkOp("/a", 9)), coordpb.ErrorCode_BAD_VERSION, ""},
		{"empty op", nil, txn(&coordpb.Op{}), coordpb.ErrorCode_INVALID_ARGUMENT, "empty op"},
		{"nil command", nil, nil, coordpb.ErrorCode_INVALID_ARGUMENT, "empty command"},
		{"empty command", nil, &coordpb.Command{}, coordpb.ErrorCode_INVALID_ARGUMENT, "empty command"},
		{"session id zero", nil, openSession(0), coordpb.ErrorCode_INVALID_ARGUMENT, "reserved"},
		{"session twice", []*coordpb.Command{openSession(5)}, openSession(5), coordpb.ErrorCode_INVALID_ARGUMENT, "already exists"},
		{"close unknown session", nil, closeSession(5), coordpb.ErrorCode_SESSION_EXPIRED, ""},
		{"session timeout zero", nil, &coordpb.Command{Cmd: &coordpb.Command_CreateSession{CreateSession: &coordpb.CreateSession{SessionId: 3}}}, coordpb.ErrorCode_INVALID_ARGUMENT, "timeout"},
		{"nil txn", nil, &coordpb.Command{Cmd: &coordpb.Command_Txn{}}, coordpb.ErrorCode_OK, ""},
		{"nil op in txn", nil, txn(nil), coordpb.ErrorCode_INVALID_ARGUMENT, "empty op"},
		{"nil create op", nil, txn(&coordpb.Op{Op: &coordpb.Op_Create{}}), coordpb.ErrorCode_INVALID_PATH, "empty path"},
		{"nil set op", nil, txn(&coordpb.Op{Op: &coordpb.Op_Set{}}), coordpb.ErrorCode_INVALID_PATH, "empty path"},
		{"nil delete op", nil, txn(&coordpb.Op{Op: &coordpb.Op_Delete{}}), coordpb.ErrorCode_INVALID_PATH, "empty path"},
		{"nil check op", nil, txn(&coordpb.Op{Op: &coordpb.Op_Check{}}), coordpb.ErrorCode_INVALID_PATH, "empty path"},
		{"set bad path", nil, txn(setOp("/a/", "", -1)), coordpb.ErrorCode_INVALID_PATH, "trailing /"},
		{"delete bad path", nil, txn(deleteOp("//", -1, false)), coordpb.ErrorCode_INVALID_PATH, ""},
		{"check bad path", nil, txn(checkOp("x", -1)), coordpb.ErrorCode_INVALID_PATH, ""},
		{"recursive delete bad version", []*coordpb.Command{txn(createOp("/a", ""), createOp("/a/b", ""))}, txn(deleteOp("/a", 4, true)), coordpb.ErrorCode_BAD_VERSION, "expected 4, current 0"},
		{"sequential under missing parent", nil, txn(createMode("/nope/", coordpb.CreateMode_PERSISTENT, true, 0, 0)), coordpb.ErrorCode_NO_NODE, "parent node does not exist: /nope"},
		{"sequential name too long", nil, txn(createMode("/"+strings.Repeat("s", MaxPathBytes-5), coordpb.CreateMode_PERSISTENT, true, 0, 0)), coordpb.ErrorCode_INVALID_PATH, "longer than"},
		{"sequential under ephemeral", []*coordpb.Command{openSession(7), txn(createMode("/e", coordpb.CreateMode_EPHEMERAL, false, 7, 0))},
			txn(createMode("/e/", coordpb.CreateMode_PERSISTENT, true, 0, 0)), coordpb.ErrorCode_NO_CHILDREN_FOR_EPHEMERALS, "/e"},
		{"ephemeral with ttl", []*coordpb.Command{openSession(7)}, txn(createMode("/e", coordpb.CreateMode_EPHEMERAL, false, 7, 10)), coordpb.ErrorCode_INVALID_ARGUMENT, "only for TTL"},
		{"ttl with session", []*coordpb.Command{openSession(7)}, txn(createMode("/t", coordpb.CreateMode_TTL, false, 7, 10)), coordpb.ErrorCode_INVALID_ARGUMENT, "only for ephemeral"},
		{"negative ttl", nil, txn(createMode("/t", coordpb.CreateMode_TTL, false, 0, -5)), coordpb.ErrorCode_INVALID_ARGUMENT, "positive ttl"},
		{"multi fails at op 1", []*coordpb.Command{txn(createOp("/a", ""))}, txn(createOp("/b", ""), createOp("/a", ""), createOp("/c", "")), coordpb.ErrorCode_NODE_EXISTS, "node already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for _, c := range tc.setup {
				h.ok(c)
			}
			before := dumpState(h.tree, false)
			var res *coordpb.ApplyResult
			if tc.cmd == nil {
				h.zxid++
				x := h.tree.Txn()
				res = x.Apply(h.zxid, nil)
				h.tree = x.Commit()
			} else {
				res = h.apply(tc.cmd)
			}
			if res.Code != tc.code {
				t.Fatalf("code = %v (%s), want %v", res.Code, res.Message, tc.code)
			}
			if tc.code == coordpb.ErrorCode_OK {
				return
			}
			wantOp := int32(-1)
			if txn := tc.cmd.GetTxn(); txn != nil {
				wantOp = 0
				if strings.HasPrefix(tc.name, "multi fails at op 1") {
					wantOp = 1
				}
			}
			if res.FailedOp != wantOp {
				t.Fatalf("failed_op = %d, want %d", res.FailedOp, wantOp)
			}
			if !strings.Contains(res.Message, tc.msgPart) {
				t.Fatalf("message %q lacks %q", res.Message, tc.msgPart)
			}
			if len(res.Results) != 0 {
				t.Fatalf("failed apply returned results: %v", res.Results)
			}
			if res.Zxid != h.zxid || h.tree.Zxid() != h.zxid {
				t.Fatalf("zxid not advanced: result %d tree %d want %d", res.Zxid, h.tree.Zxid(), h.zxid)
			}
			// Nothing changed but the zxid, indexes included.
			if after := dumpState(h.tree, false); after != before {
				t.Fatalf("failed command changed the state:\n%s\nvs\n%s", before, after)
			}
			if !errors.Is(ErrorFromCode(res.Code, res.Message), sentinelFor(res.Code)) {
				t.Fatalf("ErrorFromCode(%v) does not match its sentinel", res.Code)
			}
		})
	}
}

func sentinelFor(code coordpb.ErrorCode) error {
	for _, row := range codeTable {
		if row.code == code {
			return row.err
		}
	}
	return nil
}

func TestTxn_Apply_StatRules(t *testing.T) {
	h := newHarness(t)
	r := h.ok(txn(createOp("/a", "hello")))
	st := r.Results[0].GetCreate().GetStat()
	if st.Czxid != 1 || st.Mzxid != 1 || st.Pzxid != 1 || st.Version != 0 || st.Cversion != 0 || st.DataLength != 5 || st.Ctime != st.Mtime || st.Ctime == 0 {
		t.Fatalf("create stat = %v", st)
	}
	root := h.stat("/")
	if root.NumChildren != 1 || root.Cversion != 1 || root.Pzxid != 1 {
		t.Fatalf("root after create = %v", root)
	}
	h.ok(txn(setOp("/a", "bye", 0)))
	st = h.stat("/a")
	if st.Version != 1 || st.Mzxid != 2 || st.Czxid != 1 || st.Mtime <= st.Ctime || st.DataLength != 3 {
		t.Fatalf("set stat = %v", st)
	}
	if data, _, _ := h.tree.Get("/a"); string(data) != "bye" {
		t.Fatalf("data = %q", data)
	}
	h.ok(txn(createOp("/a/b", "")))
	h.ok(txn(deleteOp("/a/b", 0, false)))
	st = h.stat("/a")
	if st.Cversion != 2 || st.Pzxid != 4 || st.NumChildren != 0 || st.Version != 1 {
		t.Fatalf("parent after child create+delete = %v", st)
	}
	h.ok(txn(setOp("/", "rootdata", -1)))
	h.ok(txn(checkOp("/a", 1), checkOp("/a", -1)))
}

func TestTxn_Apply_Sequential(t *testing.T) {
	h := newHarness(t)
	h.ok(txn(createOp("/q", "")))
	var got []string
	for i := 0; i < 3; i++ {
		r := h.ok(txn(createMode("/q/job-", coordpb.CreateMode_PERSISTENT, true, 0, 0)))
		got = append(got, r.Results[0].GetCreate().GetPath())
	}
	r := h.ok(txn(createMode("/q/", coordpb.CreateMode_PERSISTENT, true, 0, 0)))
	got = append(got, r.Results[0].GetCreate().GetPath())
	want := []string{"/q/job-0000000000", "/q/job-0000000001", "/q/job-0000000002", "/q/0000000003"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sequential names = %v, want %v", got, want)
	}
	// Deleting a child never reuses its number.
	h.ok(txn(deleteOp("/q/job-0000000002", -1, false)))
	r = h.ok(txn(createMode("/q/job-", coordpb.CreateMode_PERSISTENT, true, 0, 0)))
	if p := r.Results[0].GetCreate().GetPath(); p != "/q/job-0000000004" {
		t.Fatalf("after delete: %s", p)
	}
	// A failed multi does not consume a number.
	h.apply(txn(createMode("/q/job-", coordpb.CreateMode_PERSISTENT, true, 0, 0), checkOp("/nope", -1)))
	r = h.ok(txn(createMode("/q/job-", coordpb.CreateMode_PERSISTENT, true, 0, 0)))
	if p := r.Results[0].GetCreate().GetPath(); p != "/q/job-0000000005" {
		t.Fatalf("after failed multi: %s", p)
	}
	// The counter is 64-bit: past 10 digits the name just grows.
	x := h.tree.Txn()
	big, _ := x.get("/q")
	big.seq = 12345678901
	x.put("/q", &big)
	h.tree = x.Commit()
	r = h.ok(txn(createMode("/q/s", coordpb.CreateMode_PERSISTENT, true, 0, 0)))
	if p := r.Results[0].GetCreate().GetPath(); p != "/q/s12345678901" {
		t.Fatalf("big counter: %s", p)
	}
}

func TestTxn_Apply_Multi(t *testing.T) {
	h := newHarness(t)
	h.ok(txn(createOp("/a", "1")))
	// Later ops see earlier ones.
	r := h.ok(txn(createOp("/b", ""), createOp("/b/c", "x"), setOp("/a", "2", 0), checkOp("/a", 1)))
	if len(r.Results) != 4 || r.Results[1].GetCreate().GetPath() != "/b/c" || r.Results[2].GetSet().GetStat().GetVersion() != 1 {
		t.Fatalf("multi results = %v", r.Results)
	}
	before := dumpState(h.tree, false)
	evBefore := len(h.tree.Txn().Events())
	// All or nothing: op 2 fails, ops 0 and 1 leave no trace.
	x := h.tree.Txn()
	h.zxid++
	res := x.Apply(h.zxid, txn(createOp("/d", ""), setOp("/a", "3", -1), deleteOp("/b", -1, false)))
	if res.Code != coordpb.ErrorCode_NOT_EMPTY || res.FailedOp != 2 {
		t.Fatalf("multi failure = %v op %d", res.Code, res.FailedOp)
	}
	if len(x.Events()) != evBefore {
		t.Fatalf("failed multi left events: %v", x.Events())
	}
	h.tree = x.Commit()
	if after := dumpState(h.tree, false); after != before {
		t.Fatalf("failed multi changed the state:\n%s\nvs\n%s", before, after)
	}
	// Empty txn is a no-op.
	if r := h.ok(txn()); len(r.Results) != 0 {
		t.Fatal("empty txn returned results")
	}
}

func TestTxn_Apply_MultiInBatchRollsBackOnlyItself(t *testing.T) {
	tr := New()
	x := tr.Txn()
	if r := x.Apply(1, txn(createOp("/kept", ""))); r.Code != coordpb.ErrorCode_OK {
		t.Fatal(r.Message)
	}
	if r := x.Apply(2, txn(createOp("/gone", ""), createOp("/kept", ""))); r.Code != coordpb.ErrorCode_NODE_EXISTS || r.FailedOp != 1 {
		t.Fatalf("got %v %d", r.Code, r.FailedOp)
	}
	if r := x.Apply(3, txn(createOp("/after", ""))); r.Code != coordpb.ErrorCode_OK {
		t.Fatal(r.Message)
	}
	out := x.Commit()
	for p, want := range map[string]bool{"/kept": true, "/gone": false, "/after": true} {
		if _, ok, _ := out.Exists(p); ok != want {
			t.Errorf("%s exists = %v, want %v", p, ok, want)
		}
	}
	if _, ok, _ := tr.Exists("/kept"); ok {
		t.Error("the original tree changed")
	}
}

func TestTxn_Apply_RecursiveDeleteAndContainers(t *testing.T) {
	h := newHarness(t)
	h.ok(txn(createOp("/a", ""), createOp("/a/b", ""), createOp("/a/b/c", ""), createOp("/a/d", ""), createOp("/a!", "")))
	x := h.tree.Txn()
	h.zxid++
	r := x.Apply(h.zxid, txn(deleteOp("/a", 0, true)))
	if r.Code != coordpb.ErrorCode_OK || r.Results[0].GetDelete().GetDeleted() != 4 {
		t.Fatalf("recursive delete = %v %s %v", r.Code, r.Message, r.Results)
	}
	var deleted []string
	for _, e := range x.Events() {
		if e.Type == EventNodeDeleted {
			deleted = append(deleted, e.Path)
		}
	}
	if !reflect.DeepEqual(deleted, []string{"/a/d", "/a/b/c", "/a/b", "/a"}) {
		t.Fatalf("deleted events = %v", deleted)
	}
	h.tree = x.Commit()
	h.mustExist("/a!", true)
	if st := h.stat("/"); st.NumChildren != 1 {
		t.Fatalf("root children = %d", st.NumChildren)
	}

	// A container goes with its last child, cascading through containers.
	h.ok(txn(createMode("/c1", coordpb.CreateMode_CONTAINER, false, 0, 0),
		createMode("/c1/c2", coordpb.CreateMode_CONTAINER, false, 0, 0),
		createOp("/c1/c2/x", ""), createOp("/c1/c2/y", "")))
	h.ok(txn(deleteOp("/c1/c2/x", -1, false)))
	h.mustExist("/c1/c2", true)
	h.ok(txn(deleteOp("/c1/c2/y", -1, false)))
	h.mustExist("/c1/c2", false)
	h.mustExist("/c1", false)
	// A container that never had children stays.
	h.ok(txn(createMode("/c3", coordpb.CreateMode_CONTAINER, false, 0, 0)))
	h.mustExist("/c3", true)
}

func TestTxn_Apply_SessionsAndEphemerals(t *testing.T) {
	h := newHarness(t)
	h.ok(openSession(7))
	h.ok(openSession(8))
	h.ok(txn(createOp("/p", "")))
	h.ok(txn(createMode("/p/e1", coordpb.CreateMode_EPHEMERAL, false, 7, 0), createMode("/e2", coordpb.CreateMode_EPHEMERAL, false, 7, 0), createMode("/e3", coordpb.CreateMode_EPHEMERAL, false, 8, 0)))
	h.ok(txn(createMode("/cont", coordpb.CreateMode_CONTAINER, false, 0, 0), createMode("/cont/e", coordpb.CreateMode_EPHEMERAL, false, 7, 0)))
	if got := h.tree.Ephemerals(7); !reflect.DeepEqual(got, []string{"/cont/e", "/e2", "/p/e1"}) {
		t.Fatalf("ephemerals(7) = %v", got)
	}
	if st := h.stat("/e2"); st.EphemeralOwner != 7 || st.Mode != coordpb.CreateMode_EPHEMERAL {
		t.Fatalf("stat = %v", st)
	}
	if got := h.tree.Sessions(); !reflect.DeepEqual(got, []Session{{ID: 7, TimeoutMs: 1000}, {ID: 8, TimeoutMs: 1000}}) {
		t.Fatalf("sessions = %v", got)
	}
	// Closing session 7 removes its ephemerals (and the emptied container)
	// in one apply.
	h.ok(closeSession(7))
	for p, want := range map[string]bool{"/p/e1": false, "/e2": false, "/cont/e": false, "/cont": false, "/e3": true, "/p": true} {
		h.mustExist(p, want)
	}
	if h.tree.HasSession(7) || !h.tree.HasSession(8) || len(h.tree.Ephemerals(7)) != 0 {
		t.Fatal("session table wrong after close")
	}
	// Deleting an ephemeral directly drops it from the index.
	h.ok(txn(deleteOp("/e3", -1, false)))
	if len(h.tree.Ephemerals(8)) != 0 {
		t.Fatal("index kept a deleted ephemeral")
	}
}

func TestTree_ExpiredTTL(t *testing.T) {
	h := newHarness(t)
	h.ok(txn(createMode("/t1", coordpb.CreateMode_TTL, false, 0, 100), createMode("/t2", coordpb.CreateMode_TTL, false, 0, 5000)))
	h.ok(txn(createMode("/t3", coordpb.CreateMode_TTL, false, 0, 100), createOp("/t3/child", "")))
	mtime := h.stat("/t1").Mtime
	if got := h.tree.ExpiredTTL(mtime+99, 0); len(got) != 0 {
		t.Fatalf("expired early: %v", got)
	}
	got := h.tree.ExpiredTTL(mtime+100, 0)
	if len(got) != 1 || got[0].Path != "/t1" {
		t.Fatalf("ExpiredTTL = %v (a node with children must not expire)", got)
	}
	// A modification since the leader looked saves the node.
	stale := got[0]
	h.ok(txn(setOp("/t1", "touched", -1)))
	h.ok(&coordpb.Command{Cmd: &coordpb.Command_ExpireTtl{ExpireTtl: &coordpb.ExpireTTL{Nodes: []*coordpb.ExpireTTLNode{stale}}}})
	h.mustExist("/t1", true)
	fresh := h.tree.ExpiredTTL(1<<62, 0)
	h.ok(&coordpb.Command{Cmd: &coordpb.Command_ExpireTtl{ExpireTtl: &coordpb.ExpireTTL{Nodes: fresh}}})
	h.mustExist("/t1", false)
	h.mustExist("/t2", false)
	h.mustExist("/t3", true)
}

func TestTree_Children(t *testing.T) {
	h := newHarness(t)
	h.ok(txn(createOp("/a", "")))
	for _, n := range []string{"x", "x!", "x0", "y", "a b", "é"} {
		h.ok(txn(createOp("/a/"+n, "")))
	}
	h.ok(txn(createOp("/a/x/deep", ""), createOp("/a/x/deep/er", ""), createOp("/a/x0/z", "")))
	all := []string{"a b", "x", "x!", "x0", "y", "é"}
	for _, tc := range []struct {
		after string
		limit int
		want  []string
		more  bool
	}{
		{"", 0, all, false},
		{"", 2, all[:2], true},
		{"x", 2, []string{"x!", "x0"}, true},
		{"x0", 10, []string{"y", "é"}, false},
		{"é", 10, []string{}, false},
		{"", 6, all, false},
	} {
		t.Run(fmt.Sprintf("after=%q/limit=%d", tc.after, tc.limit), func(t *testing.T) {
			names, st, more, err := h.tree.Children("/a", tc.after, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(names, tc.want) || more != tc.more {
				t.Fatalf("got %q more=%v, want %q more=%v", names, more, tc.want, tc.more)
			}
			if st.NumChildren != 6 {
				t.Fatalf("parent stat children = %d", st.NumChildren)
			}
		})
	}
	if names, _, _, _ := h.tree.Children("/", "", 0); !reflect.DeepEqual(names, []string{"a"}) {
		t.Fatalf("root children = %q", names)
	}
	if _, _, _, err := h.tree.Children("/missing", "", 0); !errors.Is(err, ErrNoNode) {
		t.Fatalf("missing: %v", err)
	}
	if _, _, _, err := h.tree.Children("/a", "x/y", 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("start after with slash: %v", err)
	}
}

func TestTree_Children100k(t *testing.T) {
	tr := New()
	x := tr.Txn()
	x.Apply(1, txn(createOp("/big", "")))
	for i := 0; i < 100_000; i++ {
		x.Apply(uint64(i+2), txn(createOp(fmt.Sprintf("/big/n%06d", i), "")))
	}
	tr = x.Commit()
	var total int
	after := ""
	for {
		names, _, more, err := tr.Children("/big", after, 5000)
		if err != nil {
			t.Fatal(err)
		}
		total += len(names)
		if !more {
			break
		}
		after = names[len(names)-1]
	}
	if total != 100_000 {
		t.Fatalf("paged %d children", total)
	}
}

func TestTree_Immutable(t *testing.T) {
	h := newHarness(t)
	h.ok(txn(createOp("/a", "v1")))
	old := h.tree
	h.ok(txn(setOp("/a", "v2", -1), createOp("/b", "")))
	h.ok(txn(deleteOp("/a", -1, false)))
	if data, st, err := old.Get("/a"); err != nil || string(data) != "v1" || st.Version != 0 {
		t.Fatalf("old tree changed: %q %v %v", data, st, err)
	}
	if _, ok, _ := old.Exists("/b"); ok {
		t.Fatal("old tree sees a later create")
	}
}

func TestValidatePath(t *testing.T) {
	for _, ok := range []string{"/", "/a", "/a/b", "/a b/é", "/.a", "/a..", "/" + strings.Repeat("x", MaxPathBytes-1)} {
		if err := ValidatePath(ok); err != nil {
			t.Errorf("ValidatePath(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "//", "/a/", "/a//b", "/./a", "/a/..", "/a\n", "/a\x7f", "/\xc2\x85", "/" + strings.Repeat("x", MaxPathBytes)} {
		err := ValidatePath(bad)
		if !errors.Is(err, ErrInvalidPath) {
			t.Errorf("ValidatePath(%q) = %v, want ErrInvalidPath", bad, err)
		}
	}
}

func TestErrorCode_RoundTrip(t *testing.T) {
	for _, row := range codeTable {
		wrapped := fmt.Errorf("ctx: %w", row.err)
		if got := ErrorCode(wrapped); got != row.code {
			t.Errorf("ErrorCode(%v) = %v, want %v", row.err, got, row.code)
		}
		back := ErrorFromCode(row.code, "custom message")
		if !errors.Is(back, row.err) || back.Error() != "custom message" {
			t.Errorf("ErrorFromCode(%v) = %v", row.code, back)
		}
	}
	if ErrorCode(nil) != coordpb.ErrorCode_OK || ErrorCode(errors.New("x")) != coordpb.ErrorCode_INTERNAL {
		t.Error("nil/unknown mapping")
	}
}
