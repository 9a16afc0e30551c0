package par

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// This file is par.SnapshotStore (design §4.6): raft's FileSnapshotStore,
// unchanged underneath, plus a checksummed sidecar per snapshot kept in two
// copies outside the snapshot directory, verification on List/Open and at
// start-up, quarantine of snapshots that fail it, and par's own reaper
// (the inner one cannot tell good snapshots from bad ones).

// Snapshot layout under the data dir.
const (
	// SnapMetaDir holds the sidecars, <id>.a and <id>.b.
	SnapMetaDir = "par-snapmeta"
	// SnapshotsDir is FileSnapshotStore's directory.
	SnapshotsDir = "snapshots"
	// SnapshotChunkSize is the unit of sidecar checksums, verification
	// and chunk repair.
	SnapshotChunkSize = 64 << 10
	// DefaultSnapshotRetain is how many verified snapshots par keeps.
	DefaultSnapshotRetain = 2

	snapMetaFile  = "meta.json"
	snapStateFile = "state.bin"
	// innerRetain is the inner store's retain: large, so its blind reaper
	// never removes anything; par reaps verified snapshots itself.
	innerRetain = 1 << 16
)

// Snapshot errors. Test with errors.Is.
var (
	// ErrSnapshotCorrupt: a snapshot's state.bin, meta or sidecar fails
	// verification (a *SnapshotError carries which snapshot and chunk).
	ErrSnapshotCorrupt = errors.New("par: snapshot fails verification")
	// ErrNoSnapshot: no verified snapshot with that id.
	ErrNoSnapshot = errors.New("par: no such verified snapshot")
	// ErrSnapshotGap: the log does not reach the newest usable snapshot
	// (invariant I4) and no peer could close the gap in time. Starting raft
	// would panic in its configuration scan or lose entries.
	ErrSnapshotGap = errors.New("par: log starts after the newest usable snapshot (gap)")
)

// SnapshotError describes one snapshot that failed verification.
type SnapshotError struct {
	ID string
	// Chunk is the first bad chunk, -1 when the damage is not in a chunk
	// (sidecar, size, meta).
	Chunk  int
	Reason string
}

func (e *SnapshotError) Error() string {
	if e.Chunk >= 0 {
		return fmt.Sprintf("snapshot %s chunk %d: %s: %v", e.ID, e.Chunk, e.Reason, ErrSnapshotCorrupt)
	}
	return fmt.Sprintf("snapshot %s: %s: %v", e.ID, e.Reason, ErrSnapshotCorrupt)
}

// Unwrap makes errors.Is(err, ErrSnapshotCorrupt) hold.
func (e *SnapshotError) Unwrap() error { return ErrSnapshotCorrupt }

// fileMeta has the JSON shape of FileSnapshotStore's meta.json.
type fileMeta struct {
	raft.SnapshotMeta
	CRC []byte
}

// sidecar is what par keeps about one snapshot: raft's whole meta (so a
// damaged meta.json can be rewritten), the state size and checksums.
type sidecar struct {
	Meta      fileMeta
	SHA256    []byte
	ChunkSize uint32
	ChunkCRCs []uint32
}

func (sc *sidecar) chunks() int { return len(sc.ChunkCRCs) }

// chunkLen is the length of chunk k.
func (sc *sidecar) chunkLen(k int) int64 {
	off := int64(k) * int64(sc.ChunkSize)
	return min(int64(sc.ChunkSize), sc.Meta.Size-off)
}

var sidecarMagic = []byte("PARSNAP1")

// encodeSidecar: JSON, then magic and a CRC32C of the JSON.
func encodeSidecar(sc *sidecar) ([]byte, error) {
	js, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	out := append(js, sidecarMagic...)
	return binary.BigEndian.AppendUint32(out, crc(js)), nil
}

func decodeSidecar(b []byte) (*sidecar, error) {
	n := len(b) - len(sidecarMagic) - 4
	if n <= 0 || !bytes.Equal(b[n:n+len(sidecarMagic)], sidecarMagic) {
		return nil, errors.New("sidecar: bad trailer")
	}
	if crc(b[:n]) != binary.BigEndian.Uint32(b[n+len(sidecarMagic):]) {
		return nil, errors.New("sidecar: checksum mismatch")
	}
	sc := &sidecar{}
	if err := json.Unmarshal(b[:n], sc); err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	if sc.ChunkSize == 0 || int64(len(sc.ChunkCRCs)) != (sc.Meta.Size+int64(sc.ChunkSize)-1)/int64(sc.ChunkSize) {
		return nil, errors.New("sidecar: chunk table does not match the size")
	}
	return sc, nil
}

// SnapshotConfig configures OpenSnapshotStore.
type SnapshotConfig struct {
	// Dir is the node's data dir (snapshots/ and par-snapmeta/ live there).
	Dir string
	// Retain is how many verified snapshots to keep (0:
	// DefaultSnapshotRetain).
	Retain int
	// NoSync skips fsyncs (tests only).
	NoSync bool
	// Logger; nil discards.
	Logger *slog.Logger
}

// SnapshotStats are the snapshot store's counters.
type SnapshotStats struct {
	Verified      int   // snapshots currently listed
	Quarantined   int64 // snapshots moved to par-quarantine/
	MetaRepaired  int64 // meta.json files rewritten from a sidecar
	SidecarFixed  int64 // sidecar copies rewritten from the other copy, or adopted after a crash
	ChunkRepairs  int64 // snapshots repaired by fetching their bad chunks from a peer
	WholeRepairs  int64 // snapshots installed whole from a peer
	FetchedBytes  int64 // state bytes received from peers
	ChunksFetched int64 // chunks received from peers
}

// SnapshotStore is a raft.SnapshotStore over FileSnapshotStore that never
// lists or opens a snapshot it has not verified and never hands raft a
// byte that fails its chunk checksum.
type SnapshotStore struct {
	cfg   SnapshotConfig
	inner *raft.FileSnapshotStore
	log   *slog.Logger

	mu       sync.Mutex
	verified map[string]*sidecar
	damaged  []*damagedSnapshot

	quarantined, metaRepaired, sidecarFixed       atomic.Int64
	chunkRepairs, wholeRepairs, fetched, nFetched atomic.Int64

	// trigger takes a raft snapshot now (set once raft runs); triggerMu
	// serialises requests from peers.
	trigger   atomic.Pointer[func() error]
	triggerMu sync.Mutex
}

// SetTrigger installs the function that makes raft take a snapshot now
// (coord sets it to the replica's TakeSnapshot once raft runs); peers in
// pre-start recovery use it through RequestSnapshot.
func (st *SnapshotStore) SetTrigger(f func() error) { st.trigger.Store(&f) }

// damagedSnapshot is a quarantined snapshot whose sidecar is intact: its
// bad chunks can be fetched from a peer holding an identical snapshot.
type damagedSnapshot struct {
	sc    *sidecar
	state string // the quarantined state.bin
	bad   []int
}

var _ raft.SnapshotStore = (*SnapshotStore)(nil)

// OpenSnapshotStore opens the store under cfg.Dir and verifies every
// snapshot in it: sidecar, meta.json against the sidecar (a damaged or
// edited meta.json is rewritten from it), size and every chunk. A
// snapshot that fails is moved to par-quarantine/ and never listed. A
// snapshot without any sidecar (a crash between raft's Close and the
// sidecar write) is adopted if raft's own CRC64 and meta agree with it.
func OpenSnapshotStore(cfg SnapshotConfig) (*SnapshotStore, error) {
	if cfg.Retain <= 0 {
		cfg.Retain = DefaultSnapshotRetain
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	inner, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, innerRetain, hclog.NewNullLogger())
	if err != nil {
		return nil, fmt.Errorf("open snapshot store in %s: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, SnapMetaDir), 0o700); err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	st := &SnapshotStore{cfg: cfg, inner: inner, log: cfg.Logger.With("component", "par-snapshots"), verified: map[string]*sidecar{}}
	if err := st.verifyAll(); err != nil {
		return nil, err
	}
	return st, nil
}

func (st *SnapshotStore) snapDir(id string) string {
	return filepath.Join(st.cfg.Dir, SnapshotsDir, id)
}

func (st *SnapshotStore) sidecarPath(id, copy string) string {
	return filepath.Join(st.cfg.Dir, SnapMetaDir, id+"."+copy)
}

// Stats returns the counters.
func (st *SnapshotStore) Stats() SnapshotStats {
	st.mu.Lock()
	n := len(st.verified)
	st.mu.Unlock()
	return SnapshotStats{
		Verified: n, Quarantined: st.quarantined.Load(), MetaRepaired: st.metaRepaired.Load(),
		SidecarFixed: st.sidecarFixed.Load(), ChunkRepairs: st.chunkRepairs.Load(), WholeRepairs: st.wholeRepairs.Load(),
		FetchedBytes: st.fetched.Load(), ChunksFetched: st.nFetched.Load(),
	}
}

// verifyAll checks every snapshot directory (start-up).
func (st *SnapshotStore) verifyAll() error {
	ents, err := os.ReadDir(filepath.Join(st.cfg.Dir, SnapshotsDir))
	if err != nil {
		return fmt.Errorf("read snapshots: %w", err)
	}
	present := map[string]bool{}
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue // raft ignores these too
		}
		id := e.Name()
		present[id] = true
		sc, bad, err := st.verifyOne(id)
		if err != nil {
			st.log.Warn("par: snapshot fails verification; quarantined", "id", id, "err", err)
			if qerr := st.quarantine(id, sc, bad); qerr != nil {
				return qerr
			}
			continue
		}
		st.verified[id] = sc
	}
	// Sidecars of snapshots that no longer exist (reaped before a crash).
	if ents, err := os.ReadDir(filepath.Join(st.cfg.Dir, SnapMetaDir)); err == nil {
		for _, e := range ents {
			id := strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".a"), ".b")
			if !present[id] {
				_ = os.Remove(filepath.Join(st.cfg.Dir, SnapMetaDir, e.Name()))
			}
		}
	}
	return st.reap()
}

// loadSidecar reads both copies. Missing copies are a crash window
// (adopted by the caller); a corrupt copy with a valid twin is rewritten.
func (st *SnapshotStore) loadSidecar(id string) (sc *sidecar, missing bool, err error) {
	var got [2]*sidecar
	var errs [2]error
	absent := 0
	for k, c := range []string{"a", "b"} {
		b, rerr := os.ReadFile(st.sidecarPath(id, c))
		if errors.Is(rerr, os.ErrNotExist) {
			absent++
			errs[k] = rerr
			continue
		}
		if rerr != nil {
			errs[k] = rerr
			continue
		}
		got[k], errs[k] = decodeSidecar(b)
	}
	switch {
	case got[0] != nil && got[1] != nil:
		a, _ := encodeSidecar(got[0])
		b, _ := encodeSidecar(got[1])
		if !bytes.Equal(a, b) {
			return nil, false, errors.New("the two sidecar copies disagree")
		}
		return got[0], false, nil
	case got[0] != nil || got[1] != nil:
		sc = got[0]
		other := "b"
		if sc == nil {
			sc, other = got[1], "a"
		}
		if werr := st.writeSidecarCopy(sc, other); werr != nil {
			return nil, false, werr
		}
		st.sidecarFixed.Add(1)
		st.log.Warn("par: snapshot sidecar copy rewritten from its twin", "id", id, "copy", other)
		return sc, false, nil
	case absent == 2:
		return nil, true, nil
	default:
		return nil, false, fmt.Errorf("no valid sidecar copy: %v", errors.Join(errs[0], errs[1]))
	}
}

// verifyOne verifies one snapshot directory. On failure it returns the
// sidecar (if valid) and the bad chunks, for chunk repair.
func (st *SnapshotStore) verifyOne(id string) (*sidecar, []int, error) {
	sc, missing, err := st.loadSidecar(id)
	if err != nil {
		return nil, nil, &SnapshotError{ID: id, Chunk: -1, Reason: err.Error()}
	}
	if missing {
		sc, err = st.adopt(id)
		if err != nil {
			return nil, nil, &SnapshotError{ID: id, Chunk: -1, Reason: "no sidecar and " + err.Error()}
		}
		return sc, nil, nil
	}
	if sc.Meta.ID != id {
		return nil, nil, &SnapshotError{ID: id, Chunk: -1, Reason: fmt.Sprintf("sidecar names snapshot %s", sc.Meta.ID)}
	}
	bad, err := st.checkState(id, sc)
	if err != nil {
		return sc, bad, err
	}
	if err := st.checkMeta(id, sc); err != nil {
		return sc, nil, err
	}
	return sc, nil, nil
}

// checkState verifies state.bin's size, every chunk and the SHA-256.
func (st *SnapshotStore) checkState(id string, sc *sidecar) ([]int, error) {
	f, err := os.Open(filepath.Join(st.snapDir(id), snapStateFile))
	if err != nil {
		return nil, &SnapshotError{ID: id, Chunk: -1, Reason: err.Error()}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &SnapshotError{ID: id, Chunk: -1, Reason: err.Error()}
	}
	var bad []int
	h := sha256.New()
	buf := make([]byte, sc.ChunkSize)
	for k := 0; k < sc.chunks(); k++ {
		b := buf[:sc.chunkLen(k)]
		if _, err := f.ReadAt(b, int64(k)*int64(sc.ChunkSize)); err != nil || crc(b) != sc.ChunkCRCs[k] {
			bad = append(bad, k)
			continue
		}
		h.Write(b)
	}
	switch {
	case len(bad) > 0:
		return bad, &SnapshotError{ID: id, Chunk: bad[0], Reason: fmt.Sprintf("%d of %d chunks fail their checksum", len(bad), sc.chunks())}
	case fi.Size() != sc.Meta.Size:
		// Every chunk verifies, so the file only has extra bytes.
		return nil, &SnapshotError{ID: id, Chunk: -1, Reason: fmt.Sprintf("state.bin is %d bytes, sidecar says %d", fi.Size(), sc.Meta.Size)}
	case !bytes.Equal(h.Sum(nil), sc.SHA256):
		return nil, &SnapshotError{ID: id, Chunk: -1, Reason: "state.bin SHA-256 mismatch"}
	}
	return nil, nil
}

// checkMeta compares meta.json with the sidecar and rewrites it from the
// sidecar when it does not parse or differs in any field (a
// parse-preserving edit of Index, Term, Size or Configuration included).
func (st *SnapshotStore) checkMeta(id string, sc *sidecar) error {
	want, err := json.Marshal(&sc.Meta)
	if err != nil {
		return err
	}
	path := filepath.Join(st.snapDir(id), snapMetaFile)
	raw, rerr := os.ReadFile(path)
	var got fileMeta
	if rerr == nil && json.Unmarshal(raw, &got) == nil {
		if have, err := json.Marshal(&got); err == nil && bytes.Equal(have, want) {
			return nil
		}
	}
	if errors.Is(rerr, os.ErrNotExist) {
		if _, err := os.Stat(st.snapDir(id)); err != nil {
			return &SnapshotError{ID: id, Chunk: -1, Reason: "snapshot directory is gone"}
		}
	}
	// Same encoding as FileSnapshotStore.writeMeta (json.Encoder: a
	// trailing newline).
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(&sc.Meta); err != nil {
		return err
	}
	if err := st.writeAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	st.metaRepaired.Add(1)
	st.log.Warn("par: snapshot meta.json did not match its sidecar; rewritten", "id", id)
	return nil
}

// adopt builds the sidecar of a snapshot that has none (a crash between
// raft's Close and the sidecar write): meta.json must parse and agree with
// the directory name, and state.bin must match raft's CRC64 and size.
func (st *SnapshotStore) adopt(id string) (*sidecar, error) {
	raw, err := os.ReadFile(filepath.Join(st.snapDir(id), snapMetaFile))
	if err != nil {
		return nil, err
	}
	var m fileMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("meta.json: %w", err)
	}
	if m.ID != id || !strings.HasPrefix(id, fmt.Sprintf("%d-%d-", m.Term, m.Index)) {
		return nil, fmt.Errorf("meta.json (id %s, term %d, index %d) does not match the directory", m.ID, m.Term, m.Index)
	}
	f, err := os.Open(filepath.Join(st.snapDir(id), snapStateFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sum := newSnapSum()
	if _, err := io.Copy(sum, f); err != nil {
		return nil, err
	}
	sc := sum.sidecar(m)
	if sc.Meta.Size != m.Size || !bytes.Equal(sum.crc64.Sum(nil), m.CRC) {
		return nil, errors.New("state.bin does not match raft's CRC64/size in meta.json")
	}
	if err := st.writeSidecar(sc); err != nil {
		return nil, err
	}
	st.sidecarFixed.Add(1)
	st.log.Warn("par: snapshot without sidecar adopted (crash after raft's Close)", "id", id)
	return sc, nil
}

// quarantine moves a snapshot (and its sidecars) to par-quarantine/
// snapshots/ so raft never sees it; it is kept, not deleted. A snapshot
// whose sidecar is valid stays a chunk-repair candidate.
func (st *SnapshotStore) quarantine(id string, sc *sidecar, bad []int) error {
	qdir := filepath.Join(st.cfg.Dir, QuarantineDir, SnapshotsDir)
	if err := os.MkdirAll(qdir, 0o700); err != nil {
		return fmt.Errorf("quarantine snapshot %s: %w", id, err)
	}
	dst := filepath.Join(qdir, fmt.Sprintf("%s.%d", id, time.Now().UnixNano()))
	if err := os.Rename(st.snapDir(id), dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("quarantine snapshot %s: %w", id, err)
	}
	for _, c := range []string{"a", "b"} {
		_ = os.Rename(st.sidecarPath(id, c), filepath.Join(dst, "sidecar."+c))
	}
	st.syncDir(filepath.Join(st.cfg.Dir, SnapshotsDir))
	st.quarantined.Add(1)
	delete(st.verified, id)
	if sc != nil {
		st.damaged = append(st.damaged, &damagedSnapshot{sc: sc, state: filepath.Join(dst, snapStateFile), bad: bad})
	}
	return nil
}

// Quarantine moves a snapshot aside at runtime (a chunk failed while
// raft read it).
func (st *SnapshotStore) Quarantine(id string, bad []int) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	sc := st.verified[id]
	if sc == nil {
		return nil // already moved
	}
	st.log.Warn("par: snapshot failed verification while read; quarantined", "id", id, "bad_chunks", bad)
	return st.quarantine(id, sc, bad)
}

// sorted returns the verified snapshots newest first (raft's order:
// term, index, id).
func (st *SnapshotStore) sorted() []*sidecar {
	out := make([]*sidecar, 0, len(st.verified))
	for _, sc := range st.verified {
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Meta, out[j].Meta
		if a.Term != b.Term {
			return a.Term > b.Term
		}
		if a.Index != b.Index {
			return a.Index > b.Index
		}
		return a.ID > b.ID
	})
	return out
}

// reap keeps the newest Retain verified snapshots (caller holds mu or is
// single-threaded start-up).
func (st *SnapshotStore) reap() error {
	all := st.sorted()
	for _, sc := range all[min(len(all), st.cfg.Retain):] {
		id := sc.Meta.ID
		if err := os.RemoveAll(st.snapDir(id)); err != nil {
			return fmt.Errorf("reap snapshot %s: %w", id, err)
		}
		_ = os.Remove(st.sidecarPath(id, "a"))
		_ = os.Remove(st.sidecarPath(id, "b"))
		delete(st.verified, id)
	}
	return nil
}

// List returns the verified snapshots, newest first. Each one's meta.json
// is compared with its sidecar (and rewritten from it if it differs); a
// snapshot whose directory vanished is dropped.
func (st *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []*raft.SnapshotMeta
	for _, sc := range st.sorted() {
		id := sc.Meta.ID
		if err := st.checkMeta(id, sc); err != nil {
			if qerr := st.quarantine(id, sc, nil); qerr != nil {
				return nil, qerr
			}
			continue
		}
		m := sc.Meta.SnapshotMeta
		out = append(out, &m)
	}
	return out, nil
}

// Newest returns the newest verified snapshot's index and term (ok false:
// none).
func (st *SnapshotStore) Newest() (index, term uint64, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if all := st.sorted(); len(all) > 0 {
		return all[0].Meta.Index, all[0].Meta.Term, true
	}
	return 0, 0, false
}

// Open returns a verified snapshot: the meta from its sidecar and a
// reader that checks every chunk before handing out its bytes and fails
// with a *SnapshotError (errors.Is ErrSnapshotCorrupt) at the first bad
// one; the snapshot is then quarantined.
func (st *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	st.mu.Lock()
	sc := st.verified[id]
	if sc == nil {
		st.mu.Unlock()
		return nil, nil, fmt.Errorf("open snapshot %s: %w", id, ErrNoSnapshot)
	}
	if err := st.checkMeta(id, sc); err != nil {
		_ = st.quarantine(id, sc, nil)
		st.mu.Unlock()
		return nil, nil, err
	}
	st.mu.Unlock()
	f, err := os.Open(filepath.Join(st.snapDir(id), snapStateFile))
	if err != nil {
		return nil, nil, fmt.Errorf("open snapshot %s: %w", id, err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != sc.Meta.Size {
		f.Close()
		serr := &SnapshotError{ID: id, Chunk: -1, Reason: "state.bin size differs from the sidecar"}
		_ = st.Quarantine(id, nil)
		return nil, nil, serr
	}
	m := sc.Meta.SnapshotMeta
	return &m, &chunkReader{f: f, sc: sc, onBad: func(k int) { _ = st.Quarantine(id, []int{k}) }, sha: sha256.New()}, nil
}

// chunkReader reads state.bin one verified chunk at a time.
type chunkReader struct {
	f     *os.File
	sc    *sidecar
	onBad func(chunk int)
	next  int    // next chunk to load
	buf   []byte // verified bytes not yet returned
	sha   hash.Hash
	err   error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.next >= r.sc.chunks() {
			if !bytes.Equal(r.sha.Sum(nil), r.sc.SHA256) {
				r.err = &SnapshotError{ID: r.sc.Meta.ID, Chunk: -1, Reason: "state.bin SHA-256 mismatch"}
				r.onBad(-1)
				return 0, r.err
			}
			r.err = io.EOF
			return 0, io.EOF
		}
		k := r.next
		b := make([]byte, r.sc.chunkLen(k))
		if _, err := r.f.ReadAt(b, int64(k)*int64(r.sc.ChunkSize)); err != nil {
			r.err = &SnapshotError{ID: r.sc.Meta.ID, Chunk: k, Reason: "read: " + err.Error()}
			r.onBad(k)
			return 0, r.err
		}
		if crc(b) != r.sc.ChunkCRCs[k] {
			r.err = &SnapshotError{ID: r.sc.Meta.ID, Chunk: k, Reason: "chunk checksum mismatch"}
			r.onBad(k)
			return 0, r.err
		}
		r.sha.Write(b)
		r.buf = b
		r.next++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *chunkReader) Close() error { return r.f.Close() }

// snapSum computes a sidecar's checksums over a byte stream.
type snapSum struct {
	crc64  hash.Hash64
	sha    hash.Hash
	chunk  hash.Hash32
	inChnk int
	crcs   []uint32
	size   int64
}

func newSnapSum() *snapSum {
	return &snapSum{crc64: crc64.New(crc64.MakeTable(crc64.ECMA)), sha: sha256.New(), chunk: crc32.New(castagnoli)}
}

func (s *snapSum) Write(p []byte) (int, error) {
	n := len(p)
	s.crc64.Write(p)
	s.sha.Write(p)
	s.size += int64(n)
	for len(p) > 0 {
		k := min(len(p), SnapshotChunkSize-s.inChnk)
		s.chunk.Write(p[:k])
		s.inChnk += k
		p = p[k:]
		if s.inChnk == SnapshotChunkSize {
			s.crcs = append(s.crcs, s.chunk.Sum32())
			s.chunk.Reset()
			s.inChnk = 0
		}
	}
	return n, nil
}

func (s *snapSum) sidecar(m fileMeta) *sidecar {
	crcs := s.crcs
	if s.inChnk > 0 {
		crcs = append(crcs, s.chunk.Sum32())
	}
	m.Size = s.size
	return &sidecar{Meta: m, SHA256: s.sha.Sum(nil), ChunkSize: SnapshotChunkSize, ChunkCRCs: crcs}
}

// Create starts a snapshot; its sink computes the sidecar while raft
// writes and stores it after raft's own Close succeeded.
func (st *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	if trans == nil {
		// FileSnapshotStore encodes legacy peers through the transport;
		// par's own installs have none. NetworkTransport and the in-memory
		// one both encode a peer as its address.
		_, trans = raft.NewInmemTransport("")
	}
	inner, err := st.inner.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &snapSink{SnapshotSink: inner, st: st, sum: newSnapSum()}, nil
}

// snapSink wraps raft's file sink.
type snapSink struct {
	raft.SnapshotSink
	st     *SnapshotStore
	sum    *snapSum
	closed bool
}

func (s *snapSink) Write(p []byte) (int, error) {
	n, err := s.SnapshotSink.Write(p)
	s.sum.Write(p[:n])
	return n, err
}

// Close finishes raft's snapshot (fsync, rename), then writes the sidecar
// in two copies and reaps beyond Retain. A crash in between leaves a
// snapshot without sidecar, which start-up adopts after checking raft's
// CRC64.
func (s *snapSink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	return s.st.finish(s.ID(), s.sum)
}

func (st *SnapshotStore) finish(id string, sum *snapSum) error {
	raw, err := os.ReadFile(filepath.Join(st.snapDir(id), snapMetaFile))
	if err != nil {
		return fmt.Errorf("snapshot %s: read back meta: %w", id, err)
	}
	var m fileMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("snapshot %s: read back meta: %w", id, err)
	}
	sc := sum.sidecar(m)
	if m.Size != sc.Meta.Size || !bytes.Equal(m.CRC, sum.crc64.Sum(nil)) {
		return &SnapshotError{ID: id, Chunk: -1, Reason: "raft's meta disagrees with the bytes written"}
	}
	if err := st.writeSidecar(sc); err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.verified[id] = sc
	return st.reap()
}

func (st *SnapshotStore) writeSidecar(sc *sidecar) error {
	if err := st.writeSidecarCopy(sc, "a"); err != nil {
		return err
	}
	return st.writeSidecarCopy(sc, "b")
}

func (st *SnapshotStore) writeSidecarCopy(sc *sidecar, copy string) error {
	b, err := encodeSidecar(sc)
	if err != nil {
		return err
	}
	if err := st.writeAtomic(st.sidecarPath(sc.Meta.ID, copy), b); err != nil {
		return fmt.Errorf("write snapshot sidecar: %w", err)
	}
	return nil
}

// writeAtomic writes path through a synced temporary file and a rename.
func (st *SnapshotStore) writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && !st.cfg.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	st.syncDir(filepath.Dir(path))
	return nil
}

func (st *SnapshotStore) syncDir(dir string) {
	if st.cfg.NoSync {
		return
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
