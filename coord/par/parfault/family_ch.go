package parfault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/grpc"

	"coord/coord"
	"coord/coord/par"
	"coord/proto/coordpb"
)

// Families C and H (design §5.4), built online on the running cluster.
//
// C1: after a barrier write every node applied, the leader appends an
// entry its followers never receive (both are stopped; retried when the
// leader lost its lease first: oldLeaderTail), so it is uncommitted and never acknowledged to a client; then
// every node stops and the entry is corrupted on the leader's disk. PAR
// must discard it by rule 4 once the other two moved to a newer term
// (never keep, never serve it) and the cluster must stay correct.
// C1b: the same uncommitted tail left intact: it may be kept or dropped,
// but nothing acknowledged may be lost.
//
// H: a runtime latent fault at the leader's replication GetLog call site:
// with one follower stopped, the leader commits more entries than raft's
// LogCache holds, the first of them is then corrupted under the running
// leader, and the follower restarts: the leader must read that entry from
// disk to replicate it, find it faulty, repair it from the other follower
// while running, and the lagging node must end with the acked value.
//
// C2: the uncommitted tail is held by two nodes: the leader appends it
// with both followers stopped, and one follower is then given the same
// entries offline (as an AppendEntries the leader crashed before hearing
// the ack of would have: raft never counted it, no client was answered);
// the copy on the old leader is corrupted. PAR repairs it from the
// follower (rule 1); the entry may then commit, and every node must
// serve it intact or not at all.
// C2b: the same with both copies corrupted. Held by two of three nodes,
// the entry is indistinguishable from a committed one to every node, so
// no protocol may discard it: both holders must wait (unavailable), and
// the case counts as not recoverable.
//
// C3 and C4: family_c34.go. Not built: H on the follower-side call sites.

func cCases() []Case {
	return append([]Case{{Family: "C", ID: 0, Crash: [Nodes]int{1}}, {Family: "C", ID: 1},
		{Family: "C", ID: 2, Crash: [Nodes]int{1, 1, 0}}, {Family: "C", ID: 3, Crash: [Nodes]int{1, 1, 1}}}, c34Cases()...)
}

// cRecoverable: every case but C2b (the only copies of an entry a
// majority holds are damaged); C3 and C4 damage only uncommitted entries
// (family_c34.go).
func cRecoverable(c Case) bool { return c.Variant != cVarC12 || !(c.Crash[1] == 1 && c.Crash[2] == 1) }

// withStores opens a stopped node's log and stable stores (par or plain
// raft-boltdb, as the harness runs them).
func (h *Harness) withStores(nd string, f func(raft.LogStore, raft.StableStore) error) error {
	if h.opt.Plain {
		b, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(nd, par.BoltFile)})
		if err != nil {
			return err
		}
		return errors.Join(f(b, b), b.Close())
	}
	st, err := par.Open(par.Config{Dir: nd, Name: filepath.Base(nd), NoSync: true})
	if err != nil {
		return err
	}
	return errors.Join(f(st.Log, st.Stable), st.Close())
}

// copyTail gives the follower in dst the leader's entries after the
// follower's last one, as AppendEntries would (the logs must match at the
// follower's last entry), with the term persisted first.
func (h *Harness) copyTail(src, dst string) (int, error) {
	var tail []*raft.Log
	var srcTerms map[uint64]uint64
	err := h.withStores(src, func(ls raft.LogStore, _ raft.StableStore) error {
		first, _ := ls.FirstIndex()
		last, _ := ls.LastIndex()
		srcTerms = map[uint64]uint64{}
		for i := first; i <= last && i != 0; i++ {
			var l raft.Log
			if err := ls.GetLog(i, &l); err != nil {
				return fmt.Errorf("leader entry %d: %w", i, err)
			}
			srcTerms[i] = l.Term
			tail = append(tail, &l)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	err = h.withStores(dst, func(ls raft.LogStore, stable raft.StableStore) error {
		last, _ := ls.LastIndex()
		var l raft.Log
		if err := ls.GetLog(last, &l); err != nil || srcTerms[last] != l.Term {
			return fmt.Errorf("follower's last entry %d (term %d, %v) does not match the leader's (term %d)", last, l.Term, err, srcTerms[last])
		}
		var add []*raft.Log
		for _, e := range tail {
			if e.Index > last {
				add = append(add, e)
			}
		}
		if len(add) == 0 {
			return nil
		}
		if t, _ := stable.GetUint64([]byte("CurrentTerm")); t < add[len(add)-1].Term {
			if err := stable.SetUint64([]byte("CurrentTerm"), add[len(add)-1].Term); err != nil {
				return err
			}
		}
		n = len(add)
		return ls.StoreLogs(add)
	})
	return n, err
}

func hCases() []Case { return []Case{{Family: "H", ID: 0}} }

// cluster starts every node on dir and returns them with a client of the
// leader.
func (h *Harness) cluster(ctx context.Context, dir string) ([]*coord.Server, int, *grpc.ClientConn, error) {
	srvs, err := h.start(dir, nil)
	if err != nil {
		closeAll(srvs)
		return nil, 0, nil, err
	}
	cc, err := h.dialLeader(ctx, srvs)
	if err != nil {
		closeAll(srvs)
		return nil, 0, nil, err
	}
	for i, s := range srvs {
		if s.Replica().IsLeader() {
			return srvs, i, cc, nil
		}
	}
	cc.Close()
	closeAll(srvs)
	return nil, 0, nil, fmt.Errorf("leader lost")
}

func (h *Harness) runC(ctx context.Context, c Case, dir string, res *Result) {
	if c.Variant != cVarC12 {
		h.runC34(ctx, c, dir, res)
		return
	}
	res.Recoverable = cRecoverable(c)
	// An entry the followers never get: the write cannot commit.
	marker := []byte(fmt.Sprintf("PARMARK-uncommitted-%d-PARMARK", time.Now().UnixNano()))
	leader, ok := h.startTail(ctx, dir, marker, res) // family_c34.go
	if !ok {
		return
	}
	holder := (leader + 1) % Nodes // C2: the follower that also holds the tail
	if c.Crash[1] == 1 {
		if n, err := h.copyTail(filepath.Join(dir, h.names[leader]), filepath.Join(dir, h.names[holder])); err != nil || n == 0 {
			res.Outcome, res.Detail = Unavailable, fmt.Sprintf("harness: copy the uncommitted tail to %s: %d entries, %v", h.names[holder], n, err)
			return
		}
	}
	for k, node := range []int{leader, holder} {
		if c.Crash[2*k] != 1 || (k == 1 && c.Crash[1] != 1) {
			continue
		}
		if n, err := flipEvery(filepath.Join(dir, h.names[node], "raft.db"), marker); err != nil || n == 0 {
			res.Outcome, res.Detail = Unavailable, fmt.Sprintf("harness: uncommitted entry not found on %s (%d, %v)", h.names[node], n, err)
			return
		}
	}
	srvs, _ := h.start(dir, nil)
	defer closeAll(srvs)
	res.Outcome, res.Detail = h.probe(ctx, srvs)
	if res.Outcome == Correct {
		for i, s := range srvs {
			if s == nil {
				continue
			}
			t, _ := s.Replica().State()
			if v, _, err := t.Get("/uncommitted"); err == nil && !bytes.Equal(v, marker) {
				res.Outcome, res.Detail = Unsafe, fmt.Sprintf("%s serves a damaged uncommitted entry", h.names[i])
			}
		}
	}
	if res.Outcome == Correct && srvs[leader] != nil && srvs[leader].PAR() != nil {
		st := srvs[leader].PAR().Log.Stats()
		res.Detail = fmt.Sprintf("old leader: %d suffix discards, %d repairs", st.Truncations, st.Repairs)
	}
}

func (h *Harness) runH(ctx context.Context, c Case, dir string, res *Result) {
	res.Recoverable = true
	srvs, leader, cc, err := h.cluster(ctx, dir)
	if err != nil {
		res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
		return
	}
	defer func() { closeAll(srvs) }()
	defer cc.Close()
	lag := (leader + 1) % Nodes
	_ = srvs[lag].Close()
	srvs[lag] = nil
	cl := coordpb.NewCoordClient(cc)
	marker := []byte(fmt.Sprintf("PARMARK-latent-%d-PARMARK", time.Now().UnixNano()))
	if _, err := cl.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/latent", Data: marker}}); err != nil {
		res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
		return
	}
	// Push the marker entry out of the leader's LogCache (1024 entries).
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 75; k++ {
				// An unconditional set of the same value may be retried:
				// on a loaded machine the two-node cluster's short lease
				// can lapse and move the leadership under the fill.
				var err error
				for try := 0; try < 20; try++ {
					if _, err = cl.Set(ctx, &coordpb.SetRequest{Op: &coordpb.SetOp{Path: "/k0", Data: h.values[0], Version: -1}}); err == nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		res.Outcome, res.Detail = Unavailable, "harness: filler writes: "+err.Error()
		return
	}
	for i, s := range srvs { // the leader may have moved during the fill
		if s != nil && s.Replica().IsLeader() {
			leader = i
		}
	}
	if n, err := flipEvery(filepath.Join(dir, h.names[leader], "raft.db"), marker); err != nil || n == 0 {
		res.Outcome, res.Detail = Unavailable, fmt.Sprintf("harness: marker not found (%d, %v)", n, err)
		return
	}
	// The lagging node comes back: the leader must read the marker entry
	// from disk to replicate it.
	s, err := h.startOne(dir, lag)
	if err != nil {
		res.Outcome, res.Detail = Unavailable, "lagging node did not start: "+err.Error()
		return
	}
	srvs[lag] = s
	last := srvs[leader].Replica().Info().LastIndex
	wctx, cancel := context.WithTimeout(ctx, h.opt.Avail+10*time.Second)
	defer cancel()
	if err := s.Replica().WaitApplied(wctx, last); err != nil {
		res.Outcome, res.Detail = Unavailable, "lagging node did not catch up: "+err.Error()
		return
	}
	t, _ := s.Replica().State()
	if v, _, err := t.Get("/latent"); err != nil || !bytes.Equal(v, marker) {
		res.Outcome, res.Detail = Unsafe, fmt.Sprintf("lagging node holds %q for the acked /latent (%v)", v, err)
		return
	}
	if p := srvs[leader].PAR(); p != nil {
		res.Repairs, res.RepairedBytes = p.Log.Stats().Repairs, p.Log.Stats().RepairedBytes
		if res.Repairs == 0 {
			res.Outcome, res.Detail = Unavailable, "harness: the leader read no damaged entry (the fault did not reach a GetLog)"
			return
		}
	}
	res.Outcome, res.Detail = h.probe(ctx, srvs)
}

// startOne (re)starts node i alone.
func (h *Harness) startOne(dir string, i int) (*coord.Server, error) {
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if ln, err = net.Listen("tcp", h.addrs[i]); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	return startRecovering(h.config(dir, i), ln)
}
