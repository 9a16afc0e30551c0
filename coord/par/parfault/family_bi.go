package parfault

import (
	"bytes"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"go.etcd.io/bbolt"

	"coord/coord"
	"coord/coord/par"
)

// Families B and I (design §5.4).
//
// B: random blocks on a random set of 1-3 nodes: a random 4 KiB block of
// raft.db overwritten with random bytes, a random written 512-byte sector
// of par-ids.log overwritten (corrupt), or that sector made unreadable
// (EIO, through par.ReadFault). Case i's damage is drawn from a PRNG
// seeded by i, so --case i reproduces it.
//
// I: bbolt structural pages, per node one of: meta page 0, meta page 1,
// both meta pages, the freelist page, the root bucket's root page (the
// tree: every bucket of raft-boltdb hangs off it).
//
// The oracle compares each damaged node offline with the undamaged base:
// a node holds entry i when its raft.db still opens, walks and yields the
// base's bytes for i; its identifier of i is damaged when the journal slot
// differs or is unreadable; a node with an entry and its identifier both
// damaged refuses to start (double fault). A case is recoverable when at
// least two nodes can start and every entry is held by one of them.

// Damage kinds.
const (
	DmgNone     = iota
	DmgBoltBlk  // B: random 4 KiB block of raft.db
	DmgIDSector // B: random written sector of par-ids.log, corrupt
	DmgIDEIO    // B: the same, unreadable (EIO)
	DmgMeta0    // I: bbolt meta page 0
	DmgMeta1    // I: bbolt meta page 1
	DmgMetaBoth // I: both meta pages
	DmgFreelist // I: the freelist page
	DmgRoot     // I: the root bucket's root page
)

var dmgNames = [...]string{"-", "bolt4k", "idsec", "ideio", "meta0", "meta1", "meta01", "freelist", "root"}

// Damage is one node's injected fault; Pos picks the block or sector.
type Damage struct {
	Kind int
	Pos  uint64
}

func (d Damage) String() string { return dmgNames[d.Kind] }

// bCase is B case id's damage: 1-3 nodes, each one of the B kinds.
func bCase(id int) Case {
	r := rand.New(rand.NewPCG(uint64(id), 0xB10C))
	c := Case{Family: "B", ID: id}
	n := 1 + r.IntN(Nodes)
	for _, node := range r.Perm(Nodes)[:n] {
		c.Dmg[node] = Damage{Kind: DmgBoltBlk + r.IntN(3), Pos: r.Uint64()}
	}
	return c
}

// bCount is the size of family B (design: 2 x 5000, the two fault kinds
// are mixed per case here).
const bCount = 10000

func iCases() []Case {
	kinds := []int{DmgNone, DmgMeta0, DmgMeta1, DmgMetaBoth, DmgFreelist, DmgRoot}
	var all []Case
	for _, a := range kinds {
		for _, b := range kinds {
			for _, c := range kinds {
				all = append(all, Case{Family: "I", ID: len(all), Dmg: [Nodes]Damage{{Kind: a}, {Kind: b}, {Kind: c}}})
			}
		}
	}
	return all
}

// injectDamage applies d to node dir nd and returns the EIO fault to give
// the node (nil: none).
func injectDamage(nd string, d Damage) (par.ReadFault, error) {
	bolt, ids := filepath.Join(nd, par.BoltFile), filepath.Join(nd, par.JournalFile)
	switch d.Kind {
	case DmgBoltBlk:
		fi, err := os.Stat(bolt)
		if err != nil {
			return nil, err
		}
		blocks := uint64(fi.Size() / 4096)
		return nil, randomize(bolt, int64(d.Pos%blocks)*4096, 4096)
	case DmgIDSector, DmgIDEIO:
		if _, err := os.Stat(ids); err != nil {
			return nil, nil // plain storage: no journal
		}
		n, err := writtenSectors(ids)
		if err != nil {
			return nil, err
		}
		sec := int64(d.Pos % uint64(n))
		if d.Kind == DmgIDEIO {
			return par.EIOSectors(par.JournalFile, sec), nil
		}
		return nil, randomize(ids, sec*512, 512)
	case DmgMeta0, DmgMeta1, DmgMetaBoth:
		ps := int64(os.Getpagesize())
		var err error
		if d.Kind != DmgMeta1 {
			err = randomize(bolt, 16, 64)
		}
		if d.Kind != DmgMeta0 && err == nil {
			err = randomize(bolt, ps+16, 64)
		}
		return nil, err
	case DmgFreelist, DmgRoot:
		root, free, ps, err := boltPages(bolt)
		if err != nil {
			return nil, err
		}
		pg := root
		if d.Kind == DmgFreelist {
			pg = free
		}
		// The page header (id, flags, count) and the first elements.
		return nil, randomize(bolt, int64(pg)*ps, 64)
	}
	return nil, nil
}

func randomize(path string, off int64, n int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	b := make([]byte, n)
	_, _ = crand.Read(b)
	_, err = f.WriteAt(b, off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writtenSectors counts the journal's sectors up to its last non-zero byte.
func writtenSectors(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	end := len(bytes.TrimRight(b, "\x00"))
	if end == 0 {
		return 0, fmt.Errorf("%s is empty", path)
	}
	return (end + 511) / 512, nil
}

// boltPages reads the newer valid meta page: the root bucket's root page
// id and the freelist page id.
func boltPages(path string) (root, free uint64, pageSize int64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, err
	}
	ps := int64(os.Getpagesize())
	var bestTx uint64
	found := false
	for _, off := range []int64{0, ps} {
		if int64(len(b)) < off+16+64 {
			continue
		}
		m := b[off+16:]
		if binary.LittleEndian.Uint32(m) != 0xED0CDAED {
			continue
		}
		tx := binary.LittleEndian.Uint64(m[48:])
		if !found || tx > bestTx {
			bestTx, found = tx, true
			root, free = binary.LittleEndian.Uint64(m[16:]), binary.LittleEndian.Uint64(m[32:])
			pageSize = int64(binary.LittleEndian.Uint32(m[8:]))
		}
	}
	if !found {
		return 0, 0, 0, fmt.Errorf("%s: no meta page", path)
	}
	return root, free, pageSize, nil
}

// nodeView is what the oracle reads from one node's files offline.
type nodeView struct {
	entries map[uint64][]byte // raw bolt values of bucket "logs"; nil: the file does not open or walk
	slots   [][]byte          // the journal's 64-byte slots
}

func readNode(nd string, fault par.ReadFault) nodeView {
	var v nodeView
	v.entries = walkBolt(filepath.Join(nd, par.BoltFile))
	b, _ := os.ReadFile(filepath.Join(nd, par.JournalFile))
	for off := 0; off+64 <= len(b); off += 64 {
		s := b[off : off+64]
		if fault != nil && fault(par.JournalFile, int64(off), 64) != nil {
			s = nil // unreadable
		}
		v.slots = append(v.slots, s)
	}
	return v
}

// walkBolt reads the logs bucket of a copy of path, guarded
// against bbolt panics and mmap faults; nil when it fails.
func walkBolt(path string) (out map[uint64][]byte) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	// A read-write open of a scratch copy, as raft-boltdb opens it (that
	// also loads the freelist, which a read-only open skips).
	tmp, err := os.MkdirTemp("", "parfault-walk-")
	if err != nil {
		return nil
	}
	defer os.RemoveAll(tmp)
	cp := filepath.Join(tmp, "raft.db")
	if b, err := os.ReadFile(path); err != nil || os.WriteFile(cp, b, 0o600) != nil {
		return nil
	}
	db, err := bbolt.Open(cp, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return nil
	}
	defer db.Close()
	out = map[uint64][]byte{}
	err = db.View(func(tx *bbolt.Tx) error {
		bk := tx.Bucket([]byte("logs"))
		if bk == nil {
			return fmt.Errorf("no logs bucket")
		}
		return bk.ForEach(func(k, v []byte) error {
			if len(k) == 8 {
				out[binary.BigEndian.Uint64(k)] = append([]byte(nil), v...)
			}
			return nil
		})
	})
	if err != nil {
		return nil
	}
	return out
}

// slotIndex is the log index a journal slot's record names (0: none).
func slotIndex(s []byte) uint64 {
	if len(s) != 64 || s[0] != 1 && s[0] != 4 { // APPEND, ADOPT
		return 0
	}
	return binary.BigEndian.Uint64(s[10:])
}

// damageOracle decides B and I cases from the base and damaged node views.
func (h *Harness) damageOracle(dir string, c Case, faults [Nodes]par.ReadFault) bool {
	runs, holders := 0, map[uint64]int{}
	var all map[uint64][]byte
	for n := 0; n < Nodes; n++ {
		base := readNode(filepath.Join(h.base, h.names[n]), nil)
		got := readNode(filepath.Join(dir, h.names[n]), faults[n])
		if structural(filepath.Join(h.base, h.names[n]), c.Dmg[n]) {
			got.entries = nil // the file cannot be trusted: rebuilt from peers
		}
		if all == nil {
			all = base.entries
		}
		idBad := map[uint64]bool{}
		for k, s := range base.slots {
			if i := slotIndex(s); i != 0 && (k >= len(got.slots) || !bytes.Equal(got.slots[k], s)) {
				idBad[i] = true
			}
		}
		held := map[uint64]bool{}
		double := false
		for i, v := range base.entries {
			ok := got.entries != nil && bytes.Equal(got.entries[i], v)
			held[i] = ok
			if !ok && idBad[i] {
				double = true
			}
		}
		if double {
			continue
		}
		runs++
		for i, ok := range held {
			if ok {
				holders[i]++
			}
		}
	}
	if runs < Nodes/2+1 {
		return false
	}
	for i := range all {
		if holders[i] == 0 {
			return false
		}
	}
	return true
}

// runDamage runs one B or I case.
func (h *Harness) runDamage(ctxRun func(srvs []*coord.Server) (Outcome, string), dir string, c Case, res *Result) []*coord.Server {
	var faults [Nodes]par.ReadFault
	for n := 0; n < Nodes; n++ {
		f, err := injectDamage(filepath.Join(dir, h.names[n]), c.Dmg[n])
		if err != nil {
			res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
			return nil
		}
		faults[n] = f
	}
	res.Recoverable = h.damageOracle(dir, c, faults)
	srvs, startErr := h.start(dir, nil, func(i int, cfg *coord.Config) { cfg.PARReadFault = faults[i] })
	res.Outcome, res.Detail = ctxRun(srvs)
	if startErr != nil && res.Detail == "" {
		res.Detail = startErr.Error()
	}
	return srvs
}

// structural reports whether d hits a page bbolt needs to open the file
// at all (both metas, the freelist, the root page): ground truth by
// construction, not by opening the damaged file (a damaged freelist can
// make bbolt loop instead of failing).
func structural(baseNode string, d Damage) bool {
	switch d.Kind {
	case DmgMetaBoth, DmgFreelist, DmgRoot:
		return true
	case DmgBoltBlk:
		root, free, ps, err := boltPages(filepath.Join(baseNode, par.BoltFile))
		if err != nil {
			return true
		}
		fi, err := os.Stat(filepath.Join(baseNode, par.BoltFile))
		if err != nil {
			return true
		}
		blk := int64(d.Pos%uint64(fi.Size()/4096)) * 4096
		for _, pg := range []uint64{root, free} {
			if off := int64(pg) * ps; off >= blk && off < blk+4096 {
				return true
			}
		}
		return false
	}
	return false
}
