package par

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/parpb"
)

// Server is the PeerRepair gRPC service over one node's Store. It answers
// from the durable identifier view, never from bolt presence alone, and
// never nacks what it might hold (design §4.4 responder rules).
type Server struct {
	parpb.UnimplementedPeerRepairServer
	s *Store
}

// NewServer serves st.
func NewServer(st *Store) *Server { return &Server{s: st} }

// errClosedStatus is what every handler answers once the store closes:
// the node is going away, ask another (never an answer from closed
// files, never a write into them).
var errClosedStatus = status.Error(codes.Unavailable, ErrClosed.Error())

// enter admits a handler while the store is open; the caller must call
// the returned leave.
func (srv *Server) enter() (leave func(), err error) {
	if !srv.s.enter() {
		return nil, errClosedStatus
	}
	return srv.s.leave, nil
}

// GetEntries answers per item.
func (srv *Server) GetEntries(ctx context.Context, req *parpb.GetEntriesRequest) (*parpb.GetEntriesResponse, error) {
	leave, err := srv.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	st := srv.s
	term, sane := st.Stable.DurableTerm()
	floor := st.floor()
	resp := &parpb.GetEntriesResponse{Responder: st.cfg.Name, DurableTerm: term, CommitFloor: floor}
	for _, it := range req.Items {
		r := &parpb.EntryReply{Index: it.Index, Term: it.Term}
		if sane {
			status, env := srv.answer(it.Index, it.Term, floor)
			r.Status, r.Envelope = parpb.EntryStatus(status), env
		}
		resp.Replies = append(resp.Replies, r)
	}
	return resp, nil
}

// answer is the responder table for (i, t).
func (srv *Server) answer(i, t, floor uint64) (Status, []byte) {
	ls := srv.s.Log
	ls.mu.RLock()
	v := ls.j.view
	id, ok := v.ids[i]
	last, compacted, corrupt := v.last, v.compacted, v.corrupt
	knownTerm, known := v.termAt(i)
	ls.mu.RUnlock()
	switch {
	case ok && id.term == t:
		if _, env, err := ls.readVerified(i, id); err == nil {
			return StatusHave, env
		}
		return StatusHaveFaulty, nil
	case ok: // another term at i
		if i <= floor {
			return StatusConflictsCommitted, nil
		}
		return StatusDontHave, nil
	case i <= compacted:
		if known && knownTerm != t {
			return StatusConflictsCommitted, nil
		}
		return StatusCommittedCompacted, nil
	case i > last && corrupt == 0:
		return StatusDontHave, nil
	default: // a hole in a damaged journal
		return StatusUnknown, nil
	}
}

// GetTerm returns the durable current term.
func (srv *Server) GetTerm(ctx context.Context, _ *parpb.GetTermRequest) (*parpb.GetTermResponse, error) {
	leave, err := srv.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	term, sane := srv.s.Stable.DurableTerm()
	return &parpb.GetTermResponse{Responder: srv.s.cfg.Name, DurableTerm: term, Amnesic: !sane}, nil
}

// Status reports the counters.
func (srv *Server) Status(ctx context.Context, _ *parpb.StatusRequest) (*parpb.StatusResponse, error) {
	leave, err := srv.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	st := srv.s
	term, sane := st.Stable.DurableTerm()
	first, _ := st.Log.FirstIndex()
	last, _ := st.Log.LastIndex()
	ls, sc := st.Log.Stats(), st.Log.ScrubStats()
	return &parpb.StatusResponse{
		Node: st.cfg.Name, DurableTerm: term, Amnesic: !sane, FirstIndex: first, LastIndex: last,
		EntriesFaulty: ls.Faulty, Repairs: ls.Repairs, RepairFailures: ls.RepairFails, RepairedBytes: ls.RepairedBytes,
		Truncations: ls.Truncations, Adopted: ls.Adopted, ScrubPosition: sc.Position, ScrubLast: sc.Last,
		ScrubPasses: sc.Passes, MetaDegraded: st.Stable.Degraded(),
	}, nil
}

// Hello reports what this node recorded about req.Name and, when the
// request carries a node id, records it durably (design §4.8).
func (srv *Server) Hello(ctx context.Context, req *parpb.HelloRequest) (*parpb.HelloResponse, error) {
	leave, err := srv.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	st := srv.s
	cid := req.ClusterId
	if id := st.Identity(); id.Incarnation > 0 {
		cid = id.ClusterID[:]
	}
	resp := &parpb.HelloResponse{Responder: st.cfg.Name, ClusterId: cid}
	if req.Name == "" || req.Name == st.cfg.Name || string(cid) != string(req.ClusterId) {
		return resp, nil
	}
	if nid, inc, ok := st.Stable.knownMember(req.Name); ok {
		resp.Known, resp.KnownNodeId, resp.KnownIncarnation = true, nid, inc
	}
	if len(req.NodeId) == 16 && req.Incarnation > 0 {
		if err := st.Stable.rememberMember(req.Name, req.NodeId, req.Incarnation); err == nil {
			resp.Stored = true
		}
	}
	return resp, nil
}
