package tree

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"coord/proto/coordpb"
)

func expireCmd(nodes []*coordpb.ExpireTTLNode) *coordpb.Command {
	return &coordpb.Command{Cmd: &coordpb.Command_ExpireTtl{ExpireTtl: &coordpb.ExpireTTL{Nodes: nodes}}}
}

func TestTree_ExpiredTTL_Index(t *testing.T) {
	h := newHarness(t)
	// Created at increasing times with different TTLs: deadlines order
	// differs from path order.
	h.ok(txn(createMode("/z", coordpb.CreateMode_TTL, false, 0, 10)))   // t=1010, due 1020
	h.ok(txn(createMode("/a", coordpb.CreateMode_TTL, false, 0, 1000))) // t=1020, due 2020
	h.ok(txn(createMode("/m", coordpb.CreateMode_TTL, false, 0, 5)))    // t=1030, due 1035
	names := func(ns []*coordpb.ExpireTTLNode) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.Path)
		}
		return out
	}
	if got := names(h.tree.ExpiredTTL(1035, 0)); !reflect.DeepEqual(got, []string{"/z", "/m"}) {
		t.Fatalf("due at 1035 = %v", got)
	}
	if got := names(h.tree.ExpiredTTL(1<<40, 1)); !reflect.DeepEqual(got, []string{"/z"}) {
		t.Fatalf("limit 1 = %v", got)
	}
	// A set moves the deadline: /z is now due at 1040+10.
	h.ok(txn(setOp("/z", "x", -1))) // t=1040
	if got := names(h.tree.ExpiredTTL(1049, 0)); !reflect.DeepEqual(got, []string{"/m"}) {
		t.Fatalf("after set, due at 1049 = %v", got)
	}
	if got := names(h.tree.ExpiredTTL(1050, 0)); !reflect.DeepEqual(got, []string{"/m", "/z"}) {
		t.Fatalf("after set, due at 1050 = %v", got)
	}
	// Far past and far future times and huge TTLs neither overflow nor
	// misorder.
	h.ok(txn(createMode("/huge", coordpb.CreateMode_TTL, false, 0, math.MaxInt64)))
	if got := names(h.tree.ExpiredTTL(math.MaxInt64-1, 0)); len(got) != 3 {
		t.Fatalf("huge TTL expired early: %v", got)
	}
	if got := h.tree.ExpiredTTL(math.MinInt64, 0); len(got) != 0 {
		t.Fatalf("at MinInt64: %v", got)
	}
	// Expiry deletes through a container parent, which goes too.
	h.ok(txn(createMode("/c", coordpb.CreateMode_CONTAINER, false, 0, 0), createMode("/c/t", coordpb.CreateMode_TTL, false, 0, 1)))
	h.ok(expireCmd(h.tree.ExpiredTTL(1<<40, 0)))
	for _, p := range []string{"/z", "/a", "/m", "/c/t", "/c"} {
		h.mustExist(p, false)
	}
	h.mustExist("/huge", true)
	checkInvariants(t, h.tree)
	if h.tree.ttls.Len() != 1 {
		t.Fatalf("TTL index holds %d entries", h.tree.ttls.Len())
	}
}

func TestTree_ChildrenSkipsSubtrees(t *testing.T) {
	tr := New()
	x := tr.Txn()
	z := uint64(0)
	apply := func(c *coordpb.Command) {
		z++
		if r := x.Apply(z, c); r.Code != coordpb.ErrorCode_OK {
			t.Fatalf("%v %s", r.Code, r.Message)
		}
	}
	apply(txn(createOp("/g", "")))
	var want []string
	for _, c := range []string{"x", "x!", "x.", "x0", "x/", "y"} {
		if c == "x/" {
			continue // not a name; "x" already has the subtree below
		}
		apply(txn(createOp("/g/"+c, "")))
		want = append(want, c)
	}
	for i := 0; i < 2000; i++ {
		apply(txn(createOp(fmt.Sprintf("/g/x/%04d", i), "")))
	}
	apply(txn(createOp("/g/x/0000/deep", "")))
	tr = x.Commit()
	names, st, more, err := tr.Children("/g", "", 0)
	if err != nil || more || !reflect.DeepEqual(names, want) || st.NumChildren != int64(len(want)) {
		t.Fatalf("children = %q more=%v err=%v stat=%v", names, more, err, st)
	}
	// Page by one: every page is exact, whatever sorts around '/'.
	var got []string
	after := ""
	for {
		page, _, more, err := tr.Children("/g", after, 1)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if !more {
			break
		}
		after = page[len(page)-1]
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("paged = %q, want %q", got, want)
	}
	// Starting after a name that does not exist works too.
	if page, _, _, _ := tr.Children("/g", "x-", 2); !reflect.DeepEqual(page, []string{"x.", "x0"}) {
		t.Fatalf("after x- = %q", page)
	}
	if _, _, _, err := tr.Children("bad", "", 0); !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("bad path: %v", err)
	}
}

// TestTxn_Apply_Random applies random commands over a small name space and
// checks, after each batch, the invariants, that old trees never change,
// and that the state survives a snapshot round trip.
func TestTxn_Apply_Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/a", "/a/b", "/a/b/c", "/a!", "/c", "/c/d", "/c/d/e", "/q", "/q/", "/t"}
	pick := func() string { return paths[rng.IntN(len(paths))] }
	randOp := func() *coordpb.Op {
		p := pick()
		v := int64(rng.IntN(3)) - 1
		switch rng.IntN(6) {
		case 0, 1:
			op := &coordpb.CreateOp{Path: p, Data: []byte{byte(rng.IntN(256))}, Sequential: rng.IntN(4) == 0}
			switch rng.IntN(5) {
			case 1:
				op.Mode, op.SessionId = coordpb.CreateMode_EPHEMERAL, uint64(rng.IntN(3)+1)
			case 2:
				op.Mode = coordpb.CreateMode_CONTAINER
			case 3:
				op.Mode, op.TtlMs = coordpb.CreateMode_TTL, int64(rng.IntN(50)+1)
			}
			return &coordpb.Op{Op: &coordpb.Op_Create{Create: op}}
		case 2:
			return setOp(p, "s", v)
		case 3:
			return deleteOp(p, v, rng.IntN(2) == 0)
		default:
			return checkOp(p, v)
		}
	}
	codes := map[coordpb.ErrorCode]int{}
	tr := New()
	var history []*Tree
	var dumps []string
	zxid := uint64(0)
	now := int64(0)
	for batch := 0; batch < 300; batch++ {
		x := tr.Txn()
		for i := rng.IntN(4) + 1; i > 0; i-- {
			zxid++
			now += int64(rng.IntN(20))
			var cmd *coordpb.Command
			switch r := rng.IntN(10); {
			case r == 0:
				cmd = openSession(uint64(rng.IntN(3) + 1))
			case r == 1:
				cmd = closeSession(uint64(rng.IntN(3) + 1))
			case r == 2:
				cmd = expireCmd(x.Commit().ExpiredTTL(now, 0))
			default:
				ops := make([]*coordpb.Op, rng.IntN(3)+1)
				for j := range ops {
					ops[j] = randOp()
				}
				cmd = txn(ops...)
			}
			cmd.TimeMs = now
			codes[x.Apply(zxid, cmd).Code]++
		}
		tr = x.Commit()
		checkInvariants(t, tr)
		if tr.Zxid() != zxid {
			t.Fatalf("zxid %d, want %d", tr.Zxid(), zxid)
		}
		history = append(history, tr)
		dumps = append(dumps, dumpState(tr, true))
		if batch%50 == 0 {
			back := roundTrip(t, tr)
			if dumpState(back, true) != dumps[len(dumps)-1] {
				t.Fatal("snapshot round trip changed the state")
			}
		}
	}
	t.Logf("result codes: %v", codes)
	for _, c := range []coordpb.ErrorCode{coordpb.ErrorCode_OK, coordpb.ErrorCode_NO_NODE, coordpb.ErrorCode_NODE_EXISTS, coordpb.ErrorCode_BAD_VERSION, coordpb.ErrorCode_NOT_EMPTY} {
		if codes[c] == 0 {
			t.Errorf("random run never produced %v", c)
		}
	}
	for i, old := range history {
		if dumpState(old, true) != dumps[i] {
			t.Fatalf("tree of batch %d changed later", i)
		}
	}
}
