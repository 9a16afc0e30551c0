package lease

import (
	"context"
	"fmt"

	"coord/lease/internal/core"
)

// reasonErr maps a core reason to the package's sentinel.
func reasonErr(r core.Reason) error {
	switch r {
	case core.ReasonExpired:
		return ErrExpired
	case core.ReasonRenewFailed:
		return ErrRenewFailed
	case core.ReasonClockUnsafe:
		return ErrClockUnsafe
	case core.ReasonNoQuorum:
		return ErrNoQuorum
	case core.ReasonRecovering:
		return ErrRecovering
	}
	return fmt.Errorf("lease: %s", r)
}

func resolve(ws []*waiter, r result) {
	for _, w := range ws {
		w.ch <- r
	}
}

// event handles one core event on the loop.
func (s *shard) event(e core.Event) {
	r := s.state(e.Resource)
	switch e.Kind {
	case core.EvAcquired:
		h, ok := s.mem.Holding(e.Resource)
		if !ok {
			return
		}
		var w *waiter
		switch {
		case len(r.tries) > 0:
			w, r.tries = r.tries[0], r.tries[1:]
		case len(r.acquirers) > 0:
			w, r.acquirers = r.acquirers[0], r.acquirers[1:]
		default: // every caller gave up: give it back
			s.apply(s.mem.Release(s.now(), e.Resource))
			return
		}
		l := newLease(s, e.Resource, h)
		r.lease = l
		s.held++
		w.ch <- result{lease: l}
		// Later TryAcquire callers of the same round see it held (by us).
		resolve(r.tries, result{err: &HeldError{Holder: s.n.cfg.ID, Epoch: h.Value.Epoch, Expiry: l.Expiry()}})
		r.tries = nil
		s.n.log.Info("lease: acquired", logResource, e.Resource, logEpoch, h.Value.Epoch)
		s.publish(r, Event{Kind: EventAcquired, HolderInfo: infoOf(e.Resource, h.Value)})
	case core.EvRenewed:
		if r.lease != nil && r.lease.ctx.Err() != nil {
			// The handle already ended locally (its deadline timer won the
			// race with this renewal): never resurrect it; give it back.
			s.dropLease(r, context.Cause(r.lease.ctx))
			s.apply(s.mem.Release(s.now(), e.Resource))
			resolve(r.renews, result{err: ErrNotOwner})
			r.renews = nil
			return
		}
		if h, ok := s.mem.Holding(e.Resource); ok && r.lease != nil {
			r.lease.update(h)
			s.publish(r, Event{Kind: EventRenewed, HolderInfo: infoOf(e.Resource, h.Value)})
		}
		resolve(r.renews, result{})
		r.renews = nil
	case core.EvLost:
		err := reasonErr(e.Reason)
		s.dropLease(r, err)
		resolve(r.renews, result{err: err})
		r.renews = nil
		s.n.log.Warn("lease: lost", logResource, e.Resource, logEpoch, e.Value.Epoch, logReason, e.Reason.String())
		s.publish(r, Event{Kind: EventLost, HolderInfo: infoOf(e.Resource, e.Value), Err: err})
		s.next(e.Resource, r)
	case core.EvReleased:
		resolve(r.releases, result{})
		r.releases = nil
		s.next(e.Resource, r)
	case core.EvHeld:
		resolve(r.tries, result{err: &HeldError{Holder: e.Value.Owner, Epoch: e.Value.Epoch, Expiry: infoOf(e.Resource, e.Value).Expiry}})
		r.tries = nil
	case core.EvFailed:
		err := reasonErr(e.Reason)
		switch e.Op {
		case core.OpTry:
			resolve(r.tries, result{err: err})
			r.tries = nil
		case core.OpQuery:
			resolve(r.queries, result{err: err})
			r.queries = nil
		case core.OpRelease:
			resolve(r.releases, result{err: err})
			r.releases = nil
			s.next(e.Resource, r)
		}
	case core.EvHolder:
		resolve(r.queries, result{info: infoOf(e.Resource, e.Value)})
		r.queries = nil
	case core.EvLearned:
		s.publish(r, Event{Kind: EventHolderChanged, HolderInfo: infoOf(e.Resource, e.Value)})
	}
}

// dropLease ends the handed-out lease of r, if any.
func (s *shard) dropLease(r *resState, err error) {
	if r.lease != nil {
		r.lease.end(err)
		r.lease = nil
		s.held--
	}
}

// next starts the acquisition for the next blocked caller, if any, once no
// lease is handed out.
func (s *shard) next(res string, r *resState) {
	if r.lease == nil && len(r.acquirers) > 0 {
		s.apply(s.mem.Acquire(s.now(), res, true))
	}
}
