package lease

import (
	"context"
	"sync"
	"time"

	"coord/lease/internal/core"
)

// Lease is a held lease on one resource. It is valid until Done is closed,
// and Valid must be checked before each use: the holder's deadline is
// Expiry − MaxClockError on the wall clock and the matching span on the
// monotonic clock, whichever comes first. Pass Epoch with every write to
// shared storage (fencing).
type Lease struct {
	s     *shard
	res   string
	value core.Value // owner, inc, epoch: fixed for the tenure

	mu           sync.Mutex
	expiry       int64 // latest committed expiry (unix ns)
	wallDeadline int64
	monoDeadline time.Duration
	timer        *time.Timer // fires at the deadline: ends the lease locally

	ctx    context.Context
	cancel context.CancelCauseFunc
}

func newLease(s *shard, res string, h core.Holding) *Lease {
	l := &Lease{s: s, res: res, value: h.Value}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	l.update(h)
	return l
}

// update extends the deadlines after a renewal and re-arms the local
// deadline timer.
func (l *Lease) update(h core.Holding) {
	now := l.s.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expiry, l.wallDeadline, l.monoDeadline = h.Value.Expiry, h.WallDeadline, h.MonoDeadline
	d := min(time.Duration(h.WallDeadline-now.Wall), h.MonoDeadline-now.Mono)
	if l.timer != nil {
		l.timer.Stop()
	}
	l.timer = time.AfterFunc(max(d, 0), func() { l.end(ErrExpired) })
}

// end invalidates the lease locally (idempotent; the first cause wins).
func (l *Lease) end(err error) {
	l.cancel(err)
	l.mu.Lock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
}

// Resource is the leased resource.
func (l *Lease) Resource() string { return l.res }

// Holder is this node's ID.
func (l *Lease) Holder() NodeID { return l.value.Owner }

// Epoch is the fencing token: it strictly increases across tenures of the
// resource (holders, restarts, amnesia) and is unchanged by renewals.
func (l *Lease) Epoch() uint64 { return l.value.Epoch }

// Expiry is the absolute expiry of the latest committed renewal. The holder
// stops using the lease MaxClockError earlier.
func (l *Lease) Expiry() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Unix(0, l.expiry)
}

// Valid reports whether the lease may be used now: not ended, the clock
// vouched for, and before both deadlines.
func (l *Lease) Valid() bool {
	if l.ctx.Err() != nil {
		return false
	}
	now := l.s.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return now.ClockOK && now.Wall < l.wallDeadline && now.Mono < l.monoDeadline
}

// Remaining is how long the lease stays valid without a renewal (0 if not
// valid).
func (l *Lease) Remaining() time.Duration {
	if !l.Valid() {
		return 0
	}
	now := l.s.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(0, min(time.Duration(l.wallDeadline-now.Wall), l.monoDeadline-now.Mono))
}

// Done is closed the moment the lease may be lost: deadline reached without
// a renewal, renewal refused, clock unsafe, released, or node closed.
func (l *Lease) Done() <-chan struct{} { return l.ctx.Done() }

// Context is cancelled together with Done; run critical sections under it.
// context.Cause tells why (ErrExpired, ErrReleased, ...).
func (l *Lease) Context() context.Context { return l.ctx }

// Err is nil while the lease is live, then why it ended.
func (l *Lease) Err() error {
	if l.ctx.Err() == nil {
		return nil
	}
	return context.Cause(l.ctx)
}

// Renew forces a renewal round now and waits for it (leases renew
// automatically; this is for callers that want a fresh expiry). ErrNotOwner
// if the lease already ended.
func (l *Lease) Renew(ctx context.Context) error {
	w := newWaiter()
	var err error
	if e := l.s.n.do(ctx, l.res, func(s *shard) {
		r := s.state(l.res)
		if r.lease != l || l.ctx.Err() != nil {
			err = ErrNotOwner
			return
		}
		r.renews = append(r.renews, w)
		s.apply(s.mem.Renew(s.now(), l.res))
	}); e != nil {
		return e
	}
	if err != nil {
		return err
	}
	select {
	case res := <-w.ch:
		return res.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release ends the lease locally at once (Valid is false on return, Err is
// ErrReleased), then writes a released value so others can acquire without
// waiting for expiry. The remote write is best effort: an error means only
// that others may have to wait for the expiry. ErrNotOwner if the lease had
// already ended.
func (l *Lease) Release(ctx context.Context) error {
	if l.ctx.Err() != nil {
		return ErrNotOwner
	}
	l.end(ErrReleased)
	w := newWaiter()
	if err := l.s.n.do(ctx, l.res, func(s *shard) {
		r := s.state(l.res)
		if r.lease != l {
			w.ch <- result{} // already dropped by the loop (lost meanwhile)
			return
		}
		s.dropLease(r, ErrReleased)
		r.releases = append(r.releases, w)
		s.apply(s.mem.Release(s.now(), l.res))
	}); err != nil {
		return err
	}
	select {
	case res := <-w.ch:
		return res.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
