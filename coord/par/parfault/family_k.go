package parfault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"coord/coord"
	"coord/coord/par"
	"coord/proto/coordpb"
)

// Family K: EIO on raft.db (design §5.3 "read error"), through a FUSE
// loopback mount of the victim's data dir that fails reads of chosen
// byte ranges (eiofs.go). raft.db is read two ways: bbolt's mmap (a failed
// page-in is a SIGBUS, which par's guard turns into an error) and pread
// (par's start-up walk of the tree, where EIO is an error). Kinds:
//
//	KStartPage    the pages holding the acked values are unreadable when
//	              the node starts: the walk sees EIO, raft.db is
//	              quarantined and rebuilt from peers through the
//	              identifiers.
//	KStartFile    every read of raft.db fails (meta pages included).
//	KRunPage      the pages fail under the running node: the scrubber's
//	              read faults (SIGBUS caught), the entries are marked
//	              faulty, their repair fails because bbolt must read the
//	              same page to rewrite them; the cluster must stay correct
//	              and available, and the restarted node must rebuild.
//	KStartTwo     KStartPage on two nodes at once: both rebuild from the
//	              one intact node.
//
// Every case has an intact copy of everything, so every case must end
// Correct. Plain storage is not run: a SIGBUS outside a guard kills the
// in-process harness (as for family F).
const (
	KStartPage = iota
	KStartFile
	KRunPage
	KStartTwo
	kKinds
)

func kCases() []Case {
	var all []Case
	for kind := 0; kind < kKinds; kind++ {
		for v := 0; v < Nodes; v++ {
			all = append(all, Case{Family: "K", ID: kind*Nodes + v, Wipe: v, Recover: kind})
		}
	}
	return all
}

func kindName(k int) string {
	return [...]string{"start-page", "start-file", "run-page", "start-two"}[k]
}

// kVictims are the nodes whose raft.db gets EIO in c.
func kVictims(c Case) []int {
	if c.Recover == KStartTwo {
		return []int{c.Wipe, (c.Wipe + 1) % Nodes}
	}
	return []int{c.Wipe}
}

// armK makes the victim's raft.db unreadable as kind says.
func (h *Harness) armK(m *eioMount, back string, kind int) (int, error) {
	if kind == KStartFile {
		return 1, m.arm(par.BoltFile, 0, -1)
	}
	b, err := os.ReadFile(filepath.Join(back, par.BoltFile))
	if err != nil {
		return 0, err
	}
	pages := map[int64]bool{}
	for _, v := range h.values {
		for off := 0; ; {
			i := bytes.Index(b[off:], v)
			if i < 0 {
				break
			}
			pages[int64(off+i)/4096] = true
			off += i + len(v)
		}
	}
	if len(pages) == 0 {
		return 0, errors.New("no acked value found in raft.db")
	}
	for p := range pages {
		if err := m.arm(par.BoltFile, p*4096, 4096); err != nil {
			return 0, err
		}
	}
	return len(pages), nil
}

func (h *Harness) runK(ctx context.Context, c Case, dir string, res *Result) {
	res.Recoverable = true
	if err := EIOAvailable(); err != nil {
		res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
		return
	}
	mounts := map[int]*eioMount{}
	backs := map[int]string{}
	var srvs []*coord.Server
	defer func() {
		closeAll(srvs) // every file on the mounts closed first
		for v, m := range mounts {
			_ = m.close()
			// The files back where the harness looks (vote trace).
			nd := filepath.Join(dir, h.names[v])
			if os.Remove(nd) == nil {
				_ = os.Rename(backs[v], nd)
			}
		}
	}()
	for _, v := range kVictims(c) {
		nd := filepath.Join(dir, h.names[v])
		back := nd + ".back"
		if err := os.Rename(nd, back); err != nil {
			res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
			return
		}
		if err := os.Mkdir(nd, 0o700); err != nil {
			res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
			return
		}
		m, err := mountEIO(back, nd)
		if err != nil {
			res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
			return
		}
		mounts[v], backs[v] = m, back
		if c.Recover != KRunPage {
			if _, err := h.armK(m, back, c.Recover); err != nil {
				res.Outcome, res.Detail = Unavailable, "harness: arm: "+err.Error()
				return
			}
		}
	}
	var startErr error
	srvs, startErr = h.start(dir, nil)
	res.Outcome, res.Detail = h.probe(ctx, srvs)
	if startErr != nil && res.Detail == "" {
		res.Detail = startErr.Error()
	}
	if res.Outcome != Correct {
		return
	}
	v := c.Wipe
	running := ""
	if c.Recover == KRunPage {
		if _, err := h.armK(mounts[v], backs[v], KStartPage); err != nil {
			res.Outcome, res.Detail = Unavailable, "harness: arm: "+err.Error()
			return
		}
		// The scrubber reads every entry within a few hundred ms.
		deadline := time.Now().Add(h.opt.Avail)
		for srvs[v].PAR().Log.Stats().Faulty == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if srvs[v].PAR().Log.Stats().Faulty == 0 {
			res.Outcome, res.Detail = Unavailable, fmt.Sprintf("harness: the running node found no faulty entry (EIO reads %d)", mounts[v].hits())
			return
		}
		// The cluster carries on while the node's raft.db is unreadable.
		if res.Outcome, res.Detail = h.probe(ctx, srvs); res.Outcome != Correct {
			res.Detail = "with the fault under a running node: " + res.Detail
			return
		}
		st := srvs[v].PAR().Log.Stats()
		running = fmt.Sprintf("; while running: faulty %d, repaired %d, failed repairs %d, EIO reads %d", st.Faulty, st.Repairs, st.RepairFails, mounts[v].hits())
		// The process restarts (in production: processLogs' panic on an
		// entry it cannot read, or the operator).
		_ = srvs[v].Close()
		srvs[v] = nil
		s, err := h.startOne(dir, v)
		if err != nil {
			res.Outcome, res.Detail = Unavailable, fmt.Sprintf("%s did not restart: %v", h.names[v], err)
			return
		}
		srvs[v] = s
		if res.Outcome, res.Detail = h.probe(ctx, srvs); res.Outcome != Correct {
			return
		}
	}
	// Every victim rebuilt raft.db and holds every acked value again,
	// once it applied a write made after the rebuild.
	var barrier uint64
	if cc, err := h.dialLeader(ctx, srvs); err == nil {
		r, err := coordpb.NewCoordClient(cc).Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/k-barrier", Data: []byte("b")}})
		cc.Close()
		if err != nil {
			res.Outcome, res.Detail = Unavailable, "barrier write: "+err.Error()
			return
		}
		barrier = r.Header.GetZxid()
	}
	for _, v := range kVictims(c) {
		s := srvs[v]
		if s == nil || s.PAR() == nil {
			res.Outcome, res.Detail = Unavailable, h.names[v]+" is down"
			return
		}
		wctx, cancel := context.WithTimeout(ctx, h.opt.Avail)
		err := s.Replica().WaitApplied(wctx, barrier)
		cancel()
		if err != nil {
			res.Outcome, res.Detail = Unavailable, fmt.Sprintf("%s did not catch up to %d: %v", h.names[v], barrier, err)
			return
		}
		if !s.PAR().Report().BoltRebuilt {
			res.Outcome, res.Detail = Unavailable, fmt.Sprintf("%s did not quarantine its unreadable raft.db (EIO reads %d)", h.names[v], mounts[v].hits())
			return
		}
		res.Repairs += s.PAR().Log.Stats().Repairs
		res.RepairedBytes += s.PAR().Log.Stats().RepairedBytes
		t, _ := s.Replica().State()
		for e, k := range h.keys {
			got, _, err := t.Get(k)
			if err != nil {
				res.Outcome, res.Detail = Unavailable, fmt.Sprintf("%s lacks %s after the rebuild: %v", h.names[v], k, err)
				return
			}
			if !bytes.Equal(got, h.values[e]) {
				res.Outcome, res.Detail = Unsafe, fmt.Sprintf("%s serves a wrong value for %s", h.names[v], k)
				return
			}
		}
	}
	res.Detail = fmt.Sprintf("%s: raft.db quarantined and rebuilt on %v%s", kindName(c.Recover), kVictims(c), running)
}
