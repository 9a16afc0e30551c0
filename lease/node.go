package lease

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"coord/lease/internal/core"
	"coord/proto/leasepb"
)

// Node is one member of one lease group: the acceptor cells, the proposer
// loops and the leases this process holds. Create it with New, serve it with
// Register, stop it with Close.
type Node struct {
	cfg     Config
	log     *slog.Logger
	self    int
	inc     uint64
	index   map[NodeID]int
	peers   []leasepb.FleasePeerClient // by member index; nil for self
	conns   []*grpc.ClientConn
	shards  []*shard
	started Instant

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // shard loops and in-flight peer calls

	closeOnce sync.Once
}

// New validates cfg, starts the node's event loops and its restart wait
// (every role is silent for Config.RestartWait from now), and prepares
// connections to the peers. Register the FleasePeer service on a gRPC server
// listening on this member's address.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("lease: incarnation: %w", err)
	}
	n := &Node{cfg: cfg, inc: binary.LittleEndian.Uint64(b[:]), index: map[NodeID]int{}}
	n.log = cfg.Logger.With(logNode, string(cfg.ID), logGroup, cfg.Group)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for i, m := range cfg.Members {
		creds := grpc.WithTransportCredentials(insecure.NewCredentials())
		if cfg.TLS != nil {
			creds = cfg.dialCreds(m.ID)
		}
		opts := append([]grpc.DialOption{creds}, cfg.DialOptions...)
		n.index[m.ID] = i
		if m.ID == cfg.ID {
			n.self = i
			n.peers = append(n.peers, nil)
			n.conns = append(n.conns, nil)
			continue
		}
		cc, err := grpc.NewClient(m.Addr, opts...)
		if err != nil {
			n.closeConns()
			return nil, fmt.Errorf("lease: dial %s at %s: %w", m.ID, m.Addr, err)
		}
		n.conns = append(n.conns, cc)
		n.peers = append(n.peers, leasepb.NewFleasePeerClient(cc))
	}
	n.started = cfg.Clock.Now()
	for i := 0; i < cfg.Shards; i++ {
		seed := binary.LittleEndian.Uint64(b[:]) + uint64(i)
		s := &shard{n: n, id: i, in: make(chan func(), 256), res: map[string]*resState{},
			outbox: make([][]core.Message, len(cfg.Members))}
		s.acc = core.NewAcceptor(n.self, cfg.timing(), core.Knobs{}, n.started)
		s.mem = core.NewMember(core.MemberConfig{
			Self: cfg.ID, Index: n.self, N: len(cfg.Members), Inc: n.inc, Timing: cfg.timing(),
			Rand: mrand.New(mrand.NewPCG(seed, uint64(time.Now().UnixNano()))), Learn: true,
		}, n.started)
		n.shards = append(n.shards, s)
	}
	for _, s := range n.shards {
		n.wg.Add(1)
		go s.run()
	}
	if _, ok := cfg.Clock.(uncheckedClock); ok {
		n.log.Warn("lease: UNCHECKED CLOCK: no NTP guard; safe only if every member runs on this host")
	}
	n.log.Info("lease: node started", "members", len(cfg.Members), "restart_wait", cfg.timing().RestartWait())
	return n, nil
}

// Register registers the FleasePeer service on s.
func (n *Node) Register(s grpc.ServiceRegistrar) {
	leasepb.RegisterFleasePeerServer(s, &peerServer{n: n})
}

// ID returns this member's ID.
func (n *Node) ID() NodeID { return n.cfg.ID }

// Config returns the node's config with defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// RecoveringUntil returns the wall time the restart wait ends (in the past
// once the node serves).
func (n *Node) RecoveringUntil() time.Time {
	return time.Unix(0, n.started.Wall).Add(n.cfg.timing().RestartWait())
}

// Close stops the loops, ends every lease this node holds (Err: ErrClosed)
// and closes peer connections. It does not release leases remotely: they
// expire. Close is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		n.wg.Wait()
		n.closeConns()
		n.log.Info("lease: node closed")
	})
	return nil
}

func (n *Node) closeConns() {
	for _, cc := range n.conns {
		if cc != nil {
			cc.Close()
		}
	}
}

func (n *Node) shardOf(res string) *shard {
	h := fnv.New32a()
	h.Write([]byte(res))
	return n.shards[h.Sum32()%uint32(len(n.shards))]
}

func (n *Node) header(sent int64) *leasepb.Header {
	return &leasepb.Header{GroupId: n.cfg.Group, ConfigVersion: n.cfg.Version, From: string(n.cfg.ID),
		Incarnation: n.inc, SentUnixNanos: sent}
}

// do runs f on the loop of res's shard and waits for it; ErrClosed if the
// node is closing, ctx.Err() if ctx ends first.
func (n *Node) do(ctx context.Context, res string, f func(s *shard)) error {
	s := n.shardOf(res)
	done := make(chan struct{})
	select {
	case s.in <- func() { f(s); close(done) }:
	case <-n.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-n.ctx.Done():
		return ErrClosed
	}
}
