package coord

import (
	"context"
	"errors"
	"time"

	"coord/coord/replica"
	"coord/coord/tree"
	"coord/proto/coordpb"
)

// Event push. hashicorp/raft tells a follower that entries committed only
// with its next append to it, which an idle leader sends after
// CommitTimeout..2×CommitTimeout; a follower's watchers would hear of every
// change that much later than the leader's. So a follower that serves
// watch streams pulls the leader's applied events over Peer.Events and
// merges them into its watch history (watchHub.publishPushed): its
// watchers hear of a change about one loopback hop after the leader
// applies it. Its own apply later brings the same events, which the hub
// skips. The follower's tree is not touched: a read that must reflect an
// event the client has seen carries that zxid as min_zxid, and a follower
// that has not applied it yet passes the read to the leader (leader.go).

// pullIdle is how long a follower keeps pulling after its last watch
// stream closed.
const pullIdle = 2 * time.Second

// EventsLocal implements rpc.EventSource: stream this leader's applied
// events after req.After until the follower hangs up or this node stops
// leading.
func (s *Server) EventsLocal(req *coordpb.EventsRequest, stream coordpb.Peer_EventsServer) error {
	ctx := stream.Context()
	cursor := req.GetAfter()
	for {
		if !s.rep.IsLeader() {
			return replica.ErrNotLeader
		}
		evs, upTo, floor, changed := s.watches.since(cursor)
		if cursor < floor {
			return stream.Send(&coordpb.EventBatch{Compacted: true})
		}
		if upTo > cursor {
			b := &coordpb.EventBatch{Prev: cursor, Applied: upTo, Events: make([]*coordpb.WatchEvent, len(evs))}
			for i, e := range evs {
				b.Events[i] = eventPB(e)
			}
			if err := stream.Send(b); err != nil {
				return err
			}
			cursor = upTo
			if len(evs) >= maxPull {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.stop:
			return ErrStopped
		case <-changed:
		}
	}
}

// pullEvents runs on every node for the server's life: while this node
// follows a known leader and serves at least one watch stream (or did
// within pullIdle), it keeps a Peer.Events stream open to the leader.
func (s *Server) pullEvents() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		if s.watchStreams.Load() == 0 || s.rep.IsLeader() {
			continue
		}
		_, addr := s.rep.Leader()
		if addr == "" {
			continue
		}
		err := s.pullFrom(addr)
		if errors.Is(err, ErrStopped) {
			return
		}
		if err != nil {
			s.log.Debug("event pull from the leader ended", "leader", addr, "err", err)
			select {
			case <-s.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

// pullFrom streams events from the leader at addr until the stream fails,
// the leader changes, this node has had no watch stream for pullIdle, or
// the hub refuses a batch (it was left behind; the next pull starts from
// where the hub stands).
func (s *Server) pullFrom(addr string) error {
	c, err := s.peers.get(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() { // ends the pull when it is no longer wanted
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		idleSince := time.Time{}
		for {
			select {
			case <-done:
				return
			case <-s.stop:
				cancel()
				return
			case <-t.C:
			}
			if _, now := s.rep.Leader(); now != addr || s.rep.IsLeader() {
				cancel()
				return
			}
			if s.watchStreams.Load() > 0 {
				idleSince = time.Time{}
			} else if idleSince.IsZero() {
				idleSince = time.Now()
			} else if time.Since(idleSince) > pullIdle {
				cancel()
				return
			}
		}
	}()
	applied, _ := s.watches.position()
	stream, err := c.Events(ctx, &coordpb.EventsRequest{After: applied})
	if err != nil {
		return err
	}
	for {
		b, err := stream.Recv()
		if err != nil {
			select {
			case <-s.stop:
				return ErrStopped
			default:
			}
			if ctx.Err() != nil {
				return nil // we ended it
			}
			return err
		}
		if b.GetCompacted() {
			// Too far behind the leader's history: our own apply has to
			// catch up first.
			return errors.New("leader's event history does not reach back far enough")
		}
		evs := make([]tree.Event, len(b.GetEvents()))
		for i, e := range b.GetEvents() {
			evs[i] = eventFromPB(e)
		}
		if !s.watches.publishPushed(b.GetPrev(), b.GetApplied(), evs) {
			return errors.New("pushed events do not continue the history")
		}
	}
}

func eventFromPB(e *coordpb.WatchEvent) tree.Event {
	t := tree.EventType(0)
	switch e.GetType() {
	case coordpb.EventType_NODE_CREATED:
		t = tree.EventNodeCreated
	case coordpb.EventType_NODE_DELETED:
		t = tree.EventNodeDeleted
	case coordpb.EventType_NODE_DATA_CHANGED:
		t = tree.EventNodeDataChanged
	case coordpb.EventType_NODE_CHILDREN_CHANGED:
		t = tree.EventNodeChildrenChanged
	}
	return tree.Event{Type: t, Path: e.GetPath(), Zxid: e.GetZxid()}
}
