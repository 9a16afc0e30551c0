package tree

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"coord/proto/coordpb"
)

// evs renders events as "type path@zxid".
func evs(es []Event) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, fmt.Sprintf("%v %s@%d", e.Type, e.Path, e.Zxid))
	}
	return out
}

// resultString renders an ApplyResult's per-op results compactly.
func resultString(r *coordpb.ApplyResult) string {
	var parts []string
	for _, op := range r.Results {
		switch x := op.Result.(type) {
		case *coordpb.OpResult_Create:
			parts = append(parts, fmt.Sprintf("create %s v%d", x.Create.Path, x.Create.Stat.Version))
		case *coordpb.OpResult_Set:
			parts = append(parts, fmt.Sprintf("set v%d", x.Set.Stat.Version))
		case *coordpb.OpResult_Delete:
			parts = append(parts, fmt.Sprintf("delete %d", x.Delete.Deleted))
		case *coordpb.OpResult_Check:
			parts = append(parts, fmt.Sprintf("check v%d", x.Check.Stat.Version))
		}
	}
	return strings.Join(parts, "; ")
}

func testApplyOK(t *testing.T) {
	expire := func(nodes ...*coordpb.ExpireTTLNode) *coordpb.Command {
		return &coordpb.Command{Cmd: &coordpb.Command_ExpireTtl{ExpireTtl: &coordpb.ExpireTTL{Nodes: nodes}}}
	}
	for _, tc := range []struct {
		name   string
		setup  []*coordpb.Command // applied at zxids 1..n
		cmd    *coordpb.Command   // applied at zxid n+1
		result string
		events []string
	}{
		{"create", nil, txn(createOp("/a", "x")), "create /a v0",
			[]string{"created /a@1", "children /@1"}},
		{"create nested", []*coordpb.Command{txn(createOp("/a", ""))}, txn(createOp("/a/b", "")), "create /a/b v0",
			[]string{"created /a/b@2", "children /a@2"}},
		{"create sequential", []*coordpb.Command{txn(createOp("/q", ""))}, txn(createMode("/q/n-", coordpb.CreateMode_PERSISTENT, true, 0, 0)), "create /q/n-0000000000 v0",
			[]string{"created /q/n-0000000000@2", "children /q@2"}},
		{"create sequential under root", nil, txn(createMode("/", coordpb.CreateMode_PERSISTENT, true, 0, 0)), "create /0000000000 v0",
			[]string{"created /0000000000@1", "children /@1"}},
		{"create ephemeral", []*coordpb.Command{openSession(9)}, txn(createMode("/e", coordpb.CreateMode_EPHEMERAL, false, 9, 0)), "create /e v0",
			[]string{"created /e@2", "children /@2"}},
		{"create ttl", nil, txn(createMode("/t", coordpb.CreateMode_TTL, false, 0, 10)), "create /t v0",
			[]string{"created /t@1", "children /@1"}},
		{"create container", nil, txn(createMode("/c", coordpb.CreateMode_CONTAINER, false, 0, 0)), "create /c v0",
			[]string{"created /c@1", "children /@1"}},
		{"set any version", []*coordpb.Command{txn(createOp("/a", ""))}, txn(setOp("/a", "y", -1)), "set v1",
			[]string{"changed /a@2"}},
		{"set exact version", []*coordpb.Command{txn(createOp("/a", "")), txn(setOp("/a", "", -1))}, txn(setOp("/a", "y", 1)), "set v2",
			[]string{"changed /a@3"}},
		{"set root", nil, txn(setOp("/", "r", 0)), "set v1", []string{"changed /@1"}},
		{"delete", []*coordpb.Command{txn(createOp("/a", ""))}, txn(deleteOp("/a", 0, false)), "delete 1",
			[]string{"deleted /a@2", "children /@2"}},
		{"delete recursive", []*coordpb.Command{txn(createOp("/a", ""), createOp("/a/b", ""), createOp("/a/b/c", ""))}, txn(deleteOp("/a", -1, true)), "delete 3",
			[]string{"deleted /a/b/c@2", "deleted /a/b@2", "deleted /a@2", "children /@2"}},
		{"delete recursive leaf", []*coordpb.Command{txn(createOp("/a", ""))}, txn(deleteOp("/a", -1, true)), "delete 1",
			[]string{"deleted /a@2", "children /@2"}},
		{"delete last child of container", []*coordpb.Command{txn(createMode("/c", coordpb.CreateMode_CONTAINER, false, 0, 0), createOp("/c/x", ""))},
			txn(deleteOp("/c/x", -1, false)), "delete 2",
			[]string{"deleted /c/x@2", "children /c@2", "deleted /c@2", "children /@2"}},
		{"check", []*coordpb.Command{txn(createOp("/a", ""))}, txn(checkOp("/a", 0)), "check v0", []string{}},
		{"check any version", []*coordpb.Command{txn(createOp("/a", ""))}, txn(checkOp("/a", -1)), "check v0", []string{}},
		{"multi", nil, txn(createOp("/a", ""), createOp("/a/b", ""), setOp("/a/b", "z", 0), checkOp("/a/b", 1), deleteOp("/a/b", 1, false)),
			"create /a v0; create /a/b v0; set v1; check v1; delete 1",
			[]string{"created /a@1", "children /@1", "created /a/b@1", "children /a@1", "changed /a/b@1", "deleted /a/b@1", "children /a@1"}},
		{"empty multi", nil, txn(), "", []string{}},
		{"create session", nil, openSession(4), "", []string{}},
		{"close session", []*coordpb.Command{openSession(4), txn(createMode("/e", coordpb.CreateMode_EPHEMERAL, false, 4, 0))}, closeSession(4), "",
			[]string{"deleted /e@3", "children /@3"}},
		{"expire ttl", []*coordpb.Command{txn(createMode("/t", coordpb.CreateMode_TTL, false, 0, 10))}, expire(&coordpb.ExpireTTLNode{Path: "/t", Mzxid: 1}), "",
			[]string{"deleted /t@2", "children /@2"}},
		{"expire ttl skips modified, missing, non-TTL and bad paths", []*coordpb.Command{txn(createMode("/t", coordpb.CreateMode_TTL, false, 0, 10), createOp("/p", ""))},
			expire(&coordpb.ExpireTTLNode{Path: "/t", Mzxid: 7}, &coordpb.ExpireTTLNode{Path: "/gone", Mzxid: 1}, &coordpb.ExpireTTLNode{Path: "/p", Mzxid: 1},
				&coordpb.ExpireTTLNode{Path: "//", Mzxid: 1}, &coordpb.ExpireTTLNode{Path: "/", Mzxid: 0}, nil), "", []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for _, c := range tc.setup {
				h.ok(c)
			}
			old := h.tree
			oldDump := dumpState(old, true)
			h.zxid++
			x := h.tree.Txn()
			res := x.Apply(h.zxid, tc.cmd)
			if res.Code != coordpb.ErrorCode_OK || res.FailedOp != -1 || res.Zxid != h.zxid {
				t.Fatalf("result = %v", res)
			}
			if got := resultString(res); got != tc.result {
				t.Fatalf("results = %q, want %q", got, tc.result)
			}
			if got := evs(x.Events()); !reflect.DeepEqual(got, tc.events) {
				t.Fatalf("events = %q, want %q", got, tc.events)
			}
			h.tree = x.Commit()
			checkInvariants(t, h.tree)
			if dumpState(old, true) != oldDump {
				t.Fatal("the tree the txn started from changed")
			}
		})
	}
}
