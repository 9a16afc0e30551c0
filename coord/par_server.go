package coord

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"coord/coord/par"
	"coord/coord/replica"
	"coord/proto/parpb"
)

// openPAR registers PeerRepair on the gRPC server Start built and starts
// serving before raft (PeerRepair answers at once, client RPCs wait for
// ready), opens the PAR stores and runs pre-start
// recovery. It returns the replica storage (nil with PlainStorage, so the
// replica opens plain raft-boltdb itself).
func (s *Server) openPAR(cluster []replica.Peer, peerCreds credentials.TransportCredentials) (*replica.Storage, error) {
	cfg := s.cfg
	var storage *replica.Storage
	if !cfg.PlainStorage {
		if err := replica.CheckDataDir(cfg.DataDir); err != nil {
			s.closeListeners()
			return nil, err
		}
		st, err := par.Open(par.Config{Dir: cfg.DataDir, Name: cfg.Name, Logger: s.log,
			ParallelJournal: len(cluster) > 1 && !cfg.PARSerialJournal,
			Addr:            selfAddr(cluster, cfg.Name), LostNode: cfg.PARRecover, ReadFault: cfg.PARReadFault,
			CompactPace: cfg.RaftCompactPace})
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("par: %w", err)
		}
		s.par = st
		parpb.RegisterPeerRepairServer(s.grpc, par.NewServer(st))
	}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = s.mux.Serve() }()
	go func() { defer s.wg.Done(); _ = s.grpc.Serve(s.mux.GRPC()) }()
	if s.par == nil {
		return nil, nil
	}
	var peers []par.Peer
	for _, p := range cluster {
		if p.Name != cfg.Name {
			peers = append(peers, par.Peer{Name: p.Name, Addr: p.Address})
		}
	}
	s.parClient = par.NewClient(cfg.Name, peers)
	s.parClient.Creds = peerCreds // nil without TLS
	timeout := cfg.PARRecoverTimeout
	if timeout == 0 {
		timeout = DefaultPARRecoverTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.par.Recover(ctx, s.parClient); err != nil {
		s.stopEarly()
		return nil, err
	}
	s.par.Log.SetFetcher(s.parClient)
	s.registerPARMetrics()
	storage, err := replica.OpenPARStorage(s.par, cfg.DataDir, io.Discard)
	if err != nil {
		s.stopEarly()
		return nil, err
	}
	return storage, nil
}

func selfAddr(cluster []replica.Peer, name string) string {
	for _, p := range cluster {
		if p.Name == name {
			return p.Address
		}
	}
	return ""
}

// startScrubber runs the PAR scrubber until Close, which stops it before
// the stores close (no-op with plain
// storage or a negative rate).
func (s *Server) startScrubber() {
	if s.par == nil || s.cfg.PARScrubRate < 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.scrubStop = func() { cancel(); <-done }
	go func() { defer close(done); s.par.Log.Scrub(ctx, s.cfg.PARScrubRate) }()
}

func (s *Server) registerPARMetrics() {
	ls := s.par.Log
	g := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	c := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	s.metrics.reg.MustRegister(
		g("par_entries_faulty", "Log entries known damaged and not yet repaired.", func() float64 { return float64(ls.Stats().Faulty) }),
		c("par_repairs_total", "Log entries repaired from a peer.", func() float64 { return float64(ls.Stats().Repairs) }),
		c("par_repair_failures_total", "Runtime repairs that found no intact copy in time.", func() float64 { return float64(ls.Stats().RepairFails) }),
		c("par_repaired_bytes_total", "Envelope bytes received in repairs.", func() float64 { return float64(ls.Stats().RepairedBytes) }),
		c("par_truncations_total", "Suffixes discarded (repair rules 2/4, torn tails).", func() float64 { return float64(ls.Stats().Truncations) }),
		c("par_gap_filled_entries_total", "Log entries fetched from a peer's log to close a gap below a lost snapshot.", func() float64 { return float64(ls.Stats().GapFilled) }),
		g("par_scrub_progress", "Scrubber position in the current pass (0..1).", func() float64 {
			st := ls.ScrubStats()
			if st.Last == 0 {
				return 1
			}
			return float64(st.Position) / float64(st.Last)
		}),
		c("par_compactions_total", "Log prefix compactions (one after each raft snapshot).", func() float64 { return float64(ls.Stats().Compactions) }),
		c("par_compaction_busy_seconds_total", "Time compactions spent in their chunk transactions.", func() float64 { return ls.Stats().CompactBusy.Seconds() }),
		c("par_compaction_paused_seconds_total", "Time compactions paused between chunks (the pace).", func() float64 { return ls.Stats().CompactPaused.Seconds() }),
		c("par_scrub_passes_total", "Completed scrubber passes.", func() float64 { return float64(ls.ScrubStats().Passes) }),
	)
	if ss := s.par.Snapshots(); ss != nil { // snapshot protection (par §4.6)
		s.metrics.reg.MustRegister(
			c("par_snapshots_quarantined_total", "Snapshots that failed verification and were moved to par-quarantine/.", func() float64 { return float64(ss.Stats().Quarantined) }),
			c("par_snapshot_repairs_total", "Snapshots repaired from peers (bad chunks or whole).", func() float64 { st := ss.Stats(); return float64(st.ChunkRepairs + st.WholeRepairs) }),
			c("par_snapshot_meta_repairs_total", "meta.json files rewritten from their checksummed sidecar.", func() float64 { return float64(ss.Stats().MetaRepaired) }),
		)
	}
}

// PAR returns the node's PAR store (nil with PlainStorage).
func (s *Server) PAR() *par.Store { return s.par }

func (s *Server) closeListeners() {
	s.ln.Close()
	if s.httpLn != nil {
		s.httpLn.Close()
	}
}

// stopEarly undoes a Start that failed after serving began.
func (s *Server) stopEarly() {
	s.grpc.Stop()
	_ = s.mux.Close()
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	s.wg.Wait()
	if s.parClient != nil {
		_ = s.parClient.Close()
	}
	if s.par != nil && s.rep == nil {
		_ = s.par.Close()
	}
}

func isPeerRepair(method string) bool { return strings.HasPrefix(method, "/coord.par.v1.PeerRepair/") }

var errStarting = status.Error(codes.Unavailable, "node is starting (PAR recovery in progress)")

func (s *Server) readyUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if !s.ready.Load() && !isPeerRepair(info.FullMethod) {
		return nil, errStarting
	}
	return h(ctx, req)
}

func (s *Server) readyStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if !s.ready.Load() && !isPeerRepair(info.FullMethod) {
		return errStarting
	}
	return h(srv, ss)
}
