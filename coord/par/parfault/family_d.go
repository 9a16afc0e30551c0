package parfault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/coord"
	"coord/coord/par"
	"coord/proto/coordpb"
)

// Family D (design §5.4, the paper's Table 5(a)): snapshots. Every node is
// in one of three states, l (log only, no snapshot), t (snapshot, log not
// compacted) or g (snapshot, log compacted up to it), all 27 combinations
// over 3 nodes, and each node gets one fault: a state.bin chunk, meta.json
// (parse-breaking or a parse-preserving edit of Index, Term, Size or
// Configuration), one or both sidecar copies, or the log entry at the
// snapshot index (the entry the snapshot ends with). 27 × 8³ = 13,824
// cases; a run samples them with a seed.

// Node states of family D.
const (
	DStateL = iota // log only
	DStateT        // snapshot, log not compacted
	DStateG        // snapshot, log compacted up to it
	dStates
)

// Faults of family D (one per node).
const (
	DFaultNone        = iota
	DFaultChunk       // one byte flipped in a random 64 KiB chunk of state.bin
	DFaultMetaBreak   // meta.json cut in half (no longer parses)
	DFaultMetaEdit    // meta.json still parses, Index/Term/Size/Configuration changed
	DFaultSidecarA    // sidecar copy a damaged
	DFaultSidecarB    // sidecar copy b damaged
	DFaultSidecarBoth // both sidecar copies damaged
	DFaultEntry       // the log entry at the snapshot index damaged in raft.db
	dFaults
)

var dStateNames = [...]string{"l", "t", "g"}
var dFaultNames = [...]string{"none", "chunk", "meta-break", "meta-edit", "sidecar-a", "sidecar-b", "sidecar-both", "entry"}

// DCase is one family D case.
type DCase struct {
	ID    int
	State [Nodes]int
	Fault [Nodes]int
}

func (c DCase) String() string {
	s := fmt.Sprintf("D/%d", c.ID)
	for n := range Nodes {
		s += fmt.Sprintf(" %s:%s", dStateNames[c.State[n]], dFaultNames[c.Fault[n]])
	}
	return s
}

// effective is the fault that actually lands: a node in state l has no
// snapshot files; in state g the entry at the snapshot index is compacted.
func (c DCase) effective(n int) int {
	f := c.Fault[n]
	switch {
	case c.State[n] == DStateL && f != DFaultEntry:
		return DFaultNone
	case c.State[n] == DStateG && f == DFaultEntry:
		return DFaultNone
	}
	return f
}

// DCases returns the reproducible family D list (count <= 0: all 13,824).
func DCases(seed uint64, count int) []DCase {
	var all []DCase
	id := 0
	for s := 0; s < dStates*dStates*dStates; s++ {
		for f := 0; f < dFaults*dFaults*dFaults; f++ {
			all = append(all, DCase{ID: id,
				State: [Nodes]int{s / 9, s / 3 % 3, s % 3},
				Fault: [Nodes]int{f / 64, f / 8 % 8, f % 8}})
			id++
		}
	}
	if count <= 0 || count >= len(all) {
		return all
	}
	r := mrand.New(mrand.NewPCG(seed, 0xd1ce))
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:count]
}

// DCaseByID returns case id of the full list.
func DCaseByID(id int) (DCase, bool) {
	all := DCases(0, 0)
	if id < 0 || id >= len(all) {
		return DCase{}, false
	}
	return all[id], true
}

// Recoverable is the oracle (CTRL's sense: the data exists somewhere
// intact). A node has a complete state when its own files give every
// committed entry (a usable snapshot plus the log after it, or the whole
// log); a node without one can get it from any peer that has one (entries
// or a snapshot). Recoverable when at least a majority ends complete.
func (c DCase) Recoverable() bool {
	var has [Nodes]bool
	for n := range Nodes {
		f := c.effective(n)
		switch c.State[n] {
		case DStateL:
			has[n] = f != DFaultEntry
		case DStateT:
			has[n] = true // a bad snapshot falls back to the whole log; a bad entry is in the snapshot
		case DStateG:
			has[n] = f != DFaultChunk && f != DFaultSidecarBoth
		}
	}
	for changed := true; changed; {
		changed = false
		for n := range Nodes {
			for m := range Nodes {
				if !has[n] && has[m] {
					has[n], changed = true, true
				}
			}
		}
	}
	k := 0
	for _, h := range has {
		if h {
			k++
		}
	}
	return k >= Nodes/2+1
}

// GapNeedsEntries reports a recoverable case that snapshot repair alone
// cannot make available: a node in state g without a usable snapshot
// whose only complete peers are in state l closes its gap only with log
// entries from them (par's gap fill from a peer's log, gapfill.go; before
// it these 108 cases were Unavailable). Log-only peers snapshot on request
// (RequestSnapshot) only once their raft runs, which needs a quorum
// without the g node.
func (c DCase) GapNeedsEntries() bool {
	if !c.Recoverable() {
		return false
	}
	var usable [Nodes]bool
	anyUsable := false
	for n := range Nodes {
		f := c.effective(n)
		usable[n] = c.State[n] != DStateL && f != DFaultChunk && f != DFaultSidecarBoth
		anyUsable = anyUsable || usable[n]
	}
	starts := 0
	for n := range Nodes {
		ok := true
		switch c.State[n] {
		case DStateG:
			ok = usable[n] || anyUsable
		case DStateL:
			if c.effective(n) == DFaultEntry {
				ok = false
				for m := range Nodes {
					if m == n {
						continue
					}
					switch c.State[m] {
					case DStateL:
						ok = ok || c.effective(m) != DFaultEntry
					case DStateT:
						ok = true
					case DStateG:
						ok = ok || anyUsable
					}
				}
			}
		}
		if ok {
			starts++
		}
	}
	return starts < Nodes/2+1
}

// DResult is one family D outcome.
type DResult struct {
	Case        DCase
	Outcome     Outcome
	Recoverable bool
	Detail      string
	Took        time.Duration
	// Summed over the running nodes.
	EntryRepairs                              int64
	GapFilled                                 int64 // entries fetched from a peer's log to close a gap
	ChunkRepairs, WholeRepairs, MetaRepaired  int64
	Quarantined, SnapshotBytes, ChunksFetched int64
}

// DHarness builds the family D base state once: a 3-node cluster writes
// big values (a multi-chunk snapshot), every node snapshots at the same
// index (byte-identical state.bin, so chunk repair has identical peers),
// then a few more writes follow the snapshot; the stop is clean. Every
// node is in state t; a case derives l and g offline.
type DHarness struct {
	h         *Harness
	snapIndex uint64
	entryVal  []byte // the value written by the entry at snapIndex
}

// dBigValue is the size of the values before the snapshot (6 of them: a
// state.bin of about 5 chunks).
const (
	dBigValue  = 48 << 10
	dBigWrites = 6
	dPostSnap  = 2
)

// NewD builds the base state. A build that fails (a leadership change on
// a loaded machine, nodes snapshotting at different indexes) is retried
// from scratch, up to three times.
func NewD(ctx context.Context, opt Options) (*DHarness, error) {
	var errs []error
	for try := 0; try < 3; try++ {
		d, err := newD(ctx, opt, try)
		if err == nil {
			return d, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func newD(ctx context.Context, opt Options, try int) (*DHarness, error) {
	if opt.Avail == 0 {
		opt.Avail = 6 * time.Second
	}
	if opt.RecoverTimeout == 0 {
		opt.RecoverTimeout = 1500 * time.Millisecond
	}
	h := &Harness{opt: opt, base: filepath.Join(opt.Dir, fmt.Sprint("base-d", try))}
	var lns []net.Listener
	for i := 0; i < Nodes; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeListeners(lns)
			return nil, err
		}
		lns = append(lns, ln)
		h.addrs = append(h.addrs, ln.Addr().String())
		h.names = append(h.names, fmt.Sprintf("n%d", i+1))
	}
	for e := 0; e < dBigWrites+dPostSnap; e++ {
		var r [8]byte
		_, _ = rand.Read(r[:])
		v := []byte(fmt.Sprintf("PARMARK-%d-%x-PARMARK", e, r))
		if e < dBigWrites {
			fill := make([]byte, dBigValue)
			_, _ = rand.Read(fill)
			v = append(v, fill...)
		}
		h.keys = append(h.keys, fmt.Sprintf("/d%d", e))
		h.values = append(h.values, v)
	}
	srvs, err := h.start(h.base, lns)
	defer closeAll(srvs)
	if err != nil {
		return nil, fmt.Errorf("build D base: %w", err)
	}
	write := func(from, to int) (uint64, error) {
		var last uint64
		for e := from; e < to; e++ {
			at, err := h.createAcked(ctx, srvs, h.keys[e], h.values[e])
			if err != nil {
				return 0, fmt.Errorf("build D base: create %s: %w", h.keys[e], err)
			}
			last = max(last, at)
		}
		for _, s := range srvs {
			if err := s.Replica().WaitApplied(ctx, last); err != nil {
				return 0, fmt.Errorf("build D base: %w", err)
			}
		}
		return last, nil
	}
	if _, err := write(0, dBigWrites); err != nil {
		return nil, err
	}
	// Every node snapshots at the same applied index (identical bytes).
	var snapIndex uint64
	for _, s := range srvs {
		if err := s.Replica().TakeSnapshot(); err != nil {
			return nil, fmt.Errorf("build D base: snapshot: %w", err)
		}
		got := s.Replica().LastSnapshotIndex()
		if snapIndex != 0 && got != snapIndex {
			return nil, fmt.Errorf("build D base: %s snapshotted at %d, another node at %d", s.Replica().Info().Name, got, snapIndex)
		}
		snapIndex = got
	}
	if _, err := write(dBigWrites, dBigWrites+dPostSnap); err != nil {
		return nil, err
	}
	return &DHarness{h: h, snapIndex: snapIndex, entryVal: h.values[dBigWrites-1]}, nil
}

func closeListeners(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// createAcked creates path on the current leader, retrying across
// leadership changes until ctx ends, and returns the index that created
// it (read back, so a retried create that had committed counts).
func (h *Harness) createAcked(ctx context.Context, srvs []*coord.Server, path string, data []byte) (uint64, error) {
	for {
		cc, err := h.dialLeader(ctx, srvs)
		if err != nil {
			return 0, err
		}
		cl := coordpb.NewCoordClient(cc)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = cl.Create(cctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: path, Data: data}})
		if err == nil || status.Code(err) == codes.AlreadyExists {
			var g *coordpb.GetResponse
			if g, err = cl.Get(cctx, &coordpb.GetRequest{Path: path}); err == nil && bytes.Equal(g.GetData(), data) {
				cancel()
				cc.Close()
				return g.GetStat().GetCzxid(), nil
			}
		}
		cancel()
		cc.Close()
		if ctx.Err() != nil {
			return 0, fmt.Errorf("create %s: %w", path, errors.Join(err, ctx.Err()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SnapIndex is the index every base snapshot holds.
func (d *DHarness) SnapIndex() uint64 { return d.snapIndex }

// snapshotDir returns the node's one snapshot directory ("" if none).
func snapshotDir(nd string) string {
	ents, _ := os.ReadDir(filepath.Join(nd, par.SnapshotsDir))
	for _, e := range ents {
		if e.IsDir() {
			return filepath.Join(nd, par.SnapshotsDir, e.Name())
		}
	}
	return ""
}

// inject puts node nd into state and applies its fault; r draws the
// chunk and the edited field.
func (d *DHarness) inject(nd string, c DCase, n int, r *mrand.Rand) error {
	sd := snapshotDir(nd)
	if sd == "" {
		return fmt.Errorf("base node %s has no snapshot", nd)
	}
	id := filepath.Base(sd)
	switch c.State[n] {
	case DStateL:
		if err := errors.Join(os.RemoveAll(filepath.Join(nd, par.SnapshotsDir)), os.RemoveAll(filepath.Join(nd, par.SnapMetaDir))); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(nd, par.SnapshotsDir), 0o700); err != nil {
			return err
		}
	case DStateG:
		if err := d.compact(nd); err != nil {
			return fmt.Errorf("compact %s: %w", nd, err)
		}
	}
	side := func(cp string) string { return filepath.Join(nd, par.SnapMetaDir, id+"."+cp) }
	switch c.effective(n) {
	case DFaultChunk:
		st := filepath.Join(sd, "state.bin")
		fi, err := os.Stat(st)
		if err != nil {
			return err
		}
		chunks := (fi.Size() + par.SnapshotChunkSize - 1) / par.SnapshotChunkSize
		k := r.Int64N(chunks)
		off := k*par.SnapshotChunkSize + r.Int64N(min(par.SnapshotChunkSize, fi.Size()-k*par.SnapshotChunkSize))
		return flipByte(st, off)
	case DFaultMetaBreak:
		p := filepath.Join(sd, "meta.json")
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(p, b[:len(b)/2], 0o600)
	case DFaultMetaEdit:
		return editMeta(filepath.Join(sd, "meta.json"), r.IntN(4))
	case DFaultSidecarA, DFaultSidecarB, DFaultSidecarBoth:
		f := c.effective(n)
		for cp, hit := range map[string]bool{"a": f != DFaultSidecarB, "b": f != DFaultSidecarA} {
			if !hit {
				continue
			}
			if _, err := os.Stat(side(cp)); errors.Is(err, os.ErrNotExist) {
				continue // plain storage has no sidecars
			}
			if err := flipByte(side(cp), 3+r.Int64N(40)); err != nil {
				return err
			}
		}
	case DFaultEntry:
		k, err := flipEvery(filepath.Join(nd, par.BoltFile), d.entryVal[:40])
		if err != nil {
			return err
		}
		if k == 0 {
			return fmt.Errorf("entry %d not found in %s", d.snapIndex, nd)
		}
	}
	return nil
}

// compact deletes the log up to the snapshot index offline, as raft's
// compaction does (through par's LogStore, so its journal records it).
func (d *DHarness) compact(nd string) error {
	if d.h.opt.Plain {
		b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(nd, par.BoltFile)})
		if err != nil {
			return err
		}
		first, err := b.FirstIndex()
		if err == nil {
			err = b.DeleteRange(first, d.snapIndex)
		}
		return errors.Join(err, b.Close())
	}
	st, err := par.Open(par.Config{Dir: nd, Name: filepath.Base(nd), NoSync: true})
	if err != nil {
		return err
	}
	first, _ := st.Log.FirstIndex()
	err = st.Log.DeleteRange(first, d.snapIndex)
	return errors.Join(err, st.Close())
}

func flipByte(path string, off int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0x20
	_, err = f.WriteAt(b, off)
	return err
}

// editMeta changes one field of meta.json and keeps it parseable: 0 Index
// (+1), 1 Term (+1), 2 Size (halved), 3 Configuration (last server dropped).
func editMeta(path string, field int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	switch field {
	case 0:
		m["Index"] = m["Index"].(float64) + 1
	case 1:
		m["Term"] = m["Term"].(float64) + 1
	case 2:
		m["Size"] = float64(int64(m["Size"].(float64)) / 2)
	case 3:
		cfg := m["Configuration"].(map[string]any)
		srv := cfg["Servers"].([]any)
		cfg["Servers"] = srv[:len(srv)-1]
	}
	out, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

// RunD executes one family D case.
func (d *DHarness) RunD(ctx context.Context, c DCase) DResult {
	h := d.h
	start := time.Now()
	res := DResult{Case: c, Recoverable: c.Recoverable()}
	dir := filepath.Join(h.opt.Dir, fmt.Sprintf("case-D-%d", c.ID))
	defer os.RemoveAll(dir)
	if err := copyDir(h.base, dir); err != nil {
		res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
		return res
	}
	r := mrand.New(mrand.NewPCG(uint64(c.ID), 0xd))
	for n := range Nodes {
		if err := d.inject(filepath.Join(dir, h.names[n]), c, n, r); err != nil {
			res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
			return res
		}
	}
	srvs, startErr := h.start(dir, nil)
	defer closeAll(srvs)
	res.Outcome, res.Detail = d.probe(ctx, srvs)
	for _, s := range srvs {
		if s == nil || s.PAR() == nil {
			continue
		}
		res.EntryRepairs += s.PAR().Log.Stats().Repairs
		res.GapFilled += s.PAR().Log.Stats().GapFilled
		if ss := s.PAR().Snapshots(); ss != nil {
			st := ss.Stats()
			res.ChunkRepairs += st.ChunkRepairs
			res.WholeRepairs += st.WholeRepairs
			res.MetaRepaired += st.MetaRepaired
			res.Quarantined += st.Quarantined
			res.SnapshotBytes += st.FetchedBytes
			res.ChunksFetched += st.ChunksFetched
		}
	}
	if startErr != nil && res.Detail == "" {
		res.Detail = startErr.Error()
	}
	res.Took = time.Since(start)
	return res
}

// probe is the family D classification. Stricter than the other
// families' probe: a node that applied the probe write must hold every
// acked key (a snapshot whose meta lies about its index can make a node
// skip entries, which shows up only as missing keys).
func (d *DHarness) probe(ctx context.Context, srvs []*coord.Server) (Outcome, string) {
	h := d.h
	ctx, cancel := context.WithTimeout(ctx, h.opt.Avail)
	defer cancel()
	running := 0
	for _, s := range srvs {
		if s != nil {
			running++
		}
	}
	var probeAt uint64
	detail := ""
	if running < Nodes/2+1 {
		detail = fmt.Sprintf("only %d of %d nodes started", running, Nodes)
	} else if cc, err := h.dialLeader(ctx, srvs); err == nil {
		cl := coordpb.NewCoordClient(cc)
		for ctx.Err() == nil {
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			r, err := cl.Create(cctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/probe", Data: []byte("p")}})
			ccancel()
			if status.Code(err) == codes.AlreadyExists {
				// An earlier attempt timed out on our side but committed:
				// its index (read back) is what nodes must have applied.
				// Never guess it: a too-low index would call a node that is
				// still catching up "lost".
				g, gerr := cl.Get(ctx, &coordpb.GetRequest{Path: "/probe"})
				if gerr == nil && g.GetStat().GetCzxid() > 0 {
					probeAt = g.GetStat().GetCzxid()
					break
				}
				detail = fmt.Sprintf("probe committed but not read back: %v", gerr)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if err == nil {
				probeAt = r.Header.GetZxid()
				break
			}
			detail = err.Error()
			time.Sleep(50 * time.Millisecond)
		}
		cc.Close()
	} else {
		detail = err.Error()
	}
	var wg sync.WaitGroup
	applied := make([]bool, len(srvs))
	for i, s := range srvs {
		if s == nil || probeAt == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
			defer wcancel()
			applied[i] = s.Replica().WaitApplied(wctx, probeAt) == nil
		}()
	}
	wg.Wait()
	for i, s := range srvs {
		if s == nil {
			continue
		}
		t, _ := s.Replica().State()
		for e, k := range h.keys {
			v, _, err := t.Get(k)
			if err != nil {
				if applied[i] {
					return Unsafe, fmt.Sprintf("%s applied the probe but lost acked %s", h.names[i], k)
				}
				continue
			}
			if !bytes.Equal(v, h.values[e]) {
				return Unsafe, fmt.Sprintf("%s serves a wrong value for %s", h.names[i], k)
			}
		}
	}
	if probeAt == 0 {
		return Unavailable, detail
	}
	return Correct, ""
}

// RunParallelD spreads cases over several D harnesses; results come back
// in case order.
func RunParallelD(ctx context.Context, ds []*DHarness, cases []DCase) (Tally, []DResult) {
	out := spread(ctx, ds, cases, (*DHarness).RunD)
	var t Tally
	for _, r := range out {
		t.Add(Result{Outcome: r.Outcome, Recoverable: r.Recoverable})
	}
	return t, out
}
