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

	"coord/coord/auth"
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
// the HTTP server; the session loop (sessions.go); the event puller
// (push.go); the replica's own.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	sec     *security // nil without TLS
	mux     *replica.Mux
	rep     *replica.Replica
	grpc    *grpc.Server
	http    *http.Server
	httpLn  net.Listener
	peers   *peerConns
	fwd     forwarders
	metrics *metrics
	admit   *admission
	sess    *sessionManager
	watches *watchHub
	// watchStreams counts open watch streams; a follower with any pulls
	// the leader's events (push.go).
	watchStreams atomic.Int64
	// watchCount counts the watches registered on all streams
	// (Config.MaxWatches).
	watchCount atomic.Int64
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
	var sec *security
	if cfg.TLS.Enabled() {
		var err error
		if sec, err = newSecurity(cfg); err != nil {
			if ln != nil {
				ln.Close()
			}
			return nil, fmt.Errorf("tls: %w", err)
		}
	} else if cfg.InsecureNonLoopback {
		cfg.Logger.Warn("insecure: serving without TLS; anyone who can reach the address can read and change everything", "listen", cfg.Listen)
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
	}
	if sec != nil {
		ln = sec.listener(ln)
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger.With("node", cfg.Name),
		ln:    ln,
		sec:   sec,
		peers: newPeerConns(sec.peerCreds()),
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
	advertise := cfg.Advertise
	if advertise == "" {
		advertise = cfg.Listen
	}
	cluster := cfg.InitialCluster
	if len(cluster) == 0 {
		cluster = []replica.Peer{{Name: cfg.Name, Address: advertise}}
	}
	s.mux = replica.NewMux(ln)
	if sec != nil {
		s.mux.RaftCheck = sec.checkRaft
		s.mux.OnReject = func(c net.Conn, err error) {
			s.log.Warn("raft connection refused", "remote", c.RemoteAddr().String(), "err", err)
		}
	}
	s.sess = newSessionManager(s)
	s.watches = newWatchHub(cfg.WatchHistory)
	// Metrics exist before the replica: replaying the log feeds them.
	s.metrics = newMetrics(s)
	s.metrics.reg.MustRegister(s.sess.collectors()...)
	s.admit = newAdmission(cfg.Admission, s.metrics.reg, s.log)
	policy := rpc.Policy{TLS: sec != nil, Peers: sec.peerList(), Superusers: cfg.Superusers, TokenTTL: cfg.TokenTTL, Users: s}
	if cfg.TokenKeyFile != "" {
		var err error
		if policy.TokenKey, err = auth.LoadTokenKey(cfg.TokenKeyFile); err != nil {
			s.closeListeners()
			return nil, err
		}
	}
	authz := rpc.NewAuthorizer(policy, s.log)
	// gRPC serves from before raft starts (PeerRepair answers during PAR
	// recovery); every other call waits for ready (readyUnary/readyStream).
	s.grpc = grpc.NewServer(append(sec.serverOptions(),
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes),
		grpc.ChainUnaryInterceptor(s.metrics.arrive, s.readyUnary, authz.Unary, s.admit.unary, s.metrics.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.readyStream, authz.Stream),
	)...)
	svc := rpc.NewService(s, s.log).WithTokenKey(policy.TokenKey, cfg.TokenTTL)
	// Requests on a Call stream run through the same unary chain.
	svc.Interceptor = chainUnary(s.metrics.arrive, s.readyUnary, authz.Unary, s.admit.unary, s.metrics.unaryInterceptor)
	if cfg.MaxSessionsPerAddress != 0 {
		svc.MaxSessionsPerAddress = cfg.MaxSessionsPerAddress
	}
	coordpb.RegisterCoordServer(s.grpc, svc)
	coordpb.RegisterPeerServer(s.grpc, rpc.NewPeerService(s, s.log))
	storage, err := s.openPAR(cluster, sec.peerCreds())
	if err != nil {
		return nil, err
	}
	rep, err := replica.New(replica.Config{
		Name:              cfg.Name,
		Address:           advertise,
		DataDir:           cfg.DataDir,
		InitialCluster:    cluster,
		Join:              cfg.Join,
		HeartbeatTimeout:  cfg.HeartbeatTimeout,
		ElectionTimeout:   cfg.ElectionTimeout,
		LeaderLease:       cfg.LeaderLease,
		CommitTimeout:     cfg.CommitTimeout,
		SnapshotThreshold: cfg.SnapshotThreshold,
		SnapshotBytes:     cfg.SnapshotBytes,
		TrailingLogs:      cfg.TrailingLogs,
		Events:            s.onEvents,
		Logger:            s.log,
		DialTLS:           sec.dialTLS(),
		Storage:           storage,
	}, s.mux)
	if err != nil {
		s.stopEarly()
		return nil, err
	}
	s.rep = rep
	if s.par != nil {
		s.par.SetCommitFloor(func() uint64 { return rep.Info().CommitIndex })
		s.par.Snapshots().SetTrigger(rep.TakeSnapshot) // par RequestSnapshot
	}
	s.ready.Store(true)
	s.startScrubber()
	if s.httpLn != nil {
		s.http = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = s.http.Serve(s.httpLn) }()
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.sess.run(s.stop) }()
	go func() { defer s.wg.Done(); s.pullEvents() }()
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

// testHookStoresClosed runs in Close between closing the stores and
// stopping gRPC (tests hold that window open).
var testHookStoresClosed atomic.Pointer[func()]

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
		// Stop raft first: in-flight RPCs waiting on it get answers. This
		// also closes the par store while gRPC still serves PeerRepair
		// (and grpc's Stop does not wait for handlers): par.Store.Close
		// waits for running PeerRepair handlers and later ones answer
		// codes.Unavailable.
		s.closeErr = s.rep.Close()
		if f := testHookStoresClosed.Load(); f != nil {
			(*f)()
		}
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
	}, func(ctx context.Context, c coordpb.PeerClient, _ string) error {
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

// chainUnary composes unary interceptors in order (the first runs
// outermost), as grpc.ChainUnaryInterceptor does for unary calls.
func chainUnary(ics ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		next := h
		for i := len(ics) - 1; i >= 0; i-- {
			ic, inner := ics[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}
