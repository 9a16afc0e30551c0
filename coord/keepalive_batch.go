package coord

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"coord/coord/replica"
	"coord/coord/rpc"
	"coord/coord/tree"
	"coord/proto/coordpb"
	"coord/session"

	"google.golang.org/grpc/metadata"
)

// keepAliveSync coalesces the read-index rounds that follower keepalives
// need (KeepAlive answers from a linearizable point, so a client never
// hears "alive" after its session ended). One Sync per keepalive made
// every follower keepalive a ReadIndex RPC to the leader: with 10,000
// sessions, thousands a second, enough to starve a loaded leader until
// sessions expired while their clients were sending keepalives.
//
// A keepalive joins the next round, never one already in flight (a
// round started before the keepalive arrived could predate an expiry
// the keepalive must see); rounds run back to back, so a keepalive waits
// at most two rounds, and a follower sends at most one ReadIndex per
// round trip whatever the keepalive rate.
//
// The round goroutine runs while keepalives are waiting and returns when
// none are; Sync itself gives up when the server stops.
type keepAliveSync struct {
	mu      sync.Mutex
	next    *syncRound // collecting keepalives, not started
	running bool
}

type syncRound struct {
	done chan struct{}
	err  error
}

// wait returns once a Sync that started after the call has completed.
func (k *keepAliveSync) wait(ctx context.Context, s *Server) error {
	k.mu.Lock()
	if k.next == nil {
		k.next = &syncRound{done: make(chan struct{})}
	}
	r := k.next
	if !k.running {
		k.running = true
		go k.rounds(s)
	}
	k.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *keepAliveSync) rounds(s *Server) {
	for {
		k.mu.Lock()
		r := k.next
		k.next = nil
		if r == nil {
			k.running = false
			k.mu.Unlock()
			return
		}
		k.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.leaderWait())
		_, r.err = s.Sync(ctx)
		cancel()
		close(r.done)
	}
}

// keepAliveRelay is a follower's own path for keepalives of sessions it
// already knows: they go straight to the leader in shared rounds (one
// KeepAlives peer RPC per round, whatever the keepalive rate) and the
// follower answers from the leader's reply. No read-index round, no wait
// for this node to apply: under overload a follower's keepalive no
// longer waits behind the leader's leadership checks for linearizable
// reads or behind this follower's apply backlog (a follower answering
// thousands of forwarded writes a second fell seconds behind, and its
// sessions expired while their clients kept sending keepalives).
//
// Safety: the follower says "alive" only when the leader, in a round
// that started after the keepalive arrived, found the session in its
// applied state, not being expired and not past its deadline, and moved
// the deadline (sessionManager.touchLive) — what a keepalive sent to the
// leader itself guarantees, and no weaker than the read-index path it
// replaces for known sessions. The owner check stays on the follower
// (a session's owner never changes, so a follower that knows the session
// knows its owner); a session the follower does not know yet (opened
// moments ago) still takes the read-index path (keepAliveSync).
type keepAliveRelay struct {
	mu      sync.Mutex
	next    *relayRound // collecting keepalives, not started
	running bool
}

type relayRound struct {
	ids     map[uint64]struct{}
	done    chan struct{}
	unknown map[uint64]struct{} // set before done closes
	err     error
}

// keepAlive returns nil once the leader touched id in a round that started
// after the call, tree.ErrSessionExpired if the leader does not hold it
// live.
func (k *keepAliveRelay) keepAlive(ctx context.Context, s *Server, id uint64) error {
	k.mu.Lock()
	if k.next == nil {
		k.next = &relayRound{ids: map[uint64]struct{}{}, done: make(chan struct{})}
	}
	r := k.next
	r.ids[id] = struct{}{}
	if !k.running {
		k.running = true
		go k.rounds(s)
	}
	k.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.err != nil {
		return r.err
	}
	if _, ok := r.unknown[id]; ok {
		return fmt.Errorf("%w: session %#x", tree.ErrSessionExpired, id)
	}
	return nil
}

func (k *keepAliveRelay) rounds(s *Server) {
	for {
		k.mu.Lock()
		r := k.next
		k.next = nil
		if r == nil {
			k.running = false
			k.mu.Unlock()
			return
		}
		k.mu.Unlock()
		ids := make([]uint64, 0, len(r.ids))
		for id := range r.ids {
			ids = append(ids, id)
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.leaderWait())
		unknown, err := s.keepAlivesAtLeader(ctx, ids)
		cancel()
		r.err = err
		r.unknown = make(map[uint64]struct{}, len(unknown))
		for _, id := range unknown {
			r.unknown[id] = struct{}{}
		}
		close(r.done)
	}
}

// keepAlivesAtLeader touches ids on the leader (this node, if it leads by
// now) and returns the ones the leader does not hold live.
func (s *Server) keepAlivesAtLeader(ctx context.Context, ids []uint64) ([]uint64, error) {
	var unknown []uint64
	err := s.onLeader(ctx, func(ctx context.Context) error {
		var err error
		unknown, err = s.KeepAlivesLocal(ctx, ids)
		return err
	}, func(ctx context.Context, c coordpb.PeerClient, _ string) error {
		if s.sess.relayBlocked.Load() {
			return replica.ErrNoLeader // tests: as if the leader could not be reached
		}
		// The leader's expiry guard measures keepalive intake per
		// follower: name this node (relayFromKey).
		ctx = metadata.AppendToOutgoingContext(ctx, relayFromKey, s.cfg.Name)
		resp, err := c.KeepAlives(ctx, &coordpb.KeepAlivesRequest{SessionIds: ids})
		if err != nil {
			if errors.Is(rpc.FromStatus(err), rpc.ErrPeerUnreachable) {
				return replica.ErrNoLeader
			}
			return err
		}
		unknown = resp.GetUnknown()
		return nil
	})
	return unknown, err
}

// followerKeepAlive answers a keepalive on a follower through the leader
// (keepAliveRelay) when this node knows the session; handled is false
// when it does not, and the caller takes the read-index path.
func (s *Server) followerKeepAlive(ctx context.Context, id uint64) (timeout int64, handled bool, err error) {
	t, _ := s.rep.State()
	timeout, err = t.CheckSession(id, rpc.CallerFrom(ctx))
	if errors.Is(err, tree.ErrSessionExpired) {
		return 0, false, nil // not applied here yet, or gone: ask a linearizable point
	}
	if err != nil {
		return 0, true, err // not the owner: the owner never changes
	}
	if err := s.sess.kaRelay.keepAlive(ctx, s, id); err != nil {
		return 0, true, err
	}
	return timeout, true, nil
}

// touchLive is the leader's side of a keepalive a follower relays: the
// deadline moves only for a session that is in the leader's applied
// state, whose expiry is not in flight and whose deadline has not passed.
func (m *sessionManager) touchLive(id uint64, via string, t *tree.Tree) error {
	ms, ok := t.SessionTimeout(id)
	if !ok {
		return session.ErrUnknown
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.leading {
		// Leading since less than a tick: the table is not this term's
		// yet; the first tick gives every session now+timeout (Reset),
		// which is no earlier than what the client hears.
		return nil
	}
	if m.expiring[id] {
		return session.ErrUnknown
	}
	if m.table.Due(id, now) {
		return session.ErrUnknown // past its deadline (or the guard's bound): the next tick expires it
	}
	if _, err := m.table.TouchVia(id, via, now); errors.Is(err, session.ErrUnknown) {
		// Opened moments ago and not synced into the table yet.
		m.table.Add(session.Info{ID: id, Timeout: time.Duration(ms) * time.Millisecond}, now)
		m.table.TouchVia(id, via, now)
	} else if err != nil {
		return err
	}
	return nil
}
