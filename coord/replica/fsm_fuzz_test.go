package replica

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"coord/coord/tree"
	"coord/proto/coordpb"
)

// FuzzCommandRoundTrip decodes arbitrary raft log entries and applies them to
// a fresh state machine, as a replica replaying its log would: decoding
// never panics, what decodes re-encodes to an equal command, and applying
// (good or bad entries) always advances the applied index with a result.
func FuzzCommandRoundTrip(f *testing.F) {
	for _, cmd := range []*coordpb.Command{
		createCmd("/a"),
		{TimeMs: 9, Cmd: &coordpb.Command_Txn{Txn: &coordpb.Txn{Ops: []*coordpb.Op{{Op: &coordpb.Op_Set{Set: &coordpb.SetOp{Path: "/a", Version: -1}}}}}}},
		{Cmd: &coordpb.Command_Txn{Txn: &coordpb.Txn{Ops: []*coordpb.Op{{Op: &coordpb.Op_Delete{Delete: &coordpb.DeleteOp{Path: "/a", Version: -1}}}}}}},
		{},
	} {
		b, err := EncodeCommand(cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, b)
	}
	f.Add([]byte{}, []byte{commandVersion, 0xff})
	f.Add([]byte{9, 1, 2}, []byte{commandVersion})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, data := range [][]byte{a, b} {
			cmd, err := DecodeCommand(data)
			if err != nil {
				continue
			}
			again, err := EncodeCommand(cmd)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			back, err := DecodeCommand(again)
			if err != nil || !proto.Equal(cmd, back) {
				t.Fatalf("round trip changed the command: %v", err)
			}
		}
		m := newFSM(nil)
		logs := []*raft.Log{
			{Index: 1, Type: raft.LogCommand, Data: a},
			{Index: 2, Type: raft.LogCommand, Data: b},
		}
		out := m.ApplyBatch(logs)
		for i, o := range out {
			if _, ok := o.(*coordpb.ApplyResult); !ok {
				t.Fatalf("entry %d: result %T", i, o)
			}
		}
		if m.applied.Load() != 2 {
			t.Fatalf("applied %d, want 2", m.applied.Load())
		}
	})
}

// FuzzFSMRestore feeds arbitrary bytes to the state machine's snapshot
// restore (raft's InstallSnapshot path): an error or a state, never a
// panic; a refused snapshot leaves the previous state in place.
func FuzzFSMRestore(f *testing.F) {
	tr := tree.New()
	var good bytes.Buffer
	if err := WriteSnapshot(&good, tr, 5); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(snapMagic)
	f.Add([]byte("COORDFSM\x00\x00\x00\x00\x00\x00\x00\x07garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newFSM(nil)
		before := m.applied.Load()
		if err := m.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			if m.applied.Load() != before {
				t.Fatalf("a refused snapshot moved applied from %d to %d", before, m.applied.Load())
			}
			return
		}
		if m.state.Load() == nil {
			t.Fatal("restore succeeded without a state")
		}
	})
}
