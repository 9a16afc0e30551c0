package client

import (
	"context"
	"sync"

	"coord/proto/coordpb"
)

// Exactly-once writes. While the client has a live session, every write
// carries (session id, request id): the server remembers each result until
// the client acknowledges it, so a write whose answer was lost (the
// connection broke, the leader changed) is retried — on any server — and
// answered with the original result instead of being applied twice. That
// settles ZooKeeper's "did my sequential create happen?" for good.

// requests numbers a session's writes and tracks which are in flight, so
// each request can tell the server which results it may forget.
type requests struct {
	mu       sync.Mutex
	session  uint64
	next     uint64
	inFlight map[uint64]struct{}
}

// begin returns the write header for a new request, or nil without a live
// session (then writes are at-most-once and a lost answer is
// ErrConnectionLoss).
func (c *Client) begin() *coordpb.WriteHeader {
	id, err, ok := c.sessionNow()
	if !ok || err != nil || id == 0 {
		return nil
	}
	r := &c.reqs
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.session != id {
		r.session, r.next, r.inFlight = id, 1, map[uint64]struct{}{}
	}
	rid := r.next
	r.next++
	r.inFlight[rid] = struct{}{}
	acked := rid
	for f := range r.inFlight {
		acked = min(acked, f)
	}
	return &coordpb.WriteHeader{SessionId: id, RequestId: rid, AckedBelow: acked}
}

// end marks a request answered (or abandoned).
func (c *Client) end(wh *coordpb.WriteHeader) {
	if wh == nil {
		return
	}
	r := &c.reqs
	r.mu.Lock()
	if r.session == wh.SessionId {
		delete(r.inFlight, wh.RequestId)
	}
	r.mu.Unlock()
}

// writeKind is how a write may be retried: exactly-once writes like reads.
func writeKind(wh *coordpb.WriteHeader) callKind {
	if wh != nil {
		return exactlyOnce
	}
	return write
}

// writeCall runs a write with a fresh header.
func (c *Client) writeCall(ctx context.Context, fn func(context.Context, coordpb.CoordClient, *coordpb.WriteHeader) error) error {
	wh := c.begin()
	defer c.end(wh)
	return c.call(ctx, writeKind(wh), func(ctx context.Context, r coordpb.CoordClient) error {
		return fn(ctx, r, wh)
	})
}
