package par

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// storeDistinct appends entries from..to in term with data unique per
// (index, term).
func storeDistinct(t *testing.T, s *Store, from, to, term uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		l := &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry-%d-term-%d", i, term))}
		if err := s.Log.StoreLogs([]*raft.Log{l}); err != nil {
			t.Fatal(err)
		}
	}
}

// gapStores: a holder with the whole log 1..20 (1..5 in term 1, 6..20 in
// term 2) and no snapshot, and a requester with the same log, a snapshot
// at 10 whose sidecars are both damaged (quarantined at reopen) and its
// log compacted through 10: a gap at 1..10 that no snapshot can close.
// extra runs on the requester before its snapshot at 10 is written.
func gapStores(t *testing.T, extra func(req *Store)) (holder, req *Store, c *Client) {
	t.Helper()
	holder, req = openNamedStore(t, t.TempDir(), "n2"), openTestStore(t, t.TempDir())
	t.Cleanup(func() { holder.Close(); req.Close() })
	for _, s := range []*Store{holder, req} {
		if err := s.Stable.SetUint64([]byte("CurrentTerm"), 2); err != nil {
			t.Fatal(err)
		}
		storeDistinct(t, s, 1, 5, 1)
		storeDistinct(t, s, 6, 20, 2)
	}
	if extra != nil {
		extra(req)
	}
	id := writeSnap(t, req.Snapshots(), 10, 2, snapBytes(3))
	if err := req.Log.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	for _, cp := range []string{"a", "b"} {
		flipAt(t, filepath.Join(req.cfg.Dir, SnapMetaDir, id+"."+cp), 5)
	}
	req = reopen(t, req)
	c = NewClient("n1", []Peer{{Name: "n2", Addr: serve(t, holder)}})
	c.CallTimeout = 2 * time.Second
	t.Cleanup(func() { c.Close() })
	return holder, req, c
}

func sameEntries(t *testing.T, a, b *Store, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		var x, y raft.Log
		if err := a.Log.GetLog(i, &x); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if err := b.Log.GetLog(i, &y); err != nil {
			t.Fatalf("peer entry %d: %v", i, err)
		}
		if x.Index != y.Index || x.Term != y.Term || x.Type != y.Type || !bytes.Equal(x.Data, y.Data) {
			t.Fatalf("entry %d = (%d,%d,%q), peer has (%d,%d,%q)", i, x.Index, x.Term, x.Data, y.Index, y.Term, y.Data)
		}
	}
}

// The requester's only snapshot is lost and its log compacted past it;
// no peer has a snapshot, but the peer's log holds every entry: the gap
// is filled from it and survives a restart.
func TestRecover_GapFilledFromPeerLog(t *testing.T) {
	holder, req, c := gapStores(t, nil)
	if need, gap := req.Gap(); !gap || need != 10 {
		t.Fatalf("Gap() = %d, %v; want a gap needing 10", need, gap)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := req.Recover(ctx, c); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		first, _ := s.Log.FirstIndex()
		last, _ := s.Log.LastIndex()
		if _, gap := s.Gap(); gap || first != 1 || last != 20 {
			t.Fatalf("log [%d,%d], gap %v; want [1,20] and no gap", first, last, gap)
		}
		sameEntries(t, s, holder, 1, 20)
		s.Log.mu.RLock()
		t5, _ := s.Log.j.view.termAt(5)
		t6, _ := s.Log.j.view.termAt(6)
		s.Log.mu.RUnlock()
		if t5 != 1 || t6 != 2 {
			t.Fatalf("term table says %d at 5 and %d at 6, want 1 and 2", t5, t6)
		}
	}
	check(req)
	if st := req.Log.Stats(); st.GapFilled != 10 || st.GapBytes == 0 || req.Snapshots().Stats().WholeRepairs != 0 {
		t.Fatalf("stats %+v; want 10 entries filled and no snapshot installed", st)
	}
	req = reopen(t, req)
	if r := req.Report(); len(r.Faulty) != 0 || r.Compacted != 0 {
		t.Fatalf("after restart: %+v", r)
	}
	check(req)
}

// With an older verified snapshot (at 4) only the entries after it are
// fetched.
func TestRecover_GapFilledAboveOlderSnapshot(t *testing.T) {
	holder, req, c := gapStores(t, func(req *Store) { writeSnap(t, req.Snapshots(), 4, 1, snapBytes(4)) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := req.Recover(ctx, c); err != nil {
		t.Fatal(err)
	}
	first, _ := req.Log.FirstIndex()
	if first != 5 || req.Log.Stats().GapFilled != 6 {
		t.Fatalf("first %d, stats %+v; want entries 5..10 filled", first, req.Log.Stats())
	}
	sameEntries(t, req, holder, 5, 20)
}

// A peer whose entry at our first index differs (same index and term,
// other bytes) cannot vouch for the entries below it: nothing is
// installed, and the node refuses to start.
func TestRecover_GapFillRefusesUnanchoredPeer(t *testing.T) {
	holder, req := openNamedStore(t, t.TempDir(), "n2"), openTestStore(t, t.TempDir())
	defer holder.Close()
	defer req.Close()
	storeDistinct(t, req, 1, 20, 1)
	storeDistinct(t, holder, 1, 10, 1)
	if err := holder.Log.StoreLogs([]*raft.Log{{Index: 11, Term: 1, Type: raft.LogCommand, Data: []byte("another")}}); err != nil {
		t.Fatal(err)
	}
	id := writeSnap(t, req.Snapshots(), 10, 1, snapBytes(5))
	if err := req.Log.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	flipAt(t, filepath.Join(req.cfg.Dir, SnapshotsDir, id, snapStateFile), 7)
	req = reopen(t, req)
	c := NewClient("n1", []Peer{{Name: "n2", Addr: serve(t, holder)}})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if err := req.Recover(ctx, c); !errors.Is(err, ErrSnapshotGap) {
		t.Fatalf("Recover = %v, want ErrSnapshotGap", err)
	}
	bf, _ := req.bolt.FirstIndex()
	if first, _ := req.Log.FirstIndex(); first != 11 || bf != 11 || req.Log.Stats().GapFilled != 0 {
		t.Fatalf("first %d, bolt first %d, stats %+v; want nothing installed", first, bf, req.Log.Stats())
	}
}

// A gap fill cut short (entries in bolt, identifiers pending, no commit
// record; or a commit record whose range is incomplete) leaves the view
// as it was, and start-up removes the stray bolt entries.
func TestGapFill_UnfinishedIsUndone(t *testing.T) {
	holder, req, _ := gapStores(t, nil)
	var envs []*raft.Log
	var recs []record
	for i := uint64(1); i <= 10; i++ {
		id, _ := holder.Log.ident(i)
		_, env, err := holder.Log.readVerified(i, id)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, &raft.Log{Index: i, Term: id.term, Type: raft.LogCommand, Data: env})
		if i != 5 {
			recs = append(recs, record{kind: recBackfill, typ: id.typ, index: i, term: id.term, cksum: id.cksum})
		}
	}
	for _, done := range []bool{false, true} {
		if err := req.bolt.StoreLogs(envs); err != nil {
			t.Fatal(err)
		}
		rs := append([]record(nil), recs...)
		if done {
			rs = append(rs, record{kind: recBackfillDone, index: 1, term: 10}) // 5 is missing
		}
		req.Log.mu.Lock()
		err := req.Log.j.append(rs...)
		req.Log.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		req = reopen(t, req)
		bf, _ := req.bolt.FirstIndex()
		first, _ := req.Log.FirstIndex()
		if _, gap := req.Gap(); !gap || first != 11 || bf != 11 {
			t.Fatalf("done=%v: first %d, bolt first %d, gap %v; want the unfinished fill undone", done, first, bf, gap)
		}
	}
}
