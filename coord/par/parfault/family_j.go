package parfault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/coord"
	"coord/coord/par"
	"coord/proto/coordpb"
)

// Family J (design §5.4): a lost node. One node's whole data dir is
// removed (a replaced disk). Started naively it must refuse
// (par.ErrNaiveReformat) while the other two stay available; started with
// --par-recover it must rejoin as a non-voter, catch up, be promoted and
// then carry the cluster with one of the old nodes stopped.

// jRecoverTimeout bounds the lost-node procedure (demote, term query,
// catch-up) for the wiped node.
const jRecoverTimeout = 20 * time.Second

// Family J start modes.
const (
	JNaive       = iota // start the wiped node as if it were new
	JRecoverFlag        // coordd --par-recover (coord.Config.PARRecover)
	JPrepare            // coordctl par recover (par.PrepareLostNode), then a normal start
)

func jCases() []Case {
	var all []Case
	for n := 1; n <= Nodes; n++ {
		for _, rec := range []int{JNaive, JRecoverFlag, JPrepare} {
			all = append(all, Case{Family: "J", ID: len(all), Wipe: n, Recover: rec})
		}
	}
	return all
}

func (h *Harness) runJ(ctx context.Context, c Case, dir string, res *Result) {
	victim := c.Wipe - 1
	prior := map[string][]par.Vote{}
	prior[h.names[victim]], _ = par.ReadVotes(filepath.Join(dir, h.names[victim]))
	defer func() {
		if dv := h.doubleVote(dir, prior); dv != "" {
			res.Outcome, res.Detail = Unsafe, "double vote: "+dv
		}
	}()
	if err := os.RemoveAll(filepath.Join(dir, h.names[victim])); err != nil {
		res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
		return
	}
	var prepErr error
	srvs, startErr := h.start(dir, nil, func(i int, cfg *coord.Config) {
		if i != victim {
			return
		}
		switch c.Recover {
		case JRecoverFlag:
			cfg.PARRecover = true
			cfg.PARRecoverTimeout = jRecoverTimeout
		case JPrepare:
			// What `coordctl par recover` does, while the node is down.
			var peers []par.Peer
			for k, n := range h.names {
				if k != victim {
					peers = append(peers, par.Peer{Name: n, Addr: h.addrs[k]})
				}
			}
			cl := par.NewClient(cfg.Name, peers)
			defer cl.Close()
			pctx, cancel := context.WithTimeout(ctx, jRecoverTimeout)
			defer cancel()
			_, prepErr = par.PrepareLostNode(pctx, par.Config{Dir: cfg.DataDir, Name: cfg.Name, Addr: h.addrs[victim]}, cl)
			cfg.PARRecoverTimeout = jRecoverTimeout
		}
	})
	defer closeAll(srvs)
	if prepErr != nil {
		res.Outcome, res.Detail = Unavailable, "coordctl par recover: "+prepErr.Error()
		return
	}
	if c.Recover == JNaive {
		if srvs[victim] != nil {
			res.Outcome, res.Detail = Unsafe, "naive reformat: the wiped node started as a fresh node"
			return
		}
		if !errors.Is(startErr, par.ErrNaiveReformat) {
			res.Outcome, res.Detail = Unavailable, fmt.Sprintf("wiped node did not start, but not for the naive-reformat refusal: %v", startErr)
			return
		}
		res.Outcome, res.Detail = h.probe(ctx, srvs)
		if res.Outcome == Correct {
			res.Detail = "refused: " + par.ErrNaiveReformat.Error()[:40] + "..."
		}
		return
	}
	if srvs[victim] == nil {
		res.Outcome, res.Detail = Unavailable, fmt.Sprintf("recovering node did not start: %v", startErr)
		return
	}
	res.Outcome, res.Detail = h.probe(ctx, srvs)
	if res.Outcome != Correct {
		return
	}
	// The recovered node must become a voter again and hold every write.
	rs := srvs[victim]
	deadline := time.Now().Add(h.opt.Avail + 10*time.Second)
	for !rs.PAR().Promoted() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !rs.PAR().Promoted() {
		res.Outcome, res.Detail = Unavailable, "recovered node was not promoted to voter in time"
		return
	}
	voter := false
	if ms, err := rs.Replica().Members(); err == nil {
		for _, m := range ms {
			voter = voter || (m.Name == h.names[victim] && m.Voter)
		}
	}
	if !voter {
		res.Outcome, res.Detail = Unavailable, "recovered node reports promotion but is not a voter in the configuration"
		return
	}
	if id := rs.PAR().Identity(); id.Incarnation < 2 {
		res.Outcome, res.Detail = Unsafe, fmt.Sprintf("recovered node kept incarnation %d", id.Incarnation)
		return
	}
	// Durability follow-up: stop an old node (the leader if it is one),
	// the recovered node and the other old node must carry the cluster.
	stop := (victim + 1) % Nodes
	for i, s := range srvs {
		if i != victim && s != nil && s.Replica().IsLeader() {
			stop = i
		}
	}
	res.Outcome, res.Detail = h.followUp(ctx, srvs, stop)
}

// followUp is the durability follow-up of design §5.1 step 7: stop node
// stop (the repair source, or the one holding the only intact copy), then
// the remaining nodes must elect a leader, commit a write and each hold
// every acked value (a repair kept only in memory, or a node that never
// really caught up, fails here).
func (h *Harness) followUp(ctx context.Context, srvs []*coord.Server, stop int) (Outcome, string) {
	if srvs[stop] != nil {
		_ = srvs[stop].Close()
	}
	rest := make([]*coord.Server, len(srvs))
	copy(rest, srvs)
	rest[stop] = nil
	running := 0
	for _, s := range rest {
		if s != nil {
			running++
		}
	}
	if running < Nodes/2+1 {
		return Unavailable, "follow-up: too few nodes left"
	}
	ctx, cancel := context.WithTimeout(ctx, h.opt.Avail+5*time.Second)
	defer cancel()
	cc, err := h.dialLeader(ctx, rest)
	if err != nil {
		return Unavailable, "follow-up: " + err.Error()
	}
	defer cc.Close()
	cl := coordpb.NewCoordClient(cc)
	var zxid uint64
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		r, err := cl.Create(cctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/followup", Data: []byte("f")}})
		ccancel()
		if err == nil {
			zxid = r.Header.GetZxid()
			break
		}
		if status.Code(err) == codes.AlreadyExists {
			break
		}
		if ctx.Err() != nil {
			return Unavailable, "follow-up write: " + err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, s := range rest {
		if s == nil {
			continue
		}
		if zxid != 0 {
			if err := s.Replica().WaitApplied(ctx, zxid); err != nil {
				return Unavailable, fmt.Sprintf("follow-up: %s did not apply: %v", h.names[i], err)
			}
		}
		t, _ := s.Replica().State()
		for e, k := range h.keys {
			v, _, err := t.Get(k)
			if err != nil {
				return Unsafe, fmt.Sprintf("follow-up: %s lost acked key %s: %v", h.names[i], k, err)
			}
			if !bytes.Equal(v, h.values[e]) {
				return Unsafe, fmt.Sprintf("follow-up: %s serves a wrong value for %s", h.names[i], k)
			}
		}
	}
	return Correct, ""
}

// doubleVote is the two-votes-per-term check of design §5.5: every node's
// vote trace (par-votes.log), plus prior traces of earlier incarnations,
// must hold at most one candidate per term. It returns "" when none.
func (h *Harness) doubleVote(dir string, prior map[string][]par.Vote) string {
	for _, n := range h.names {
		votes, err := par.ReadVotes(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		votes = append(votes, prior[n]...)
		seen := map[uint64]string{}
		for _, v := range votes {
			if v.Candidate == string(par.SentinelCandidate) {
				continue // a refusal marker (amnesia / lost-node recovery), not a granted vote
			}
			if c, ok := seen[v.Term]; ok && c != v.Candidate {
				return fmt.Sprintf("%s voted for %q and %q in term %d", n, c, v.Candidate, v.Term)
			}
			seen[v.Term] = v.Candidate
		}
	}
	return ""
}

// followUpVictim picks the node the durability follow-up stops: the
// least damaged one, which most likely served the repairs (every node
// must be running; otherwise no follow-up).
func (h *Harness) followUpVictim(c Case, srvs []*coord.Server) (int, bool) {
	for _, s := range srvs {
		if s == nil {
			return 0, false
		}
	}
	best, score := 0, 1<<30
	for n := 0; n < Nodes; n++ {
		var d int
		switch c.Family {
		case "A":
			d = Popcount(c.Mask[n])
		case "B", "I":
			if c.Dmg[n].Kind != DmgNone {
				d = 1
			}
		case "E":
			d = Popcount(uint(c.Meta[n]))
		case "F":
			d = c.FS[n]
		case "G":
			d = c.Crash[n]
		}
		if d < score {
			best, score = n, d
		}
	}
	return best, true
}
