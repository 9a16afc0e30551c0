package coord

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"coord/coord/replica"
	"coord/coord/rpc"
	"coord/coord/tree"
	"coord/proto/coordpb"
)

// Forwarding batches a follower's writes to the leader: a write that
// arrives while maxForwardInflight batches are already on the wire waits
// in a queue, and the next batch carries everything queued (up to
// maxForwardBatch commands) in one Peer.ProposeBatch call. With little
// traffic every write goes alone at once, so batching never adds latency;
// under load one RPC carries many writes (one gRPC stream, one header
// frame, one syscall each way instead of one per write).
const (
	maxForwardInflight = 4
	maxForwardBatch    = 512
)

// fwdCall is one write waiting for the leader.
type fwdCall struct {
	ctx  context.Context
	cmd  []byte
	done chan struct{}
	res  *coordpb.ApplyResult
	err  error
}

// forwarder queues writes for one leader address.
type forwarder struct {
	s        *Server
	c        coordpb.PeerClient
	mu       sync.Mutex
	queue    []*fwdCall
	inflight int
}

// forwarders keeps one forwarder per leader address.
type forwarders struct {
	mu      sync.Mutex
	m       map[string]*forwarder
	batches atomic.Uint64 // ProposeBatch calls made
	writes  atomic.Uint64 // writes they carried
}

// ForwardStats reports how many batches this node has forwarded to a
// leader and how many writes they carried (their ratio is the batching).
func (s *Server) ForwardStats() (batches, writes uint64) {
	return s.fwd.batches.Load(), s.fwd.writes.Load()
}

func (f *forwarders) get(s *Server, addr string, c coordpb.PeerClient) *forwarder {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]*forwarder)
	}
	fw, ok := f.m[addr]
	if !ok {
		fw = &forwarder{s: s, c: c}
		f.m[addr] = fw
	}
	return fw
}

// forward sends cmd (encoded) to the leader and waits for its outcome.
// Errors follow the unary Propose's rules: a batch that never left this
// node reports ErrNoLeader (safe to retry), one lost in flight
// ErrUnknownOutcome.
func (f *forwarder) forward(ctx context.Context, cmd []byte) (*coordpb.ApplyResult, error) {
	call := &fwdCall{ctx: ctx, cmd: cmd, done: make(chan struct{})}
	f.mu.Lock()
	f.queue = append(f.queue, call)
	if f.inflight < maxForwardInflight {
		f.inflight++
		go f.run()
	}
	f.mu.Unlock()
	select {
	case <-call.done:
		return call.res, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run sends batches until the queue is empty, then gives its slot back.
func (f *forwarder) run() {
	for {
		f.mu.Lock()
		n := min(len(f.queue), maxForwardBatch)
		if n == 0 {
			f.inflight--
			f.mu.Unlock()
			return
		}
		batch := f.queue[:n:n]
		f.queue = append([]*fwdCall(nil), f.queue[n:]...)
		f.mu.Unlock()
		f.send(batch)
	}
}

// send makes one ProposeBatch call for the calls still waiting.
func (f *forwarder) send(batch []*fwdCall) {
	live := batch[:0:0]
	var deadline time.Time
	for _, c := range batch {
		if c.ctx.Err() != nil {
			c.finish(nil, c.ctx.Err()) // never sent
			continue
		}
		live = append(live, c)
		if dl, ok := c.ctx.Deadline(); ok && dl.After(deadline) {
			deadline = dl
		}
	}
	if len(live) == 0 {
		return
	}
	if limit := time.Now().Add(f.s.leaderWait()); deadline.IsZero() || deadline.After(limit) {
		deadline = limit
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	go func() {
		select {
		case <-f.s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	cmds := make([][]byte, len(live))
	for i, c := range live {
		cmds[i] = c.cmd
	}
	f.s.fwd.batches.Add(1)
	f.s.fwd.writes.Add(uint64(len(live)))
	resp, err := f.c.ProposeBatch(ctx, &coordpb.ProposeBatchRequest{Commands: cmds})
	if err != nil {
		err = forwardError(err)
		for _, c := range live {
			c.finish(nil, err)
		}
		return
	}
	outs := resp.GetOutcomes()
	for i, c := range live {
		if i >= len(outs) {
			c.finish(nil, fmt.Errorf("%w (the leader answered %d of %d forwarded writes)", replica.ErrUnknownOutcome, len(outs), len(live)))
			continue
		}
		if st := outs[i].GetStatus(); len(st) > 0 {
			c.finish(nil, rpc.DecodeStatus(st))
			continue
		}
		if outs[i].GetResult() == nil {
			c.finish(nil, errors.New("write: leader returned no result"))
			continue
		}
		c.finish(outs[i].GetResult(), nil)
	}
}

func (c *fwdCall) finish(res *coordpb.ApplyResult, err error) {
	c.res, c.err = res, err
	close(c.done)
}

// forwardError classifies a failed call to the leader's Peer service: one
// that failed while dialing never left this node (the write may be retried
// elsewhere), one that failed later may have been applied.
func forwardError(err error) error {
	mapped := rpc.FromStatus(err)
	if errors.Is(mapped, rpc.ErrPeerUnreachable) {
		if neverSent(err) {
			return replica.ErrNoLeader
		}
		return fmt.Errorf("%w (forwarding to the leader failed: %v)", replica.ErrUnknownOutcome, err)
	}
	return mapped
}

// ProposeBatchLocal implements rpc.Backend: a follower forwarded a batch
// of writes. Each command is stamped with this leader's clock like a local
// write.
func (s *Server) ProposeBatchLocal(ctx context.Context, cmds [][]byte) ([]*coordpb.ApplyResult, []error) {
	now := time.Now().UnixMilli()
	stamped := make([][]byte, 0, len(cmds))
	idx := make([]int, 0, len(cmds)) // stamped[j] is cmds[idx[j]]
	errs := make([]error, len(cmds))
	res := make([]*coordpb.ApplyResult, len(cmds))
	for i, b := range cmds {
		cmd, err := replica.DecodeCommand(b)
		if err != nil {
			errs[i] = fmt.Errorf("%w: %v", tree.ErrInvalidArgument, err)
			continue
		}
		cmd.TimeMs = now
		out, err := replica.EncodeCommand(cmd)
		if err != nil {
			errs[i] = err
			continue
		}
		stamped = append(stamped, out)
		idx = append(idx, i)
	}
	if len(stamped) == 0 {
		return res, errs
	}
	r, e := s.rep.ProposeMany(ctx, stamped)
	for j, i := range idx {
		res[i], errs[i] = r[j], e[j]
	}
	if s.cfg.NudgeFollowers {
		s.rep.Nudge()
	}
	return res, errs
}
