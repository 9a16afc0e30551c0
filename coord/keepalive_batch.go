package coord

import (
	"context"
	"sync"
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
