package lease

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/lease/internal/core"
	"coord/proto/leasepb"
)

// maxItems bounds the items of one peer request.
const maxItems = 4096

// peerServer implements FleasePeer: the acceptor side (Prepare, Accept),
// Learn hints and Probe. Handlers run on gRPC's goroutines and touch only
// the shards' acceptors (under their locks) and their loop queues.
type peerServer struct {
	leasepb.UnimplementedFleasePeerServer
	n *Node
}

// check validates a request header and returns the sender's member index.
// A wrong group or version is FailedPrecondition naming ours.
func (p *peerServer) check(ctx context.Context, h *leasepb.Header, items int) (int, error) {
	n := p.n
	if err := ctx.Err(); err != nil {
		return 0, status.FromContextError(err).Err()
	}
	if h == nil {
		return 0, status.Error(codes.InvalidArgument, "lease: missing header")
	}
	if h.GroupId != n.cfg.Group || h.ConfigVersion != n.cfg.Version {
		return 0, status.Errorf(codes.FailedPrecondition, "%v: have group %q version %d, got group %q version %d",
			ErrConfigMismatch, n.cfg.Group, n.cfg.Version, h.GroupId, h.ConfigVersion)
	}
	from, ok := n.index[NodeID(h.From)]
	if !ok {
		return 0, status.Errorf(codes.FailedPrecondition, "%v: %q is not a member of group %q version %d",
			ErrConfigMismatch, h.From, n.cfg.Group, n.cfg.Version)
	}
	if items > maxItems {
		return 0, status.Errorf(codes.InvalidArgument, "lease: %d items, limit %d", items, maxItems)
	}
	if err := n.checkPeerCert(ctx, h.From); err != nil {
		return 0, err
	}
	return from, nil
}

func checkItem(res string, b *leasepb.Ballot) error {
	if err := checkResource(res); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if b == nil || b.Round == 0 {
		return status.Errorf(codes.InvalidArgument, "lease: %q: zero ballot", res)
	}
	return nil
}

func (p *peerServer) Prepare(ctx context.Context, req *leasepb.PrepareRequest) (*leasepb.PrepareResponse, error) {
	from, err := p.check(ctx, req.Header, len(req.Items))
	if err != nil {
		return nil, err
	}
	resp := &leasepb.PrepareResponse{Results: make([]*leasepb.PrepareResult, 0, len(req.Items))}
	for _, it := range req.Items {
		if err := checkItem(it.Resource, it.Ballot); err != nil {
			return nil, err
		}
		s := p.n.shardOf(it.Resource)
		m := core.Message{Kind: core.MsgPrepare, From: from, To: p.n.self, Resource: it.Resource,
			Ballot: ballotOf(it.Ballot), Sent: req.Header.SentUnixNanos}
		s.mu.Lock()
		r, why := s.acc.Handle(s.now(), m)
		s.mu.Unlock()
		resp.Results = append(resp.Results, &leasepb.PrepareResult{Resource: it.Resource, Ballot: it.Ballot,
			Refusal: leasepb.Refusal(why), Ok: r.OK, Promised: ballotPB(r.Promised),
			Accepted: ballotPB(r.Accepted), Value: valuePB(r.Value)})
	}
	resp.Header = p.n.header(p.n.cfg.Clock.Now().Wall)
	return resp, nil
}

func (p *peerServer) Accept(ctx context.Context, req *leasepb.AcceptRequest) (*leasepb.AcceptResponse, error) {
	from, err := p.check(ctx, req.Header, len(req.Items))
	if err != nil {
		return nil, err
	}
	resp := &leasepb.AcceptResponse{Results: make([]*leasepb.AcceptResult, 0, len(req.Items))}
	for _, it := range req.Items {
		if err := checkItem(it.Resource, it.Ballot); err != nil {
			return nil, err
		}
		s := p.n.shardOf(it.Resource)
		m := core.Message{Kind: core.MsgAccept, From: from, To: p.n.self, Resource: it.Resource,
			Ballot: ballotOf(it.Ballot), Sent: req.Header.SentUnixNanos, Value: valueOf(it.Value)}
		s.mu.Lock()
		r, why := s.acc.Handle(s.now(), m)
		s.mu.Unlock()
		resp.Results = append(resp.Results, &leasepb.AcceptResult{Resource: it.Resource, Ballot: it.Ballot,
			Refusal: leasepb.Refusal(why), Ok: r.OK, Promised: ballotPB(r.Promised)})
	}
	resp.Header = p.n.header(p.n.cfg.Clock.Now().Wall)
	return resp, nil
}

func (p *peerServer) Learn(ctx context.Context, req *leasepb.LearnRequest) (*leasepb.LearnResponse, error) {
	from, err := p.check(ctx, req.Header, len(req.Items))
	if err != nil {
		return nil, err
	}
	for _, it := range req.Items {
		if err := checkResource(it.Resource); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		m := core.Message{Kind: core.MsgLearn, From: from, To: p.n.self, Resource: it.Resource,
			Sent: req.Header.SentUnixNanos, Value: valueOf(it.Value)}
		s := p.n.shardOf(it.Resource)
		select {
		case s.in <- func() { s.apply(s.mem.Step(s.now(), m)) }:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-p.n.ctx.Done():
			return nil, status.Error(codes.Unavailable, ErrClosed.Error())
		}
	}
	return &leasepb.LearnResponse{Header: p.n.header(p.n.cfg.Clock.Now().Wall)}, nil
}

func (p *peerServer) Probe(ctx context.Context, req *leasepb.ProbeRequest) (*leasepb.ProbeResponse, error) {
	if _, err := p.check(ctx, req.Header, 0); err != nil {
		return nil, err
	}
	now := p.n.cfg.Clock.Now()
	resp := &leasepb.ProbeResponse{Header: p.n.header(now.Wall), ClockOk: now.ClockOK}
	if now.Mono < p.n.started.Mono+p.n.cfg.timing().RestartWait() {
		resp.RecoveringUntilUnixNanos = p.n.RecoveringUntil().UnixNano()
	}
	return resp, nil
}

func prepareReplies(peer, self int, resp *leasepb.PrepareResponse) []core.Message {
	if resp == nil {
		return nil
	}
	out := make([]core.Message, 0, len(resp.Results))
	for _, r := range resp.Results {
		if r.Refusal != leasepb.Refusal_ANSWERED {
			continue
		}
		out = append(out, core.Message{Kind: core.MsgPrepareReply, From: peer, To: self, Resource: r.Resource,
			Ballot: ballotOf(r.Ballot), OK: r.Ok, Promised: ballotOf(r.Promised),
			Accepted: ballotOf(r.Accepted), Value: valueOf(r.Value)})
	}
	return out
}

func acceptReplies(peer, self int, resp *leasepb.AcceptResponse) []core.Message {
	if resp == nil {
		return nil
	}
	out := make([]core.Message, 0, len(resp.Results))
	for _, r := range resp.Results {
		if r.Refusal != leasepb.Refusal_ANSWERED {
			continue
		}
		out = append(out, core.Message{Kind: core.MsgAcceptReply, From: peer, To: self, Resource: r.Resource,
			Ballot: ballotOf(r.Ballot), OK: r.Ok, Promised: ballotOf(r.Promised)})
	}
	return out
}

func ballotPB(b core.Ballot) *leasepb.Ballot {
	if b.IsZero() {
		return nil
	}
	return &leasepb.Ballot{Round: b.Round, Proposer: b.Proposer, Inc: b.Inc}
}

func ballotOf(b *leasepb.Ballot) core.Ballot {
	if b == nil {
		return core.Ballot{}
	}
	return core.Ballot{Round: b.Round, Proposer: b.Proposer, Inc: b.Inc}
}

func valuePB(v core.Value) *leasepb.Value {
	if v.IsZero() {
		return nil
	}
	return &leasepb.Value{Owner: string(v.Owner), OwnerInc: v.OwnerInc, ExpiryUnixNanos: v.Expiry, Epoch: v.Epoch, Released: v.Released}
}

func valueOf(v *leasepb.Value) core.Value {
	if v == nil {
		return core.Value{}
	}
	return core.Value{Owner: NodeID(v.Owner), OwnerInc: v.OwnerInc, Expiry: v.ExpiryUnixNanos, Epoch: v.Epoch, Released: v.Released}
}
