package par

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/coordpb"
	"coord/proto/parpb"
)

// lostState holds the identity and the background goroutines of a node
// (the announcer, the promoter), stopped by Store.Close.
type lostState struct {
	mu     sync.Mutex
	id     Identity
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (l *lostState) stop() {
	l.mu.Lock()
	c := l.cancel
	l.mu.Unlock()
	if c != nil {
		c()
	}
	l.wg.Wait()
}

// startBackground runs f on a goroutine the Store owns until Close.
func (s *Store) startBackground(f func(ctx context.Context)) {
	l := &s.lost
	l.mu.Lock()
	if l.cancel == nil {
		l.ctx, l.cancel = context.WithCancel(context.Background())
	}
	ctx := l.ctx
	l.mu.Unlock()
	l.wg.Add(1)
	go func() { defer l.wg.Done(); f(ctx) }()
}

// Identity returns the node's identity (zero before Recover ran).
func (s *Store) Identity() Identity {
	s.lost.mu.Lock()
	defer s.lost.mu.Unlock()
	return s.lost.id
}

// hasLog reports whether any log, identifier or snapshot exists.
func (s *Store) hasLog() bool {
	s.Log.mu.RLock()
	last := s.Log.j.view.last
	s.Log.mu.RUnlock()
	bl, _ := s.bolt.LastIndex()
	return last > 0 || bl > 0 || hasSnapshots(s.cfg.Dir)
}

// helloAll sends req to every peer and returns the answers (nil for a peer
// that did not answer or belongs to another cluster).
func (c *Client) helloAll(ctx context.Context, req *parpb.HelloRequest) []*parpb.HelloResponse {
	out := make([]*parpb.HelloResponse, len(c.peers))
	var wg sync.WaitGroup
	for k, p := range c.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := c.conn(p)
			if err != nil {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, c.CallTimeout)
			defer cancel()
			r, err := cl.Hello(cctx, req, grpc.WaitForReady(true))
			if err != nil || string(r.ClusterId) != string(req.ClusterId) {
				return
			}
			out[k] = r
		}()
	}
	wg.Wait()
	return out
}

// ensureIdentity runs first in Recover (design §4.8). A node with an
// identity checks it and announces it; a node with raft data but no
// readable identity re-derives it (from what peers recorded, else
// incarnation 1); a node with nothing at all asks its peers and refuses
// to start when any of them knows its name (ErrNaiveReformat), unless
// cfg.LostNode runs the lost-node procedure instead.
func (s *Store) ensureIdentity(ctx context.Context, c *Client) error {
	names := []Peer{{Name: s.cfg.Name}}
	for _, p := range c.peers {
		names = append(names, Peer{Name: p.Name})
	}
	cid := ClusterID(names)
	id, st, err := LoadIdentity(s.cfg.Dir, s.cfg.NoSync)
	if err != nil {
		return err
	}
	_, hasMeta := s.Stable.DurableTerm()
	hasTerm := false
	if t, ok := s.Stable.DurableTerm(); ok && t > 0 {
		hasTerm = true
	}
	switch {
	case s.cfg.LostNode:
		if s.hasLog() {
			return ErrNotLost
		}
		return s.recoverLostNode(ctx, c, cid, id)
	case st == IdentityValid:
		if id.ClusterID != cid || id.Name != s.cfg.Name {
			return fmt.Errorf("%w: identity says node %q, this is %q", ErrWrongCluster, id.Name, s.cfg.Name)
		}
		if !s.hasLog() && !hasTerm {
			// Identity kept, log and term/vote gone: the same loss as a
			// wiped dir.
			if err := s.refuseIfKnown(ctx, c, cid); err != nil {
				return err
			}
		}
	case s.hasLog() || (hasMeta && hasTerm) || s.Stable.Amnesic():
		// Data from before identities existed, or both identity copies
		// lost: the data is this incarnation's, so take what peers recorded.
		id = Identity{Name: s.cfg.Name, NodeID: newNodeID(), ClusterID: cid, Incarnation: 1, CreatedAt: time.Now()}
		for _, r := range c.helloAll(ctx, &parpb.HelloRequest{Name: s.cfg.Name, ClusterId: cid[:]}) {
			if r != nil && r.Known && r.KnownIncarnation >= id.Incarnation && len(r.KnownNodeId) == 16 {
				id.Incarnation = r.KnownIncarnation
				copy(id.NodeID[:], r.KnownNodeId)
			}
		}
		if err := WriteIdentity(s.cfg.Dir, id, s.cfg.NoSync); err != nil {
			return err
		}
	default:
		if err := s.refuseIfKnown(ctx, c, cid); err != nil {
			return err
		}
		id = Identity{Name: s.cfg.Name, NodeID: newNodeID(), ClusterID: cid, Incarnation: 1, CreatedAt: time.Now()}
		if err := WriteIdentity(s.cfg.Dir, id, s.cfg.NoSync); err != nil {
			return err
		}
	}
	s.lost.mu.Lock()
	s.lost.id = id
	s.lost.mu.Unlock()
	return s.announce(ctx, c, id, st != IdentityValid)
}

// freshWait bounds how long a node without identity waits for peers to
// answer whether they know it (and to record a new identity) before it
// starts anyway: a fresh cluster whose nodes start one after another, or
// whose peers refuse this node's certificate, must still start. The
// refusal therefore needs one peer that knows the name to answer within
// this time (docs/PAR.md).
const freshWait = 3 * time.Second

// refuseIfKnown asks the peers about this node's name until at least
// Q-1 of them (with this node, a quorum) answered, or freshWait passed;
// any peer that knows the name makes the node refuse to start.
func (s *Store) refuseIfKnown(ctx context.Context, c *Client, cid [16]byte) error {
	need := (len(c.peers)+1)/2 + 1 - 1
	deadline := time.Now().Add(freshWait)
	for {
		n := 0
		for _, r := range c.helloAll(ctx, &parpb.HelloRequest{Name: s.cfg.Name, ClusterId: cid[:]}) {
			if r == nil {
				continue
			}
			if r.Known {
				return fmt.Errorf("%w (peer %s knows incarnation %d)", ErrNaiveReformat, r.Responder, r.KnownIncarnation)
			}
			n++
		}
		if n >= need {
			return nil
		}
		if time.Now().After(deadline) {
			s.log.Warn("par: starting as a new node although too few peers answered whether they know it", "answered", n, "need", need)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: only %d of %d peers answered whether they know %s: %w", ErrUnrecoverable, n, need, s.cfg.Name, ctx.Err())
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// announce tells the peers this node's identity. A new identity (wait)
// must be recorded by at least Q-1 peers before raft starts, so that a
// later naive reformat is caught even with one peer down; the rest, and
// every peer for an identity loaded from disk, are told in the background
// until Close.
func (s *Store) announce(ctx context.Context, c *Client, id Identity, wait bool) error {
	req := &parpb.HelloRequest{Name: id.Name, ClusterId: id.ClusterID[:], NodeId: id.NodeID[:], Incarnation: id.Incarnation}
	need := (len(c.peers)+1)/2 + 1 - 1
	stored := make([]bool, len(c.peers))
	count := func(ctx context.Context) int {
		n := 0
		for k, r := range c.helloAll(ctx, req) {
			if r != nil && r.Stored {
				stored[k] = true
			}
		}
		for _, ok := range stored {
			if ok {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(freshWait)
	for wait && count(ctx) < need && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: fewer than %d peers recorded this node's identity: %w", ErrUnrecoverable, need, ctx.Err())
		case <-time.After(150 * time.Millisecond):
		}
	}
	if wait && count(ctx) == len(c.peers) {
		return nil
	}
	s.startBackground(func(ctx context.Context) {
		for ctx.Err() == nil {
			if count(ctx) == len(c.peers) {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	})
	return nil
}

// recoverLostNode is `coordctl par recover` / `coordd --par-recover`
// (design §4.8): demote this id to a non-voter (so a stale matchIndex of
// the old incarnation counts for nothing), learn the max durable term of
// EVERY other voter, write it with the sentinel vote and the vote
// quarantine, write a new incarnation whose PromoteAt is the leader's
// commit index, and announce it. After raft starts, the promoter makes the
// node a voter again once it holds that index.
func (s *Store) recoverLostNode(ctx context.Context, c *Client, cid [16]byte, old Identity) error {
	if s.cfg.Addr == "" {
		return errors.New("par: lost-node recovery needs this node's address (Config.Addr)")
	}
	m := membership{c: c}
	if err := retry(ctx, "demote "+s.cfg.Name, func(ctx context.Context) error {
		return m.demote(ctx, s.cfg.Name, s.cfg.Addr)
	}); err != nil {
		return err
	}
	var target uint64
	if err := retry(ctx, "read the leader's commit index", func(ctx context.Context) (err error) {
		target, err = m.commitIndex(ctx)
		return err
	}); err != nil {
		return err
	}
	var term uint64
	if err := retry(ctx, "ask every voter for its durable term", func(ctx context.Context) error {
		t, ok := c.allTerms(ctx)
		if !ok {
			return errors.New("not every voter answered")
		}
		term = t
		return nil
	}); err != nil {
		return err
	}
	if t, ok := s.Stable.DurableTerm(); ok && t > term {
		term = t
	}
	inc := old.Incarnation
	for _, r := range c.helloAll(ctx, &parpb.HelloRequest{Name: s.cfg.Name, ClusterId: cid[:]}) {
		if r != nil && r.Known {
			inc = max(inc, r.KnownIncarnation)
		}
	}
	if err := s.Stable.recoverAmnesia(term); err != nil {
		return err
	}
	if err := s.Stable.SetQuarantine(true); err != nil {
		return err
	}
	id := Identity{Name: s.cfg.Name, NodeID: newNodeID(), ClusterID: cid, Incarnation: inc + 1, CreatedAt: time.Now(), PromoteAt: max(target, 1)}
	if err := WriteIdentity(s.cfg.Dir, id, s.cfg.NoSync); err != nil {
		return err
	}
	s.log.Warn("par: lost node recovered as a non-voter; promotion pending", "term", term, "incarnation", id.Incarnation, "promote_at", id.PromoteAt)
	s.lost.mu.Lock()
	s.lost.id = id
	s.lost.mu.Unlock()
	return s.announce(ctx, c, id, true)
}

// PrepareLostNode runs the offline part of `coordctl par recover` on a
// stopped node's data dir: the same steps as coordd --par-recover up to
// the pending promotion, which the node completes when it next starts.
func PrepareLostNode(ctx context.Context, cfg Config, c *Client) (Identity, error) {
	cfg.LostNode = true
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return Identity{}, fmt.Errorf("par recover: %w", err)
	}
	st, err := Open(cfg)
	if err != nil {
		return Identity{}, err
	}
	defer st.Close()
	if err := st.ensureIdentity(ctx, c); err != nil {
		return Identity{}, err
	}
	return st.Identity(), nil
}

// startPromoter runs while a promotion is pending: once raft's commit
// index (SetCommitFloor) reaches id.PromoteAt, it asks the leader to make
// this node a voter again, clears PromoteAt and the vote quarantine.
func (s *Store) startPromoter(c *Client) {
	id := s.Identity()
	if id.PromoteAt == 0 {
		return
	}
	if err := s.Stable.SetQuarantine(true); err != nil {
		s.log.Error("par: set vote quarantine", "err", err)
	}
	s.startBackground(func(ctx context.Context) {
		m := membership{c: c}
		for ctx.Err() == nil {
			if s.floor() >= id.PromoteAt {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := m.promote(cctx, s.cfg.Name, s.cfg.Addr)
				cancel()
				if err == nil {
					id.PromoteAt = 0
					err = WriteIdentity(s.cfg.Dir, id, s.cfg.NoSync)
					if err == nil {
						err = s.Stable.SetQuarantine(false)
					}
					if err == nil {
						s.lost.mu.Lock()
						s.lost.id = id
						s.lost.mu.Unlock()
						s.log.Warn("par: recovered node promoted to voter", "incarnation", id.Incarnation)
						return
					}
					s.log.Error("par: finish promotion", "err", err)
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

// Promoted reports whether no promotion is pending.
func (s *Store) Promoted() bool { return s.Identity().PromoteAt == 0 }

func retry(ctx context.Context, what string, f func(ctx context.Context) error) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := f(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: %w (last: %v)", ErrUnrecoverable, what, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// membership changes the raft configuration through the peers' Peer
// service (ChangeMembers and ReadIndex run on the leader; others answer
// NOT_LEADER and the next peer is tried).
type membership struct{ c *Client }

func (m membership) onLeader(ctx context.Context, f func(ctx context.Context, pc coordpb.PeerClient) error) error {
	var errs []error
	for _, p := range m.c.peers {
		cc, err := m.c.grpcConn(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = f(ctx, coordpb.NewPeerClient(cc))
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
	}
	return errors.Join(errs...)
}

func (m membership) demote(ctx context.Context, name, addr string) error {
	return m.onLeader(ctx, func(ctx context.Context, pc coordpb.PeerClient) error {
		_, err := pc.ChangeMembers(ctx, &coordpb.ChangeMembersRequest{Change: &coordpb.ChangeMembersRequest_Remove{Remove: &coordpb.RemoveMemberRequest{Name: name}}})
		if err != nil && status.Code(err) != codes.FailedPrecondition { // FailedPrecondition: not a member any more
			return err
		}
		_, err = pc.ChangeMembers(ctx, &coordpb.ChangeMembersRequest{Change: &coordpb.ChangeMembersRequest_Add{Add: &coordpb.AddMemberRequest{Name: name, Address: addr, NonVoter: true}}})
		return err
	})
}

func (m membership) promote(ctx context.Context, name, addr string) error {
	return m.onLeader(ctx, func(ctx context.Context, pc coordpb.PeerClient) error {
		_, err := pc.ChangeMembers(ctx, &coordpb.ChangeMembersRequest{Change: &coordpb.ChangeMembersRequest_Add{Add: &coordpb.AddMemberRequest{Name: name, Address: addr}}})
		return err
	})
}

func (m membership) commitIndex(ctx context.Context) (uint64, error) {
	var idx uint64
	err := m.onLeader(ctx, func(ctx context.Context, pc coordpb.PeerClient) error {
		r, err := pc.ReadIndex(ctx, &coordpb.ReadIndexRequest{})
		if err == nil {
			idx = r.Index
		}
		return err
	})
	return idx, err
}

// promotionPending reports whether dir's identity says a lost-node
// recovery is waiting for its promotion (the node holds a term but no log
// yet, which is not ErrLostLog).
func promotionPending(dir string) bool {
	id, st, _ := LoadIdentity(dir, true)
	return st == IdentityValid && id.PromoteAt != 0
}
