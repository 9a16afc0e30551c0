package lease

import (
	"context"
	"slices"

	"coord/lease/internal/core"
)

// Acquire blocks until this node holds res, then returns the lease, which
// renews itself automatically until it is released or lost. Callers in one
// process are served one at a time: a second Acquire of a resource this node
// already handed out waits until that lease ends. Errors: ctx.Err(),
// ErrClosed, ErrBadResource.
func (n *Node) Acquire(ctx context.Context, res string) (*Lease, error) {
	return n.acquire(ctx, res, false)
}

// TryAcquire makes one acquisition attempt (up to MaxAttempts rounds on
// contention or loss). Errors: *HeldError (errors.Is ErrLeaseHeld),
// ErrNoQuorum, ErrRecovering, ErrClockUnsafe, ErrClosed, ctx.Err().
func (n *Node) TryAcquire(ctx context.Context, res string) (*Lease, error) {
	return n.acquire(ctx, res, true)
}

func (n *Node) acquire(ctx context.Context, res string, try bool) (*Lease, error) {
	if err := checkResource(res); err != nil {
		return nil, err
	}
	w := newWaiter()
	if err := n.do(ctx, res, func(s *shard) {
		r := s.state(res)
		if try {
			if r.lease != nil {
				w.ch <- result{err: &HeldError{Holder: n.cfg.ID, Epoch: r.lease.Epoch(), Expiry: r.lease.Expiry()}}
				return
			}
			r.tries = append(r.tries, w)
			s.apply(s.mem.TryAcquire(s.now(), res, true))
			return
		}
		r.acquirers = append(r.acquirers, w)
		if r.lease == nil {
			s.apply(s.mem.Acquire(s.now(), res, true))
		}
	}); err != nil {
		return nil, err
	}
	select {
	case r := <-w.ch:
		return r.lease, r.err
	case <-ctx.Done():
	case <-n.ctx.Done():
	}
	// Give up: withdraw the waiter, or release what it was handed meanwhile.
	var gone bool
	_ = n.do(context.Background(), res, func(s *shard) {
		r := s.state(res)
		before := len(r.acquirers) + len(r.tries)
		r.acquirers = slices.DeleteFunc(r.acquirers, func(x *waiter) bool { return x == w })
		r.tries = slices.DeleteFunc(r.tries, func(x *waiter) bool { return x == w })
		gone = len(r.acquirers)+len(r.tries) < before
		if gone && len(r.acquirers) == 0 && len(r.tries) == 0 && r.lease == nil {
			op := core.OpAcquire
			if try {
				op = core.OpTry
			}
			s.apply(s.mem.Cancel(s.now(), res, op))
		}
	})
	if !gone {
		select {
		case r := <-w.ch:
			if r.lease != nil {
				_ = r.lease.Release(context.Background())
			}
		default:
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, ErrClosed
}

// Holder runs a linearizable read of res (a full round that writes the
// current value back) and reports the holder. It raises promised ballots, so
// a holder's in-flight renewal may need a retry: use it sparingly;
// LocalHolder is free. Errors: ErrNoQuorum, ErrRecovering, ErrClockUnsafe,
// ErrClosed, ctx.Err().
func (n *Node) Holder(ctx context.Context, res string) (HolderInfo, error) {
	if err := checkResource(res); err != nil {
		return HolderInfo{}, err
	}
	w := newWaiter()
	if err := n.do(ctx, res, func(s *shard) {
		s.state(res).queries = append(s.state(res).queries, w)
		s.apply(s.mem.Query(s.now(), res))
	}); err != nil {
		return HolderInfo{}, err
	}
	select {
	case r := <-w.ch:
		return r.info, r.err
	case <-ctx.Done():
		return HolderInfo{}, ctx.Err()
	case <-n.ctx.Done():
		return HolderInfo{}, ErrClosed
	}
}

// LocalHolder reports the newest committed value this node has seen for
// res, without a round. It may be stale.
func (n *Node) LocalHolder(ctx context.Context, res string) (HolderInfo, error) {
	if err := checkResource(res); err != nil {
		return HolderInfo{}, err
	}
	var info HolderInfo
	err := n.do(ctx, res, func(s *shard) { info = infoOf(res, s.mem.Learned(res)) })
	return info, err
}

// List reports LocalHolder for every resource this node has seen.
func (n *Node) List(ctx context.Context) ([]HolderInfo, error) {
	var out []HolderInfo
	for _, sh := range n.shards {
		done := make(chan []HolderInfo, 1)
		select {
		case sh.in <- func() {
			var l []HolderInfo
			for _, res := range sh.mem.Resources() {
				l = append(l, infoOf(res, sh.mem.Learned(res)))
			}
			done <- l
		}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-n.ctx.Done():
			return nil, ErrClosed
		}
		select {
		case l := <-done:
			out = append(out, l...)
		case <-n.ctx.Done():
			return nil, ErrClosed
		}
	}
	slices.SortFunc(out, func(a, b HolderInfo) int {
		if a.Resource < b.Resource {
			return -1
		}
		if a.Resource > b.Resource {
			return 1
		}
		return 0
	})
	return out, nil
}
