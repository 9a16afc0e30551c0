package par

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"coord/proto/parpb"
)

var testConfig = raft.Configuration{Servers: []raft.Server{
	{Suffrage: raft.Voter, ID: "n1", Address: "127.0.0.1:1"},
	{Suffrage: raft.Voter, ID: "n2", Address: "127.0.0.1:2"},
	{Suffrage: raft.Voter, ID: "n3", Address: "127.0.0.1:3"},
}}

// snapBytes is a deterministic multi-chunk state (3.5 chunks).
func snapBytes(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 3*SnapshotChunkSize+SnapshotChunkSize/2)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func writeSnap(t *testing.T, st raft.SnapshotStore, index, term uint64, data []byte) string {
	t.Helper()
	_, trans := raft.NewInmemTransport("")
	sink, err := st.Create(1, index, term, testConfig, 1, trans)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

func openSnaps(t *testing.T, dir string) *SnapshotStore {
	t.Helper()
	st, err := OpenSnapshotStore(SnapshotConfig{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func readAll(t *testing.T, st raft.SnapshotStore, id string) (*raft.SnapshotMeta, []byte, error) {
	t.Helper()
	m, rc, err := st.Open(id)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return m, b, err
}

func flipAt(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotStore_SidecarRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st := openSnaps(t, dir)
	data := snapBytes(1)
	id := writeSnap(t, st, 10, 2, data)
	for _, c := range []string{"a", "b"} {
		if _, err := os.Stat(filepath.Join(dir, SnapMetaDir, id+"."+c)); err != nil {
			t.Fatalf("sidecar copy %s: %v", c, err)
		}
	}
	list, err := st.List()
	if err != nil || len(list) != 1 || list[0].Index != 10 || list[0].Term != 2 || list[0].Size != int64(len(data)) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	m, got, err := readAll(t, st, id)
	if err != nil || !bytes.Equal(got, data) || m.Index != 10 {
		t.Fatalf("Open: %v, %d bytes, equal=%v", err, len(got), bytes.Equal(got, data))
	}
	// A reopened store verifies it and lists it again; raft's own store
	// reads it too (the format underneath is unchanged).
	st2 := openSnaps(t, dir)
	if l, _ := st2.List(); len(l) != 1 {
		t.Fatalf("after reopen: %d snapshots", len(l))
	}
	fs, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, b, err := readAll(t, fs, id); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("raft's store cannot read par's snapshot: %v", err)
	}
}

// Parse-preserving edits of meta.json (what raft cannot tell) and a
// meta.json that no longer parses are both rewritten from the sidecar.
func TestSnapshotStore_MetaEditsRepairedFromSidecar(t *testing.T) {
	for _, edit := range []struct {
		name string
		f    func(m map[string]any) []byte
	}{
		{"index", func(m map[string]any) []byte { m["Index"] = 13; return nil }},
		{"term", func(m map[string]any) []byte { m["Term"] = 5; return nil }},
		{"size", func(m map[string]any) []byte { m["Size"] = 100; return nil }},
		{"configuration", func(m map[string]any) []byte {
			m["Configuration"] = map[string]any{"Servers": []any{map[string]any{"Suffrage": 0, "ID": "n1", "Address": "x"}}}
			return nil
		}},
		{"parse-breaking", func(map[string]any) []byte { return []byte("{\"Version\":1,\"ID\":") }},
	} {
		t.Run(edit.name, func(t *testing.T) {
			dir := t.TempDir()
			st := openSnaps(t, dir)
			data := snapBytes(2)
			id := writeSnap(t, st, 10, 2, data)
			path := filepath.Join(dir, SnapshotsDir, id, snapMetaFile)
			raw, _ := os.ReadFile(path)
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			out := edit.f(m)
			if out == nil {
				out, _ = json.Marshal(m)
			}
			if err := os.WriteFile(path, out, 0o600); err != nil {
				t.Fatal(err)
			}
			// At runtime (List) and at start-up (reopen) alike.
			for round, s := range []*SnapshotStore{st, nil} {
				if s == nil {
					if err := os.WriteFile(path, out, 0o600); err != nil {
						t.Fatal(err)
					}
					s = openSnaps(t, dir)
				}
				list, err := s.List()
				if err != nil || len(list) != 1 || list[0].Index != 10 || list[0].Term != 2 || list[0].Size != int64(len(data)) ||
					len(list[0].Configuration.Servers) != 3 {
					t.Fatalf("round %d: List = %+v, %v", round, list, err)
				}
				if s.Stats().MetaRepaired != 1 {
					t.Fatalf("round %d: stats %+v, want one meta repair", round, s.Stats())
				}
				var fixed raft.SnapshotMeta
				raw, _ := os.ReadFile(path)
				if err := json.Unmarshal(raw, &fixed); err != nil || fixed.Index != 10 || fixed.Term != 2 {
					t.Fatalf("round %d: meta.json not rewritten: %s", round, raw)
				}
			}
		})
	}
}

// A chunk flipped in state.bin: start-up quarantines the snapshot (moved,
// not deleted) and never lists it; raft falls back to the older one.
func TestSnapshotStore_BadChunkQuarantined(t *testing.T) {
	dir := t.TempDir()
	st := openSnaps(t, dir)
	old := writeSnap(t, st, 5, 1, snapBytes(3))
	id := writeSnap(t, st, 10, 2, snapBytes(4))
	flipAt(t, filepath.Join(dir, SnapshotsDir, id, snapStateFile), 2*SnapshotChunkSize+7)
	st2 := openSnaps(t, dir)
	list, _ := st2.List()
	if len(list) != 1 || list[0].ID != old {
		t.Fatalf("List = %+v, want only the older snapshot", list)
	}
	if st2.Stats().Quarantined != 1 || len(st2.damaged) != 1 || len(st2.damaged[0].bad) != 1 || st2.damaged[0].bad[0] != 2 {
		t.Fatalf("stats %+v damaged %+v, want chunk 2 quarantined", st2.Stats(), st2.damaged)
	}
	if _, err := os.Stat(st2.damaged[0].state); err != nil {
		t.Fatalf("quarantined copy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, SnapshotsDir, id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bad snapshot still in snapshots/: %v", err)
	}
	if _, _, err := st2.Open(id); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("Open(quarantined) = %v", err)
	}
}

// Damage under a running store: the reader fails with a typed error at
// the bad chunk and has handed out only verified bytes before it.
func TestSnapshotStore_ReaderStopsAtBadChunk(t *testing.T) {
	dir := t.TempDir()
	st := openSnaps(t, dir)
	data := snapBytes(5)
	id := writeSnap(t, st, 10, 2, data)
	flipAt(t, filepath.Join(dir, SnapshotsDir, id, snapStateFile), SnapshotChunkSize+100)
	_, rc, err := st.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	var se *SnapshotError
	if !errors.Is(err, ErrSnapshotCorrupt) || !errors.As(err, &se) || se.Chunk != 1 {
		t.Fatalf("read error %v, want chunk 1 ErrSnapshotCorrupt", err)
	}
	if len(got) != SnapshotChunkSize || !bytes.Equal(got, data[:SnapshotChunkSize]) {
		t.Fatalf("reader handed %d bytes before the bad chunk, want exactly the verified first chunk", len(got))
	}
	if list, _ := st.List(); len(list) != 0 || st.Stats().Quarantined != 1 {
		t.Fatalf("after a bad read: list %d, stats %+v", len(list), st.Stats())
	}
}

func TestSnapshotStore_Sidecars(t *testing.T) {
	setup := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		return dir, writeSnap(t, openSnaps(t, dir), 10, 2, snapBytes(6))
	}
	side := func(dir, id, c string) string { return filepath.Join(dir, SnapMetaDir, id+"."+c) }
	t.Run("one copy damaged", func(t *testing.T) {
		dir, id := setup(t)
		flipAt(t, side(dir, id, "a"), 20)
		st := openSnaps(t, dir)
		if l, _ := st.List(); len(l) != 1 || st.Stats().SidecarFixed != 1 {
			t.Fatalf("list %d stats %+v", len(l), st.Stats())
		}
		a, _ := os.ReadFile(side(dir, id, "a"))
		b, _ := os.ReadFile(side(dir, id, "b"))
		if !bytes.Equal(a, b) {
			t.Fatal("copy a not rewritten from b")
		}
	})
	t.Run("both damaged", func(t *testing.T) {
		dir, id := setup(t)
		flipAt(t, side(dir, id, "a"), 20)
		flipAt(t, side(dir, id, "b"), 30)
		st := openSnaps(t, dir)
		if l, _ := st.List(); len(l) != 0 || st.Stats().Quarantined != 1 || len(st.damaged) != 0 {
			t.Fatalf("list %d stats %+v damaged %d", len(l), st.Stats(), len(st.damaged))
		}
	})
	t.Run("both missing (crash before the sidecar)", func(t *testing.T) {
		dir, id := setup(t)
		os.Remove(side(dir, id, "a"))
		os.Remove(side(dir, id, "b"))
		st := openSnaps(t, dir)
		if l, _ := st.List(); len(l) != 1 || st.Stats().SidecarFixed != 1 {
			t.Fatalf("list %d stats %+v", len(l), st.Stats())
		}
	})
	t.Run("missing and state damaged", func(t *testing.T) {
		dir, id := setup(t)
		os.Remove(side(dir, id, "a"))
		os.Remove(side(dir, id, "b"))
		flipAt(t, filepath.Join(dir, SnapshotsDir, id, snapStateFile), 10)
		st := openSnaps(t, dir)
		if l, _ := st.List(); len(l) != 0 || st.Stats().Quarantined != 1 {
			t.Fatalf("list %d stats %+v", len(l), st.Stats())
		}
	})
}

func TestSnapshotStore_RetainsVerified(t *testing.T) {
	dir := t.TempDir()
	st := openSnaps(t, dir)
	var ids []string
	for i := uint64(1); i <= 4; i++ {
		ids = append(ids, writeSnap(t, st, i*10, 1, snapBytes(i)))
		time.Sleep(2 * time.Millisecond) // distinct ids
	}
	list, _ := st.List()
	if len(list) != DefaultSnapshotRetain || list[0].Index != 40 || list[1].Index != 30 {
		t.Fatalf("List = %+v", list)
	}
	for _, id := range ids[:2] {
		if _, err := os.Stat(filepath.Join(dir, SnapshotsDir, id)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("old snapshot %s not reaped", id)
		}
		if _, err := os.Stat(filepath.Join(dir, SnapMetaDir, id+".a")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("old sidecar %s not reaped", id)
		}
	}
}

// serve runs a PeerRepair server for st on 127.0.0.1.
func serve(t *testing.T, st *Store) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	parpb.RegisterPeerRepairServer(g, NewServer(st))
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

// twoStores: a holder and a requester with the same log 1..20 (term 1)
// and the same snapshot at 10; the requester's log is compacted to 10.
func twoStores(t *testing.T) (holder, req *Store, c *Client, data []byte) {
	t.Helper()
	holder, req = openNamedStore(t, t.TempDir(), "n2"), openTestStore(t, t.TempDir())
	t.Cleanup(func() { holder.Close(); req.Close() })
	data = snapBytes(7)
	for _, s := range []*Store{holder, req} {
		if err := s.Stable.SetUint64([]byte("CurrentTerm"), 1); err != nil { // else a reopen is amnesia
			t.Fatal(err)
		}
		storeN(t, s, 1, 20, 1)
		writeSnap(t, s.Snapshots(), 10, 1, data)
	}
	if err := req.Log.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	c = NewClient("n1", []Peer{{Name: "n2", Addr: serve(t, holder)}})
	c.CallTimeout = 2 * time.Second
	t.Cleanup(func() { c.Close() })
	return holder, req, c, data
}

// reopen closes s and opens its dir again (start-up verification).
func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	dir := s.cfg.Dir
	s.Close()
	n := openNamedStore(t, dir, s.cfg.Name)
	t.Cleanup(func() { n.Close() })
	return n
}

// The requester's only snapshot has a bad chunk and its log is compacted
// past it: the gap is closed by fetching just that chunk from the peer's
// identical snapshot.
func TestRecover_ChunkRepairClosesGap(t *testing.T) {
	_, req, c, data := twoStores(t)
	id := req.Snapshots().sorted()[0].Meta.ID
	flipAt(t, filepath.Join(req.cfg.Dir, SnapshotsDir, id, snapStateFile), 3*SnapshotChunkSize+1)
	req = reopen(t, req)
	if need, gap := req.Gap(); !gap || need != 10 {
		t.Fatalf("Gap() = %d, %v; want a gap needing 10", need, gap)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := req.Recover(ctx, c); err != nil {
		t.Fatal(err)
	}
	st := req.Snapshots().Stats()
	if st.ChunkRepairs != 1 || st.WholeRepairs != 0 || st.ChunksFetched != 1 || st.FetchedBytes != SnapshotChunkSize/2 {
		t.Fatalf("stats %+v: want one chunk repair moving one (half) chunk", st)
	}
	list, _ := req.Snapshots().List()
	_, got, err := readAll(t, req.Snapshots(), list[0].ID)
	if err != nil || !bytes.Equal(got, data) || list[0].Index != 10 {
		t.Fatalf("repaired snapshot: %v equal=%v", err, bytes.Equal(got, data))
	}
	if _, gap := req.Gap(); gap {
		t.Fatal("gap remains")
	}
}

// No identical copy (both sidecars lost): the whole peer snapshot is
// installed, verified chunk by chunk and by SHA-256.
func TestRecover_WholeSnapshotClosesGap(t *testing.T) {
	_, req, c, data := twoStores(t)
	id := req.Snapshots().sorted()[0].Meta.ID
	for _, cp := range []string{"a", "b"} {
		flipAt(t, filepath.Join(req.cfg.Dir, SnapMetaDir, id+"."+cp), 5)
	}
	req = reopen(t, req)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := req.Recover(ctx, c); err != nil {
		t.Fatal(err)
	}
	st := req.Snapshots().Stats()
	if st.WholeRepairs != 1 || st.FetchedBytes != int64(len(data)) {
		t.Fatalf("stats %+v: want one whole repair of %d bytes", st, len(data))
	}
	if first, _ := req.Log.FirstIndex(); first != 11 {
		t.Fatalf("first index %d after install, want 11", first)
	}
}

// Nobody can close the gap (the peer's snapshot is damaged too and its log
// is compacted as well): Recover refuses (raft must never start with a
// gap: its configuration scan would panic on "log not found").
func TestRecover_GapWithoutPeersRefuses(t *testing.T) {
	holder, req, c, _ := twoStores(t)
	if err := holder.Log.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{holder, req} {
		id := s.Snapshots().sorted()[0].Meta.ID
		flipAt(t, filepath.Join(s.cfg.Dir, SnapshotsDir, id, snapStateFile), 10)
	}
	holder = reopen(t, holder)
	req = reopen(t, req)
	c.Close()
	c = NewClient("n1", []Peer{{Name: "n2", Addr: serve(t, holder)}})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	err := req.Recover(ctx, c)
	if !errors.Is(err, ErrSnapshotGap) || !errors.Is(err, ErrUnrecoverable) {
		t.Fatalf("Recover = %v, want ErrSnapshotGap", err)
	}
}

// Faulty entries the verified snapshot covers are compacted locally, with
// no peer asked.
func TestRecover_FaultyEntryCoveredBySnapshot(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	storeN(t, s, 1, 20, 1)
	writeSnap(t, s.Snapshots(), 10, 1, snapBytes(8))
	s.Log.markFaulty(7)
	c := NewClient("n1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Recover(ctx, c); err != nil {
		t.Fatal(err)
	}
	if first, _ := s.Log.FirstIndex(); first != 8 || len(s.faultyList()) != 0 {
		t.Fatalf("first %d faulty %v; want compaction through 7", first, s.faultyList())
	}
}

// Rule 3: a faulty entry the only peer has compacted into its snapshot is
// fetched as that snapshot; our log, all of it at or below the snapshot
// (its term-2 tail included, which the committed snapshot overrides), is
// compacted.
func TestRecover_Rule3FetchesPeerSnapshot(t *testing.T) {
	holder := openTestStore(t, t.TempDir())
	req := openTestStore(t, t.TempDir())
	defer holder.Close()
	defer req.Close()
	storeN(t, holder, 1, 20, 1)
	data := snapBytes(9)
	writeSnap(t, holder.Snapshots(), 15, 1, data)
	if err := holder.Log.DeleteRange(1, 15); err != nil {
		t.Fatal(err)
	}
	// The requester holds 1..12 at term 1 and 13..14 at term 2 (never
	// committed: the holder's snapshot at 15 has term 1 everywhere).
	storeN(t, req, 1, 12, 1)
	storeN(t, req, 13, 14, 2)
	req.Log.markFaulty(12)
	c := NewClient("n1", []Peer{{Name: "n2", Addr: serve(t, holder)}})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := req.Recover(ctx, c); err != nil {
		t.Fatal(err)
	}
	if idx, _, ok := req.Snapshots().Newest(); !ok || idx != 15 {
		t.Fatalf("newest snapshot %d, %v; want the peer's at 15", idx, ok)
	}
	first, _ := req.Log.FirstIndex()
	last, _ := req.Log.LastIndex()
	if first != 0 || last != 0 || len(req.faultyList()) != 0 {
		t.Fatalf("log [%d,%d] faulty %v; want everything up to 15 compacted", first, last, req.faultyList())
	}
}

// No peer lists a snapshot covering the gap, but a peer whose raft runs
// holds the entries in its log: it is asked to snapshot (RequestSnapshot)
// and that snapshot is fetched.
func TestRecover_GapClosedByRequestedSnapshot(t *testing.T) {
	holder, req, c, _ := twoStores(t)
	hid := holder.Snapshots().sorted()[0].Meta.ID
	flipAt(t, filepath.Join(holder.cfg.Dir, SnapshotsDir, hid, snapStateFile), 10)
	id := req.Snapshots().sorted()[0].Meta.ID
	for _, cp := range []string{"a", "b"} {
		flipAt(t, filepath.Join(req.cfg.Dir, SnapMetaDir, id+"."+cp), 5)
	}
	holder = reopen(t, holder)
	req = reopen(t, req)
	fresh := snapBytes(11)
	triggered := 0
	holder.Snapshots().SetTrigger(func() error {
		triggered++
		writeSnap(t, holder.Snapshots(), 20, 1, fresh) // what raft would do: snapshot its applied state
		return nil
	})
	c.Close()
	c = NewClient("n1", []Peer{{Name: "n2", Addr: serve(t, holder)}})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := req.Recover(ctx, c); err != nil {
		t.Fatal(err)
	}
	if idx, _, _ := req.Snapshots().Newest(); triggered != 1 || idx != 20 || req.Snapshots().Stats().WholeRepairs != 1 {
		t.Fatalf("triggered %d, newest %d, stats %+v; want one requested snapshot at 20 installed", triggered, idx, req.Snapshots().Stats())
	}
	if first, last := func() (uint64, uint64) { f, _ := req.Log.FirstIndex(); l, _ := req.Log.LastIndex(); return f, l }(); first != 0 || last != 0 {
		t.Fatalf("log [%d,%d], want everything up to 20 compacted", first, last)
	}
}

// FuzzDecodeSidecar: any bytes decode to a typed error or to a sidecar
// whose chunk table matches its size; never a panic.
func FuzzDecodeSidecar(f *testing.F) {
	sum := newSnapSum()
	sum.Write(snapBytes(1))
	good, _ := encodeSidecar(sum.sidecar(fileMeta{SnapshotMeta: raft.SnapshotMeta{ID: "1-2-3", Index: 2, Term: 1, Configuration: testConfig}}))
	f.Add(good)
	f.Add([]byte{})
	f.Add(append([]byte(nil), sidecarMagic...))
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := decodeSidecar(b)
		if err != nil {
			return
		}
		if sc.ChunkSize == 0 || int64(sc.chunks()) != (sc.Meta.Size+int64(sc.ChunkSize)-1)/int64(sc.ChunkSize) {
			t.Fatalf("accepted an inconsistent sidecar: %+v", sc)
		}
		again, err := encodeSidecar(sc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeSidecar(again); err != nil {
			t.Fatalf("re-encoded sidecar fails: %v", err)
		}
	})
}
