package lease

import (
	"context"
	"sync"
	"time"

	"coord/lease/internal/core"
	"coord/proto/leasepb"
)

// shard is one event loop: it owns a pure core.Member (the proposer side for
// the resources hashed onto it) and the Leases and waiters of those
// resources. Its core.Acceptor is shared with the gRPC handlers under mu.
type shard struct {
	n  *Node
	id int

	mu  sync.Mutex // guards acc
	acc *core.Acceptor

	// Loop-owned from here on.
	in     chan func()
	mem    *core.Member
	res    map[string]*resState
	outbox [][]core.Message // by peer index, flushed once per loop iteration
	held   int              // leases handed out
	lastGC time.Duration    // mono time of the last acceptor GC
}

// gc drops idle expired acceptor cells once per RestartWait.
func (s *shard) gc(now Instant) {
	if w := s.n.cfg.timing().RestartWait(); now.Mono-s.lastGC > w {
		s.lastGC = now.Mono
		s.mu.Lock()
		s.acc.GC(now)
		s.mu.Unlock()
	}
}

// resState is the loop's per-resource bookkeeping.
type resState struct {
	lease     *Lease
	acquirers []*waiter // blocking Acquire callers, FIFO
	tries     []*waiter
	queries   []*waiter
	releases  []*waiter
	renews    []*waiter
	watchers  []*watcher
}

type waiter struct{ ch chan result }

type result struct {
	lease *Lease
	info  HolderInfo
	err   error
}

func newWaiter() *waiter { return &waiter{ch: make(chan result, 1)} }

func (s *shard) state(res string) *resState {
	r := s.res[res]
	if r == nil {
		r = &resState{}
		s.res[res] = r
	}
	return r
}

func (s *shard) now() Instant { return s.n.cfg.Clock.Now() }

// run is the loop goroutine. Started by New; stops when the node's context
// is cancelled.
func (s *shard) run() {
	defer s.n.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-s.n.ctx.Done():
			s.shutdown()
			return
		case f := <-s.in:
			f()
			for i := 0; i < 64; i++ { // drain what is queued: bigger batches
				select {
				case f := <-s.in:
					f()
					continue
				default:
				}
				break
			}
		case <-timer.C:
			now := s.now()
			s.apply(s.mem.Tick(now))
			s.gc(now)
		}
		s.flush()
		s.rearm(timer)
	}
}

func (s *shard) rearm(timer *time.Timer) {
	now := s.now()
	d := time.Hour
	if wake, ok := s.mem.NextWake(now); ok {
		d = max(wake-now.Mono, 0)
	}
	d = min(d, s.n.cfg.timing().RestartWait()) // acceptor GC
	if s.held > 0 {
		// Notice a clock the guard stopped vouching for promptly.
		d = min(d, min(s.n.cfg.RoundTimeout/4, 10*time.Millisecond))
	}
	timer.Reset(d)
}

func (s *shard) shutdown() {
	for _, r := range s.res {
		if r.lease != nil {
			r.lease.end(ErrClosed)
		}
		for _, ws := range [][]*waiter{r.acquirers, r.tries, r.queries, r.releases, r.renews} {
			for _, w := range ws {
				w.ch <- result{err: ErrClosed}
			}
		}
		for _, w := range r.watchers {
			close(w.ch)
		}
	}
	s.res = nil
}

// apply carries out one core output: events first, then messages (the
// member's output slices are reused by its next call, so copy them).
func (s *shard) apply(out core.Output) {
	if len(out.Msgs) == 0 && len(out.Events) == 0 {
		return
	}
	msgs := append([]core.Message(nil), out.Msgs...)
	evs := append([]core.Event(nil), out.Events...)
	for _, e := range evs {
		s.event(e)
	}
	for _, m := range msgs {
		if m.To != s.n.self {
			s.outbox[m.To] = append(s.outbox[m.To], m)
			continue
		}
		// Own acceptor: same checks (restart wait included) as for peers.
		s.mu.Lock()
		reply, why := s.acc.Handle(s.now(), m)
		s.mu.Unlock()
		if why == core.Answered {
			s.apply(s.mem.Step(s.now(), reply))
		}
	}
}

// flush sends the outbox: one RPC per (peer, kind) with every item queued
// in this loop iteration.
func (s *shard) flush() {
	for peer, msgs := range s.outbox {
		if len(msgs) == 0 {
			continue
		}
		s.outbox[peer] = msgs[:0:0]
		var prep *leasepb.PrepareRequest
		var acc *leasepb.AcceptRequest
		var learn *leasepb.LearnRequest
		sent := msgs[0].Sent
		for _, m := range msgs {
			sent = min(sent, m.Sent) // conservative for the receiver's age filter
		}
		for _, m := range msgs {
			switch m.Kind {
			case core.MsgPrepare:
				if prep == nil {
					prep = &leasepb.PrepareRequest{Header: s.n.header(sent)}
				}
				prep.Items = append(prep.Items, &leasepb.PrepareItem{Resource: m.Resource, Ballot: ballotPB(m.Ballot)})
			case core.MsgAccept:
				if acc == nil {
					acc = &leasepb.AcceptRequest{Header: s.n.header(sent)}
				}
				acc.Items = append(acc.Items, &leasepb.AcceptItem{Resource: m.Resource, Ballot: ballotPB(m.Ballot), Value: valuePB(m.Value)})
			case core.MsgLearn:
				if learn == nil {
					learn = &leasepb.LearnRequest{Header: s.n.header(sent)}
				}
				learn.Items = append(learn.Items, &leasepb.LearnItem{Resource: m.Resource, Value: valuePB(m.Value)})
			}
		}
		if prep != nil {
			s.call(peer, func(ctx context.Context, c leasepb.FleasePeerClient) ([]core.Message, error) {
				resp, err := c.Prepare(ctx, prep)
				return prepareReplies(peer, s.n.self, resp), err
			})
		}
		if acc != nil {
			s.call(peer, func(ctx context.Context, c leasepb.FleasePeerClient) ([]core.Message, error) {
				resp, err := c.Accept(ctx, acc)
				return acceptReplies(peer, s.n.self, resp), err
			})
		}
		if learn != nil {
			s.call(peer, func(ctx context.Context, c leasepb.FleasePeerClient) ([]core.Message, error) {
				_, err := c.Learn(ctx, learn)
				return nil, err
			})
		}
	}
}

// call runs one peer RPC on its own goroutine (owned by the node's wait
// group; bounded by RoundTimeout and by Close) and feeds the replies back
// into the loop. A failed call is a lost message: the round times out.
func (s *shard) call(peer int, rpc func(context.Context, leasepb.FleasePeerClient) ([]core.Message, error)) {
	n := s.n
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RoundTimeout)
		replies, err := rpc(ctx, n.peers[peer])
		cancel()
		if err != nil {
			n.log.Debug("lease: peer call failed", logPeer, string(n.cfg.Members[peer].ID), logErr, err)
			return
		}
		if len(replies) == 0 {
			return
		}
		select {
		case s.in <- func() {
			for _, m := range replies {
				s.apply(s.mem.Step(s.now(), m))
			}
		}:
		case <-n.ctx.Done():
		}
	}()
}
