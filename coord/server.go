package coord

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"coord/coord/par"
	"coord/coord/replica"
	"coord/coord/rpc"
	"coord/coord/tree"
	"coord/proto/coordpb"
	"coord/session"
)

// ErrStopped: the server is shutting down.
var ErrStopped = replica.ErrStopped

// Server is one coord node: a raft replica of the znode tree served over
// gRPC on one address, plus an HTTP endpoint for metrics and health.
//
// Goroutines (all stopped by Close): the mux accept loop; the gRPC server;
// the HTTP server; the session loop (sessions.go); the replica's own.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	mux     *replica.Mux
	rep     *replica.Replica
	grpc    *grpc.Server
	http    *http.Server
	httpLn  net.Listener
	peers   *peerConns
	metrics *metrics
	sess    *sessionManager
	watches *watchHub
	// PAR: the protected stores and the repair client (nil with
	// PlainStorage); ready gates client RPCs until the replica runs, while
	// PeerRepair is served from before raft starts.
	par       *par.Store
	parClient *par.Client
	ready     atomic.Bool
	scrubStop func() // stops the PAR scrubber and waits for it (nil: none)

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start opens storage, joins or bootstraps the cluster and starts serving.
// A listener may be passed for tests (ln != nil); otherwise cfg.Listen is
// bound.
func Start(cfg Config, ln net.Listener) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxDataBytes == 0 {
		cfg.MaxDataBytes = DefaultMaxDataBytes
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = max(DefaultMaxRequestBytes, cfg.MaxDataBytes+512<<10)
	}
	if cfg.Sessions == (session.Limits{}) {
		cfg.Sessions = session.DefaultLimits()
	}
	if ln != nil {
		cfg.Listen = ln.Addr().String()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger.With("node", cfg.Name),
		ln:    ln,
		peers: newPeerConns(),
		stop:  make(chan struct{}),
	}
	if cfg.HTTP != "" {
		hl, err := net.Listen("tcp", cfg.HTTP)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen http %s: %w", cfg.HTTP, err)
		}
		s.httpLn = hl
	}
	cluster := cfg.InitialCluster
	if len(cluster) == 0 {
		cluster = []replica.Peer{{Name: cfg.Name, Address: cfg.Listen}}
	}
	s.mux = replica.NewMux(ln)
	s.sess = newSessionManager(s)
	s.watches = newWatchHub(cfg.WatchHistory)
	// Metrics exist before the replica: replaying the log feeds them.
	s.metrics = newMetrics(s)
	storage, err := s.openPAR(cluster)
	if err != nil {
		return nil, err
	}
	rep, err := replica.New(replica.Config{
		Name:              cfg.Name,
		Address:           cfg.Listen,
		DataDir:           cfg.DataDir,
		InitialCluster:    cluster,
		Join:              cfg.Join,
		HeartbeatTimeout:  cfg.HeartbeatTimeout,
		ElectionTimeout:   cfg.ElectionTimeout,
		LeaderLease:       cfg.LeaderLease,
		CommitTimeout:     cfg.CommitTimeout,
		SnapshotThreshold: cfg.SnapshotThreshold,
		TrailingLogs:      cfg.TrailingLogs,
		Events:            s.onEvents,
		Logger:            s.log,
		Storage:           storage,
	}, s.mux)
	if err != nil {
		s.stopEarly()
		return nil, err
	}
	s.rep = rep
	if s.par != nil {
		s.par.SetCommitFloor(func() uint64 { return rep.Info().CommitIndex })
	}
	s.ready.Store(true)
	s.startScrubber()
	if s.httpLn != nil {
		s.http = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = s.http.Serve(s.httpLn) }()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.sess.run(s.stop) }()
	s.log.Info("coordd started", "listen", cfg.Listen, "http", cfg.HTTP, "data", cfg.DataDir)
	return s, nil
}

// Addr is the node's address.
func (s *Server) Addr() string { return s.cfg.Listen }

// HTTPAddr is the metrics/health address ("" when disabled).
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// Replica exposes the raft replica (tests and status).
func (s *Server) Replica() *replica.Replica { return s.rep }

// Close stops serving, then stops raft and closes storage. Idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		if s.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.http.Shutdown(ctx)
			cancel()
		}
		if s.scrubStop != nil {
			s.scrubStop()
		}
		// Stop raft first: in-flight RPCs waiting on it get answers.
		s.closeErr = s.rep.Close()
		s.grpc.Stop()
		if s.parClient != nil {
			_ = s.parClient.Close()
		}
		_ = s.mux.Close()
		s.peers.close()
		s.wg.Wait()
	})
	return s.closeErr
}

// ----- rpc.Backend -----

var _ rpc.Backend = (*Server)(nil)

// Name implements rpc.Backend.
func (s *Server) Name() string { return s.cfg.Name }

// MaxDataBytes implements rpc.Backend.
func (s *Server) MaxDataBytes() int { return s.cfg.MaxDataBytes }

// Info implements rpc.Backend.
func (s *Server) Info() replica.Info { return s.rep.Info() }

// Members implements rpc.Backend.
func (s *Server) Members(ctx context.Context) ([]replica.Member, error) { return s.rep.Members() }

// ChangeMembers runs a membership change on the leader.
func (s *Server) ChangeMembers(ctx context.Context, req *coordpb.ChangeMembersRequest) error {
	return s.onLeader(ctx, func(ctx context.Context) error {
		return s.ChangeMembersLocal(ctx, req)
	}, func(ctx context.Context, c coordpb.PeerClient) error {
		_, err := c.ChangeMembers(ctx, req)
		return err
	})
}

// ChangeMembersLocal implements rpc.Backend (leader only).
func (s *Server) ChangeMembersLocal(ctx context.Context, req *coordpb.ChangeMembersRequest) error {
	switch c := req.GetChange().(type) {
	case *coordpb.ChangeMembersRequest_Add:
		return s.rep.AddMember(ctx, c.Add.GetName(), c.Add.GetAddress(), c.Add.GetNonVoter())
	case *coordpb.ChangeMembersRequest_Remove:
		return s.rep.RemoveMember(ctx, c.Remove.GetName())
	}
	return fmt.Errorf("%w: empty membership change", tree.ErrInvalidArgument)
}

// onEvents receives each applied batch (on raft's apply goroutine) and
// feeds the watch history.
func (s *Server) onEvents(b replica.Batch) {
	s.metrics.events.Add(float64(len(b.Events)))
	s.watches.publish(b)
}
