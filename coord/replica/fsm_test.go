package replica

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"coord/coord/tree"
	"coord/proto/coordpb"
)

func cmdLog(t testing.TB, index uint64, cmd *coordpb.Command) *raft.Log {
	b, err := EncodeCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: b}
}

func createCmd(p string) *coordpb.Command {
	return &coordpb.Command{TimeMs: 5, Cmd: &coordpb.Command_Txn{Txn: &coordpb.Txn{Ops: []*coordpb.Op{
		{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: p, Data: []byte(p)}}}}}}}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func TestFSM_ApplyBatchSnapshotRestore(t *testing.T) {
	var seen []tree.Event
	f := newFSM(func(b Batch) { seen = append(seen, b.Events...) })
	res := f.ApplyBatch([]*raft.Log{
		cmdLog(t, 1, createCmd("/a")),
		{Index: 2, Type: raft.LogConfiguration},
		cmdLog(t, 3, createCmd("/a")), // fails: exists
		{Index: 4, Type: raft.LogCommand, Data: []byte{9, 9}},
		cmdLog(t, 5, createCmd("/b")),
	})
	if len(res) != 5 {
		t.Fatalf("%d results", len(res))
	}
	if r := res[0].(*coordpb.ApplyResult); r.Code != coordpb.ErrorCode_OK || r.Zxid != 1 {
		t.Fatalf("res0 = %v", r)
	}
	if r := res[2].(*coordpb.ApplyResult); r.Code != coordpb.ErrorCode_NODE_EXISTS {
		t.Fatalf("res2 = %v", r)
	}
	if r := res[3].(*coordpb.ApplyResult); r.Code != coordpb.ErrorCode_INTERNAL {
		t.Fatalf("undecodable entry: %v", r)
	}
	if f.applied.Load() != 5 || len(seen) != 4 {
		t.Fatalf("applied %d, events %v", f.applied.Load(), seen)
	}
	snap, _ := f.Snapshot()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if g.applied.Load() != 5 {
		t.Fatalf("restored applied = %d", g.applied.Load())
	}
	if data, _, err := g.state.Load().Get("/b"); err != nil || string(data) != "/b" {
		t.Fatalf("restored /b = %q, %v", data, err)
	}
	// A damaged snapshot is refused and the state is untouched.
	bad := append([]byte(nil), sink.Bytes()...)
	bad[len(bad)/2] ^= 1
	h := newFSM(nil)
	if err := h.Restore(io.NopCloser(bytes.NewReader(bad))); !errors.Is(err, tree.ErrCorruptSnapshot) {
		t.Fatalf("damaged restore: %v", err)
	}
	if h.state.Load().Len() != 1 {
		t.Fatal("damaged restore changed the state")
	}
}

func TestAppliedWaiters(t *testing.T) {
	var w appliedWaiters
	if w.wait(0) != nil {
		t.Fatal("index 0 must not wait")
	}
	c3, c5 := w.wait(3), w.wait(5)
	w.notify(4)
	select {
	case <-c3:
	default:
		t.Fatal("waiter for 3 not released at 4")
	}
	select {
	case <-c5:
		t.Fatal("waiter for 5 released at 4")
	default:
	}
	w.notify(2) // never goes backwards
	if w.wait(4) != nil {
		t.Fatal("applied went backwards")
	}
	w.notify(5)
	<-c5
}

// FuzzDecodeCommand feeds arbitrary log entry bytes to the FSM: never a
// panic, and every entry gets a result.
func FuzzDecodeCommand(f *testing.F) {
	b, _ := EncodeCommand(createCmd("/a"))
	f.Add(b)
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := newFSM(nil)
		res := fsm.ApplyBatch([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: data}})
		if res[0] == nil {
			t.Fatal("no result")
		}
	})
}
