package replica

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"coord/coord/tree"
	"coord/proto/coordpb"
)

// commandVersion is the first byte of every command log entry, so the
// encoding can evolve.
const commandVersion byte = 1

// EncodeCommand turns a command into raft log bytes.
func EncodeCommand(cmd *coordpb.Command) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend([]byte{commandVersion}, cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return b, nil
}

// DecodeCommand is the inverse of EncodeCommand.
func DecodeCommand(b []byte) (*coordpb.Command, error) {
	if len(b) == 0 {
		return nil, errors.New("decode command: empty entry")
	}
	if b[0] != commandVersion {
		return nil, fmt.Errorf("decode command: unknown command version %d", b[0])
	}
	cmd := new(coordpb.Command)
	if err := proto.Unmarshal(b[1:], cmd); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	return cmd, nil
}

// Batch is what the FSM reports after each applied batch.
type Batch struct {
	// Applied is the last index the batch applied.
	Applied uint64
	// Events are the batch's watch events in zxid order.
	Events []tree.Event
	// Reset: the state was replaced by a snapshot at Applied; events
	// before it are unknown.
	Reset bool
}

// EventSink receives every applied batch, in order, on the apply
// goroutine. It must not block for long.
type EventSink func(Batch)

// fsm is the raft state machine: a tree.Tree published atomically after
// each batch, so reads never take a lock.
type fsm struct {
	state   atomic.Pointer[tree.Tree]
	applied atomic.Uint64
	// sinceSnap counts command bytes applied since the last snapshot
	// began (Replica takes one when it passes Config.SnapshotBytes).
	sinceSnap atomic.Int64
	// snapshots counts FSM snapshots taken; persistNanos adds up the time
	// their Persist took (the tree written and the sink closed: the file
	// synced), for /metrics.
	snapshots, persistNanos atomic.Int64
	waiters                 appliedWaiters
	sink                    EventSink
}

var _ raft.BatchingFSM = (*fsm)(nil)

func newFSM(sink EventSink) *fsm {
	f := &fsm{sink: sink}
	f.state.Store(tree.New())
	return f
}

func (f *fsm) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	if len(logs) == 0 {
		return out
	}
	txn := f.state.Load().Txn()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		f.sinceSnap.Add(int64(len(l.Data)))
		cmd, err := DecodeCommand(l.Data)
		if err != nil {
			// Deterministic on every node: the same bytes fail the same way.
			out[i] = &coordpb.ApplyResult{Zxid: l.Index, Code: coordpb.ErrorCode_INTERNAL, Message: err.Error(), FailedOp: -1}
			continue
		}
		out[i] = txn.Apply(l.Index, cmd)
	}
	last := logs[len(logs)-1].Index
	events := txn.Events()
	f.state.Store(txn.Commit())
	f.applied.Store(last)
	if f.sink != nil {
		f.sink(Batch{Applied: last, Events: events})
	}
	f.waiters.notify(last)
	return out
}

// snapshot file layout: magic, applied index, then tree.WriteSnapshot.
var snapMagic = []byte("COORDFSM")

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.sinceSnap.Store(0)
	f.snapshots.Add(1)
	return &fsmSnapshot{t: f.state.Load(), applied: f.applied.Load(), persistNanos: &f.persistNanos}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fmt.Errorf("restore snapshot: header: %w", err)
	}
	if string(hdr[:8]) != string(snapMagic) {
		return fmt.Errorf("restore snapshot: %w: bad magic", tree.ErrCorruptSnapshot)
	}
	applied := binary.BigEndian.Uint64(hdr[8:])
	t, err := tree.ReadSnapshot(br)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.state.Store(t)
	f.applied.Store(applied)
	if f.sink != nil {
		f.sink(Batch{Applied: applied, Reset: true})
	}
	f.waiters.notify(applied)
	return nil
}

type fsmSnapshot struct {
	t            *tree.Tree
	applied      uint64
	persistNanos *atomic.Int64
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	defer func(t0 time.Time) { s.persistNanos.Add(int64(time.Since(t0))) }(time.Now())
	if err := WriteSnapshot(sink, s.t, s.applied); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// WriteSnapshot writes the FSM snapshot format (also what `coordctl
// snapshot save` receives).
func WriteSnapshot(w io.Writer, t *tree.Tree, applied uint64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var hdr [16]byte
	copy(hdr[:8], snapMagic)
	binary.BigEndian.PutUint64(hdr[8:], applied)
	if _, err := bw.Write(hdr[:]); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := t.WriteSnapshot(bw); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// appliedWaiters lets readers wait until the FSM has applied an index.
type appliedWaiters struct {
	mu      sync.Mutex
	applied uint64
	waiting []appliedWaiter
}

type appliedWaiter struct {
	index uint64
	ch    chan struct{}
}

func (w *appliedWaiters) notify(applied uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if applied > w.applied {
		w.applied = applied
	}
	keep := w.waiting[:0]
	for _, x := range w.waiting {
		if x.index <= w.applied {
			close(x.ch)
		} else {
			keep = append(keep, x)
		}
	}
	for i := len(keep); i < len(w.waiting); i++ {
		w.waiting[i] = appliedWaiter{}
	}
	w.waiting = keep
}

// wait returns a channel closed once index has been applied, or nil when it
// already has.
func (w *appliedWaiters) wait(index uint64) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if index <= w.applied {
		return nil
	}
	ch := make(chan struct{})
	w.waiting = append(w.waiting, appliedWaiter{index: index, ch: ch})
	return ch
}
