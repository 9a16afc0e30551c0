package coord

import (
	"errors"
	"testing"
	"time"

	"coord/coord/tree"
	"coord/proto/coordpb"
	"coord/session"
)

// TestTouchLive checks the leader's side of a relayed keepalive: the
// deadline moves only for a session in the applied state, whose expiry
// is not in flight and whose deadline has not passed.
func TestTouchLive(t *testing.T) {
	x := tree.New().Txn()
	for _, id := range []uint64{1, 2, 3, 4} {
		x.Apply(id, &coordpb.Command{Cmd: &coordpb.Command_CreateSession{CreateSession: &coordpb.CreateSession{SessionId: id, TimeoutMs: 1000}}})
	}
	st := x.Commit()
	m := newSessionManager(&Server{})
	now := time.Now()
	m.table.Reset([]session.Info{
		{ID: 1, Timeout: time.Second},       // live
		{ID: 2, Timeout: -time.Millisecond}, // deadline passed, tick not run yet
		{ID: 3, Timeout: time.Second},       // expiry in flight
		{ID: 5, Timeout: time.Second},       // closed in the tree, table not synced yet
	}, now)
	m.expiring[3] = true

	// Not leading yet (first tick not run): the table is stale, so every
	// session in the tree is accepted; Reset will give it a full timeout.
	for _, id := range []uint64{1, 2, 3, 4} {
		if err := m.touchLive(id, session.Direct, st, true); err != nil {
			t.Fatalf("not yet leading: touchLive(%d) = %v, want nil", id, err)
		}
	}
	if err := m.touchLive(5, session.Direct, st, true); !errors.Is(err, session.ErrUnknown) {
		t.Fatalf("not yet leading: touchLive(5) (not in the tree) = %v, want ErrUnknown", err)
	}

	m.leading = true
	want := map[uint64]error{1: nil, 2: session.ErrUnknown, 3: session.ErrUnknown, 4: nil, 5: session.ErrUnknown}
	for id := uint64(1); id <= 5; id++ {
		if err := m.touchLive(id, session.Direct, st, true); !errors.Is(err, want[id]) || (want[id] == nil) != (err == nil) {
			t.Fatalf("touchLive(%d) = %v, want %v", id, err, want[id])
		}
	}
	// Session 1's deadline moved forward; session 4 (opened, not synced
	// into the table) was added with its replicated timeout.
	if d, ok := m.table.Deadline(1); !ok || !d.After(now.Add(time.Second)) {
		t.Fatalf("session 1 deadline %v (ok %v), want after %v", d, ok, now.Add(time.Second))
	}
	if d, ok := m.table.Deadline(4); !ok || d.Before(now.Add(time.Second)) {
		t.Fatalf("session 4 deadline %v (ok %v), want >= %v", d, ok, now.Add(time.Second))
	}
	// The refused ones were not revived.
	if d, _ := m.table.Deadline(2); d.After(now) {
		t.Fatalf("session 2 (past its deadline) was revived to %v", d)
	}
}
