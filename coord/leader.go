package coord

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	"coord/coord/replica"
	"coord/coord/rpc"
	"coord/coord/tree"
	"coord/proto/coordpb"
)

// leaderWait bounds how long a request waits for a leader to appear when
// its context has no earlier deadline: Unavailable, never a hang.
func (s *Server) leaderWait() time.Duration {
	et := s.cfg.ElectionTimeout
	if et == 0 {
		et = replica.DefaultElectionTimeout
	}
	return max(3*et, 3*time.Second)
}

// onLeader runs local when this node leads, else remote against the
// leader's Peer service; while no leader is known, or the leader moved, it
// retries until the context (or leaderWait) runs out.
func (s *Server) onLeader(ctx context.Context, local func(context.Context) error, remote func(ctx context.Context, c coordpb.PeerClient, addr string) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.leaderWait())
	defer cancel()
	backoff := 5 * time.Millisecond
	var last error
	for {
		var err error
		if s.rep.IsLeader() {
			err = local(ctx)
		} else if _, addr := s.rep.Leader(); addr != "" {
			var c coordpb.PeerClient
			if c, err = s.peers.get(addr); err == nil {
				err = rpc.FromStatus(remote(ctx, c, addr))
			}
		} else {
			err = replica.ErrNoLeader
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, replica.ErrNotLeader) && !errors.Is(err, replica.ErrNoLeader) {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up waiting: %v; last: %v)", replica.ErrNoLeader, ctx.Err(), last)
		case <-s.stop:
			return ErrStopped
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// Write implements rpc.Backend: replicate through the leader.
func (s *Server) Write(ctx context.Context, cmd *coordpb.Command) (*coordpb.ApplyResult, error) {
	var res *coordpb.ApplyResult
	var forwarded []byte
	err := s.onLeader(ctx, func(ctx context.Context) error {
		var err error
		res, err = s.propose(ctx, cmd)
		return err
	}, func(ctx context.Context, c coordpb.PeerClient, addr string) error {
		if forwarded == nil {
			b, err := replica.EncodeCommand(cmd)
			if err != nil {
				return err
			}
			forwarded = b
		}
		var err error
		res, err = s.fwd.get(s, addr, c).forward(ctx, forwarded)
		return err
	})
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, errors.New("write: leader returned no result")
	}
	// A forwarded write is answered as soon as the leader commits it: this
	// follower learns the commit only with raft's next append (up to two
	// CommitTimeouts later), and waiting for that would add milliseconds to
	// every forwarded write. Reads stay consistent without it: a
	// linearizable read waits for the read index, a local read for the
	// client's min_zxid, both at least this write's zxid.
	return res, nil
}

// propose stamps the leader's clock into cmd and replicates it.
func (s *Server) propose(ctx context.Context, cmd *coordpb.Command) (*coordpb.ApplyResult, error) {
	// A new envelope sharing cmd's (read-only) body: the caller's message
	// is not changed, and nothing is deep-copied (proto.Clone here was 8%
	// of a leader's CPU at 128 writers).
	c := &coordpb.Command{TimeMs: time.Now().UnixMilli(), Cmd: cmd.Cmd}
	b, err := replica.EncodeCommand(c)
	if err != nil {
		return nil, err
	}
	res, err := s.rep.Propose(ctx, b)
	if err == nil && s.cfg.NudgeFollowers {
		s.rep.Nudge()
	}
	return res, err
}

// neverSent reports whether a failed peer call failed while dialing, so
// the request cannot have reached the peer.
func neverSent(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Error while dialing") || strings.Contains(msg, "connection refused")
}

// ProposeLocal implements rpc.Backend: a follower forwarded a write.
func (s *Server) ProposeLocal(ctx context.Context, b []byte) (*coordpb.ApplyResult, error) {
	cmd, err := replica.DecodeCommand(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", tree.ErrInvalidArgument, err)
	}
	if !s.rep.IsLeader() {
		return nil, replica.ErrNotLeader
	}
	return s.propose(ctx, cmd)
}

// ReadIndexLocal implements rpc.Backend (leader only).
func (s *Server) ReadIndexLocal(ctx context.Context) (uint64, error) {
	return s.rep.ReadIndex(ctx)
}

// readIndex finds a linearizable read point, locally or at the leader.
func (s *Server) readIndex(ctx context.Context) (uint64, error) {
	var idx uint64
	err := s.onLeader(ctx, func(ctx context.Context) error {
		var err error
		idx, err = s.rep.ReadIndex(ctx)
		return err
	}, func(ctx context.Context, c coordpb.PeerClient, _ string) error {
		resp, err := c.ReadIndex(ctx, &coordpb.ReadIndexRequest{})
		if err != nil {
			if errors.Is(rpc.FromStatus(err), rpc.ErrPeerUnreachable) {
				return replica.ErrNoLeader
			}
			return err
		}
		idx = resp.GetIndex()
		return nil
	})
	return idx, err
}

// Read implements rpc.Backend.
func (s *Server) Read(ctx context.Context, opts *coordpb.ReadOptions) (*tree.Tree, uint64, error) {
	if opts.GetConsistency() == coordpb.Consistency_LOCAL || s.cfg.UnsafeLocalReads {
		// (UnsafeLocalReads, the nemesis teeth test's broken mode, serves
		// linearizable reads here too, and must stay broken: no redirect.)
		local := opts.GetConsistency() == coordpb.Consistency_LOCAL
		if minZxid := opts.GetMinZxid(); local && s.rep.Applied() < minZxid && !s.rep.IsLeader() && !rpc.NoRedirect(ctx) {
			// The client has seen a write this follower has not applied
			// yet (it learns commits with raft's next append, up to two
			// CommitTimeouts away): the leader serves it without the wait.
			if _, addr := s.rep.Leader(); addr != "" {
				return nil, 0, &rpc.BehindError{Leader: addr, Index: minZxid}
			}
		}
		if err := s.rep.WaitApplied(ctx, opts.GetMinZxid()); err != nil {
			return nil, 0, err
		}
		t, applied := s.rep.State()
		return t, applied, nil
	}
	idx, err := s.readIndex(ctx)
	if err != nil {
		return nil, 0, err
	}
	if s.rep.Applied() < idx && !s.rep.IsLeader() && !rpc.NoRedirect(ctx) {
		// A follower learns commits only with raft's next append (up to
		// two CommitTimeouts away): rather than wait, let the leader,
		// which has applied idx or is about to, serve the read.
		if _, addr := s.rep.Leader(); addr != "" {
			return nil, 0, &rpc.BehindError{Leader: addr, Index: idx}
		}
	}
	if err := s.rep.WaitApplied(ctx, idx); err != nil {
		return nil, 0, err
	}
	t, applied := s.rep.State()
	return t, applied, nil
}

// LeaderCoord implements rpc.Backend.
func (s *Server) LeaderCoord(addr string) (coordpb.CoordClient, error) {
	return s.peers.coord(addr)
}

// Sync implements rpc.Backend.
func (s *Server) Sync(ctx context.Context) (uint64, error) {
	idx, err := s.readIndex(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.rep.WaitApplied(ctx, idx); err != nil {
		return 0, err
	}
	return s.rep.Applied(), nil
}

// peerConns caches one gRPC connection per peer address.
type peerConns struct {
	creds credentials.TransportCredentials
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// peerConnectParams: a peer that was down (killed, partitioned, restarted)
// is redialled within about a second of coming back. gRPC's default
// backoff grows to 120 s, so after a long outage forwarded writes,
// keepalive relays and watch pulls to that peer could keep failing for up
// to two minutes after it was back.
var peerConnectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: time.Second,
}

func newPeerConns(creds credentials.TransportCredentials) *peerConns {
	return &peerConns{creds: creds, conns: make(map[string]*grpc.ClientConn)}
}

func (p *peerConns) conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return nil, ErrStopped
	}
	c, ok := p.conns[addr]
	if !ok {
		var err error
		c, err = grpc.NewClient(addr, grpc.WithTransportCredentials(p.creds),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
			grpc.WithConnectParams(peerConnectParams))
		if err != nil {
			return nil, fmt.Errorf("dial peer %s: %w", addr, err)
		}
		p.conns[addr] = c
	}
	return c, nil
}

func (p *peerConns) get(addr string) (coordpb.PeerClient, error) {
	c, err := p.conn(addr)
	if err != nil {
		return nil, err
	}
	return coordpb.NewPeerClient(c), nil
}

func (p *peerConns) coord(addr string) (coordpb.CoordClient, error) {
	c, err := p.conn(addr)
	if err != nil {
		return nil, err
	}
	return coordpb.NewCoordClient(c), nil
}

func (p *peerConns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
