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

// rounds coalesces follower keepalives into shared rounds to the leader,
// one round in flight at a time, whatever the keepalive rate. A caller
// joins the next round, never one already in flight (a round started
// before the keepalive arrived could predate an expiry the keepalive must
// see); rounds run back to back, so a caller waits at most two rounds.
// The round goroutine runs while callers are waiting and returns when
// none are; run bounds each round itself.
//
// Two are used:
//
//   - sync: the read-index rounds of keepalives a follower answers from a
//     linearizable point (a session it does not know yet). One Sync per
//     keepalive made every follower keepalive a ReadIndex RPC to the
//     leader: with 10,000 sessions, thousands a second, enough to starve a
//     loaded leader until sessions expired while their clients were
//     sending keepalives.
//
//   - relay: a follower's own path for keepalives of sessions it already
//     knows: the ids go straight to the leader (one KeepAlives peer RPC
//     per round) and the follower answers from the leader's reply. No
//     read-index round, no wait for this node to apply: under overload a
//     follower's keepalive no longer waits behind the leader's leadership
//     checks for linearizable reads or behind this follower's apply
//     backlog (a follower answering thousands of forwarded writes a second
//     fell seconds behind, and its sessions expired while their clients
//     kept sending keepalives).
//
// Safety of the relay: the follower says "alive" only when the leader, in
// a round that started after the keepalive arrived, found the session in
// its applied state, not being expired and not past its deadline, and
// moved the deadline (sessionManager.touchLive) — what a keepalive sent
// to the leader itself guarantees, and no weaker than the read-index path
// it replaces for known sessions. The owner check stays on the follower
// (a session's owner never changes, so a follower that knows the session
// knows its owner).
type rounds struct {
	// run performs one round for ids (none for sync rounds) and returns
	// the ids the leader does not hold live.
	run func(ids []uint64) (unknown []uint64, err error)

	mu      sync.Mutex
	next    *round // collecting callers, not started
	running bool
}

type round struct {
	ids     map[uint64]struct{}
	done    chan struct{}
	unknown map[uint64]struct{} // set before done closes
	err     error
}

// join adds ids to the next round and returns it once it has run.
func (k *rounds) join(ctx context.Context, ids ...uint64) (*round, error) {
	k.mu.Lock()
	if k.next == nil {
		k.next = &round{ids: map[uint64]struct{}{}, done: make(chan struct{})}
	}
	r := k.next
	for _, id := range ids {
		r.ids[id] = struct{}{}
	}
	if !k.running {
		k.running = true
		go k.loop()
	}
	k.mu.Unlock()
	select {
	case <-r.done:
		return r, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (k *rounds) loop() {
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
		unknown, err := k.run(ids)
		r.err = err
		r.unknown = make(map[uint64]struct{}, len(unknown))
		for _, id := range unknown {
			r.unknown[id] = struct{}{}
		}
		close(r.done)
	}
}

// syncRound is the sync rounds' run: one Sync (read index) on s.
func (s *Server) syncRound([]uint64) ([]uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.leaderWait())
	defer cancel()
	_, err := s.Sync(ctx)
	return nil, err
}

// relayRound is the relay rounds' run: ids touched on the leader.
func (s *Server) relayRound(ids []uint64) ([]uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.leaderWait())
	defer cancel()
	return s.keepAlivesAtLeader(ctx, ids)
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
// (rounds: relay) when this node knows the session; handled is false
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
	r, err := s.sess.kaRelay.join(ctx, id)
	if err != nil {
		return 0, true, err
	}
	if _, ok := r.unknown[id]; ok {
		s.sess.mu.Lock()
		s.sess.refused("leader_refused", id, nil)
		s.sess.mu.Unlock()
		return 0, true, fmt.Errorf("%w: session %#x", tree.ErrSessionExpired, id)
	}
	return timeout, true, nil
}

// touchLive is the leader's side of a keepalive a follower relays: the
// deadline moves only for a session that is in the leader's applied
// state, whose expiry is not in flight and whose deadline has not passed.
// A session missing from t gives errNotInState, counted as a refusal only
// when final (after the caller's read-index round).
func (m *sessionManager) touchLive(id uint64, via string, t *tree.Tree, final bool) error {
	ms, ok := t.SessionTimeout(id)
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !ok {
		if final {
			m.refused("not_in_state", id, nil)
		}
		return errNotInState
	}
	if !m.leading {
		// Leading since less than a tick: the table is not this term's
		// yet; the first tick gives every session now+timeout (Reset),
		// which is no earlier than what the client hears.
		return nil
	}
	if m.expiring[id] {
		m.refused("expiring", id, nil)
		return session.ErrUnknown
	}
	if x, due := m.table.Explain(id, now); due {
		m.refused("", id, &x)
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
