// Package parfault is the fault-injection harness behind cmd/coordfault and
// the fixed-seed sample in its tests (design par.md §5): it builds a 3-node
// cluster state once, then per case copies the data dirs, damages them
// offline, restarts the three in-process coord servers on real loopback
// TCP, probes, and classifies the outcome as Correct, Unavailable or Unsafe.
//
// Goroutines: Run starts one per node while the nodes start (they block in
// PAR pre-start recovery) and waits for all of them; every server a case
// starts is closed before Run returns.
package parfault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"coord/coord"
	"coord/coord/par"
	"coord/coord/replica"
	"coord/proto/coordpb"
)

// Nodes is the cluster size of every case.
const Nodes = 3

// Outcome of one case.
type Outcome int

const (
	Correct Outcome = iota
	Unavailable
	Unsafe
)

func (o Outcome) String() string { return [...]string{"correct", "unavailable", "unsafe"}[o] }

// Family A: targeted entry corruption. Mask[n] has bit e set when entry e
// is corrupted on node n. Family E: term/vote copies; Meta[n] is 0 (none),
// 1 (copy A), 2 (copy B) or 3 (both).
// Family F: file-system faults; FS[n] is one of the FS* kinds.
// Family G: crash states; Crash[n] is one of the Crash* kinds.
type Case struct {
	Family string
	ID     int
	Mask   [Nodes]uint
	Meta   [Nodes]int
	FS     [Nodes]int
	Crash  [Nodes]int
	// Family J: Wipe is the 1-based node whose whole data dir is removed;
	// Recover is how it starts again (JNaive, JRecoverFlag, JPrepare).
	Wipe    int
	Recover int
	// Families B and I: per-node damage.
	Dmg [Nodes]Damage
	// Family C: which scenario (cVarC12, cVarC3, cVarC4, cVarC4b).
	Variant int
}

// Family G kinds: the states a kill -9 can leave, built offline.
const (
	CrashNone      = iota
	CrashLostEntry // identifier durable, last bolt entry not (the concurrent-journal window)
	CrashLostID    // last bolt entry durable, its identifier not (zeroed record)
	CrashTornID    // last identifier record half written (garbage)
	crashKinds
)

// Family F kinds.
const (
	FSNone        = iota
	FSRemoveBolt  // raft.db deleted
	FSRemoveIDs   // par-ids.log deleted
	FSHalfBolt    // raft.db truncated to half its size
	FSRemoveBoth  // raft.db and par-ids.log deleted (a lost log)
	FSGarbageBolt // raft.db extended with 64 KiB of garbage
	fsKinds
)

func (c Case) String() string {
	if c.Family == "E" {
		return fmt.Sprintf("E/%d meta=%v", c.ID, c.Meta)
	}
	if c.Family == "F" {
		return fmt.Sprintf("F/%d fs=%v", c.ID, c.FS)
	}
	if c.Family == "G" {
		return fmt.Sprintf("G/%d crash=%v", c.ID, c.Crash)
	}
	if c.Family == "B" || c.Family == "I" {
		return fmt.Sprintf("%s/%d dmg=%v,%v,%v", c.Family, c.ID, c.Dmg[0], c.Dmg[1], c.Dmg[2])
	}
	if c.Family == "C" && c.Variant != cVarC12 {
		return fmt.Sprintf("C/%d %s", c.ID, cVariantName(c.Variant))
	}
	if c.Family == "C" {
		return fmt.Sprintf("C/%d uncommitted-tail holders=%d corrupt=%d", c.ID, 1+c.Crash[1], c.Crash[0]+c.Crash[2])
	}
	if c.Family == "H" {
		return fmt.Sprintf("H/%d leader-replication-read", c.ID)
	}
	if c.Family == "K" {
		return fmt.Sprintf("K/%d %s n%d", c.ID, kindName(c.Recover), c.Wipe+1)
	}
	if c.Family == "J" {
		mode := [...]string{"naive", "coordd--par-recover", "coordctl-par-recover"}[c.Recover]
		return fmt.Sprintf("J/%d wipe=n%d %s", c.ID, c.Wipe, mode)
	}
	return fmt.Sprintf("A/%d masks=%03b,%03b,%03b", c.ID, c.Mask[0], c.Mask[1], c.Mask[2])
}

// Result of one case.
type Result struct {
	Case        Case
	Outcome     Outcome
	Recoverable bool // the oracle: at least one intact copy of everything
	// ByDesign: the design expects this case to stay unavailable (the
	// conservative-mode stall of §4.4, family C4); an Unavailable outcome
	// is then counted apart from recoverable-but-unavailable.
	ByDesign bool
	Detail   string
	Took     time.Duration
	// Repairs and RepairedBytes sum the running nodes' PAR counters:
	// entries fetched from peers and the envelope bytes that moved.
	Repairs, RepairedBytes int64
}

// Options configure a Harness.
type Options struct {
	// Dir is a scratch directory (one subdir per case, removed after).
	Dir string
	// Plain runs the nodes on plain raft-boltdb (the "original" column).
	Plain bool
	// Entries is how many committed writes each case targets (default 4).
	Entries int
	// Avail bounds the probe; RecoverTimeout bounds PAR pre-start recovery.
	Avail, RecoverTimeout time.Duration
	// ScrubRate is coord.Config.PARScrubRate (negative: no scrubber).
	ScrubRate int
	// NoFollowUp skips the durability follow-up (design §5.1 step 7).
	NoFollowUp bool
}

// Harness holds the built base state.
type Harness struct {
	opt    Options
	base   string
	addrs  []string
	names  []string
	keys   []string
	values [][]byte
}

// New builds the base state: a fresh 3-node cluster, Entries acked writes
// with unique values, then a clean stop.
func New(ctx context.Context, opt Options) (*Harness, error) {
	if opt.Entries == 0 {
		opt.Entries = 4
	}
	if opt.Avail == 0 {
		opt.Avail = 5 * time.Second
	}
	if opt.RecoverTimeout == 0 {
		opt.RecoverTimeout = 1500 * time.Millisecond
	}
	h := &Harness{opt: opt, base: filepath.Join(opt.Dir, "base")}
	var lns []net.Listener
	for i := 0; i < Nodes; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		h.addrs = append(h.addrs, ln.Addr().String())
		h.names = append(h.names, fmt.Sprintf("n%d", i+1))
	}
	for e := 0; e < opt.Entries; e++ {
		var r [8]byte
		_, _ = rand.Read(r[:])
		h.keys = append(h.keys, fmt.Sprintf("/k%d", e))
		h.values = append(h.values, []byte(fmt.Sprintf("PARMARK-%d-%s-PARMARK", e, hex.EncodeToString(r[:]))))
	}
	srvs, err := h.start(h.base, lns)
	defer closeAll(srvs)
	if err != nil {
		return nil, fmt.Errorf("build base: %w", err)
	}
	cc, err := h.dialLeader(ctx, srvs)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	cl := coordpb.NewCoordClient(cc)
	var last uint64
	for e := range h.keys {
		r, err := cl.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: h.keys[e], Data: h.values[e]}})
		if err != nil {
			return nil, fmt.Errorf("build base: create %s: %w", h.keys[e], err)
		}
		last = r.Header.GetZxid()
	}
	// Every node must hold every write before the stop (the last write's
	// index: a lagging node's own LastIndex would not wait for it).
	for _, s := range srvs {
		if err := s.Replica().WaitApplied(ctx, last); err != nil {
			return nil, fmt.Errorf("build base: %w", err)
		}
	}
	return h, nil
}

func closeAll(srvs []*coord.Server) {
	for _, s := range srvs {
		if s != nil {
			_ = s.Close()
		}
	}
}

func (h *Harness) config(dir string, i int) coord.Config {
	cfg := coord.DefaultConfig()
	cfg.Name = h.names[i]
	cfg.DataDir = filepath.Join(dir, cfg.Name)
	cfg.HTTP = ""
	for k := range h.names {
		cfg.InitialCluster = append(cfg.InitialCluster, replica.Peer{Name: h.names[k], Address: h.addrs[k]})
	}
	cfg.HeartbeatTimeout = 150 * time.Millisecond
	cfg.ElectionTimeout = 150 * time.Millisecond
	cfg.LeaderLease = 100 * time.Millisecond
	cfg.PlainStorage = h.opt.Plain
	cfg.PARRecoverTimeout = h.opt.RecoverTimeout
	cfg.PARScrubRate = h.opt.ScrubRate
	return cfg
}

// start starts every node concurrently (nil listeners: bind the fixed
// addresses). Nodes that fail to start are nil in the result. mod, when
// set, adjusts node i's config.
func (h *Harness) start(dir string, lns []net.Listener, mod ...func(i int, cfg *coord.Config)) ([]*coord.Server, error) {
	srvs := make([]*coord.Server, Nodes)
	errs := make([]error, Nodes)
	var wg sync.WaitGroup
	for i := 0; i < Nodes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ln net.Listener
			if lns != nil {
				ln = lns[i]
			} else {
				var err error
				for try := 0; try < 50; try++ {
					if ln, err = net.Listen("tcp", h.addrs[i]); err == nil {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
			cfg := h.config(dir, i)
			for _, m := range mod {
				m(i, &cfg)
			}
			srvs[i], errs[i] = startRecovering(cfg, ln)
		}()
	}
	wg.Wait()
	return srvs, errors.Join(errs...)
}

// startRecovering starts one node, turning a panic in raft start-up (plain
// storage reading garbage) into an error: that node is down.
func startRecovering(cfg coord.Config, ln net.Listener) (s *coord.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			ln.Close()
			s, err = nil, fmt.Errorf("node %s panicked at start: %v", cfg.Name, r)
		}
	}()
	return coord.Start(cfg, ln)
}

func (h *Harness) dialLeader(ctx context.Context, srvs []*coord.Server) (*grpc.ClientConn, error) {
	deadline := time.Now().Add(h.opt.Avail)
	for time.Now().Before(deadline) {
		for _, s := range srvs {
			if s != nil && s.Replica().IsLeader() {
				return grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil, errors.New("no leader")
}

// Recoverable is the oracle for c.
func (h *Harness) Recoverable(c Case) bool {
	switch c.Family {
	case "B", "I":
		return false // decided from the damaged files (damageOracle)
	case "C":
		return cRecoverable(c) // family_ch.go
	case "H", "K":
		return true // every acked entry has intact copies
	case "J":
		return true // two intact nodes hold everything
	case "G":
		// The last entry is committed (acked by all); it survives if one
		// node still holds it.
		for _, k := range c.Crash {
			if k != CrashLostEntry {
				return true
			}
		}
		return false
	case "F":
		lost, intact := 0, 0
		for _, k := range c.FS {
			switch k {
			case FSRemoveBoth:
				lost++ // refuses to start (a lost log)
			case FSNone, FSRemoveIDs, FSGarbageBolt:
				intact++ // holds every entry
			}
		}
		return lost <= Nodes-(Nodes/2+1) && intact > 0
	case "E":
		both := 0
		for _, m := range c.Meta {
			if m == 3 {
				both++
			}
		}
		return both <= 1
	default:
		all := uint(1)<<h.opt.Entries - 1
		return c.Mask[0]&c.Mask[1]&c.Mask[2]&all == 0
	}
}

// Run executes one case.
func (h *Harness) Run(ctx context.Context, c Case) Result {
	start := time.Now()
	res := Result{Case: c, Recoverable: h.Recoverable(c), ByDesign: h.expectedStall(c)}
	dir := filepath.Join(h.opt.Dir, fmt.Sprintf("case-%s-%d", c.Family, c.ID))
	defer os.RemoveAll(dir)
	if err := copyDir(h.base, dir); err != nil {
		res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
		return res
	}
	switch c.Family {
	case "J", "C", "H", "K":
		map[string]func(context.Context, Case, string, *Result){"J": h.runJ, "C": h.runC, "H": h.runH, "K": h.runK}[c.Family](ctx, c, dir, &res)
		if dv := h.doubleVote(dir, nil); dv != "" && res.Outcome != Unsafe && c.Family != "J" {
			res.Outcome, res.Detail = Unsafe, "double vote: "+dv
		}
		res.Took = time.Since(start)
		return res
	}
	var srvs []*coord.Server
	if c.Family == "B" || c.Family == "I" {
		srvs = h.runDamage(func(srvs []*coord.Server) (Outcome, string) { return h.probe(ctx, srvs) }, dir, c, &res)
	} else {
		if err := h.inject(dir, c); err != nil {
			res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
			return res
		}
		var startErr error
		srvs, startErr = h.start(dir, nil)
		res.Outcome, res.Detail = h.probe(ctx, srvs)
		if startErr != nil && res.Detail == "" {
			res.Detail = startErr.Error()
		}
	}
	defer closeAll(srvs)
	for _, s := range srvs {
		if s != nil && s.PAR() != nil {
			st := s.PAR().Log.Stats()
			res.Repairs += st.Repairs
			res.RepairedBytes += st.RepairedBytes
		}
	}
	if res.Outcome == Correct && !h.opt.NoFollowUp {
		if v, ok := h.followUpVictim(c, srvs); ok {
			res.Outcome, res.Detail = h.followUp(ctx, srvs, v)
		}
	}
	if dv := h.doubleVote(dir, nil); dv != "" {
		res.Outcome, res.Detail = Unsafe, "double vote: "+dv
	}
	res.Took = time.Since(start)
	return res
}

// inject damages the copied dirs offline.
func (h *Harness) inject(dir string, c Case) error {
	for n := 0; n < Nodes; n++ {
		nd := filepath.Join(dir, h.names[n])
		if c.Family == "G" {
			if err := injectCrash(nd, c.Crash[n]); err != nil {
				return err
			}
			continue
		}
		if c.Family == "F" {
			if err := injectFS(nd, c.FS[n]); err != nil {
				return err
			}
			continue
		}
		if c.Family == "E" {
			for bit, f := range []string{par.MetaFileA, par.MetaFileB} {
				if c.Meta[n]&(1<<bit) != 0 {
					if _, err := flipEvery(filepath.Join(nd, f), []byte{0x50, 0x41, 0x52, 0x4d}); err != nil {
						return err
					}
				}
			}
			continue
		}
		for e := 0; e < h.opt.Entries; e++ {
			if c.Mask[n]&(1<<e) == 0 {
				continue
			}
			k, err := flipEvery(filepath.Join(nd, par.BoltFile), h.values[e])
			if err != nil {
				return err
			}
			if k == 0 {
				return fmt.Errorf("entry %d not found in %s", e, nd)
			}
		}
	}
	return nil
}

func injectCrash(nd string, kind int) error {
	ids := filepath.Join(nd, par.JournalFile)
	switch kind {
	case CrashLostEntry:
		b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(nd, par.BoltFile)})
		if err != nil {
			return err
		}
		last, err := b.LastIndex()
		if err == nil {
			err = b.DeleteRange(last, last)
		}
		return errors.Join(err, b.Close())
	case CrashLostID, CrashTornID:
		b, err := os.ReadFile(ids)
		if err != nil {
			return err
		}
		// The last written record: the journal is preallocated with zeros.
		last := -1
		for off := 0; off+64 <= len(b); off += 64 {
			if !bytes.Equal(b[off:off+64], make([]byte, 64)) {
				last = off
			}
		}
		if last < 0 {
			return fmt.Errorf("journal %s has no record", ids)
		}
		rec := b[last : last+64]
		if kind == CrashTornID {
			_, _ = rand.Read(rec[32:]) // the first half made it, the rest is garbage
		} else {
			clear(rec)
		}
		return os.WriteFile(ids, b, 0o600)
	}
	return nil
}

func injectFS(nd string, kind int) error {
	bolt, ids := filepath.Join(nd, par.BoltFile), filepath.Join(nd, par.JournalFile)
	switch kind {
	case FSRemoveBolt:
		return os.Remove(bolt)
	case FSRemoveIDs:
		return os.RemoveAll(ids)
	case FSRemoveBoth:
		return errors.Join(os.Remove(bolt), os.RemoveAll(ids))
	case FSHalfBolt:
		fi, err := os.Stat(bolt)
		if err != nil {
			return err
		}
		return os.Truncate(bolt, fi.Size()/2)
	case FSGarbageBolt:
		f, err := os.OpenFile(bolt, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		junk := make([]byte, 64<<10)
		_, _ = rand.Read(junk)
		_, err = f.Write(junk)
		return errors.Join(err, f.Close())
	}
	return nil
}

// flipEvery flips one bit inside every occurrence of marker in path (bbolt
// is copy-on-write, so stale page copies may hold it too). It writes only
// the flipped bytes in place: families H and the scrubber test damage the
// file under a running node, and rewriting it whole (truncate, then write)
// let bbolt's mmap read past the end of the empty file in between — a
// SIGBUS inside bbolt's beginTx, caught by par's guard with bbolt's meta
// lock still held, hung the node.
func flipEvery(path string, marker []byte) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for off := 0; ; {
		i := bytes.Index(b[off:], marker)
		if i < 0 {
			break
		}
		at := off + i + len(marker)/2
		if _, err := f.WriteAt([]byte{b[at] ^ 0x04}, int64(at)); err != nil {
			f.Close()
			return n, err
		}
		off += i + len(marker)
		n++
	}
	return n, f.Close()
}

// probe classifies: a leader, a committed probe write, and every acked
// value intact on every running node is Correct; any wrong value anywhere
// is Unsafe; otherwise Unavailable.
func (h *Harness) probe(ctx context.Context, srvs []*coord.Server) (Outcome, string) {
	ctx, cancel := context.WithTimeout(ctx, h.opt.Avail)
	defer cancel()
	available := false
	detail := ""
	running := 0
	for _, s := range srvs {
		if s != nil {
			running++
		}
	}
	if running < Nodes/2+1 {
		detail = fmt.Sprintf("only %d of %d nodes started", running, Nodes)
	} else if cc, err := h.dialLeader(ctx, srvs); err == nil {
		cl := coordpb.NewCoordClient(cc)
		for ctx.Err() == nil {
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			r, err := cl.Create(cctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/probe", Data: []byte("p")}})
			ccancel()
			if status.Code(err) == codes.AlreadyExists {
				// An earlier attempt timed out on our side but committed.
				available = true
				break
			}
			if err == nil {
				available = true
				for _, s := range srvs {
					if s != nil {
						_ = s.Replica().WaitApplied(ctx, r.Header.GetZxid())
					}
				}
				break
			}
			detail = err.Error()
			time.Sleep(50 * time.Millisecond)
		}
		cc.Close()
	} else {
		detail = err.Error()
	}
	// Safety: every running node that applied the writes must hold the
	// acked values (a node that did not catch up is not wrong, only late).
	for i, s := range srvs {
		if s == nil {
			continue
		}
		t, _ := s.Replica().State()
		for e, k := range h.keys {
			v, _, err := t.Get(k)
			if err != nil {
				continue
			}
			if !bytes.Equal(v, h.values[e]) {
				return Unsafe, fmt.Sprintf("%s serves a wrong value for %s", h.names[i], k)
			}
		}
	}
	if !available {
		return Unavailable, detail
	}
	return Correct, ""
}

func copyDir(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(t, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(t, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// Popcount helps callers describe masks.
func Popcount(m uint) int { return bits.OnesCount(m) }
