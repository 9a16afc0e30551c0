package coord

import (
	"context"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics are per server (no global registry), served on /metrics.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	// started counts requests as they arrive; requests counts those that
	// ran, as they finish, with their code (a request held for a leader
	// shows there late; one refused by readiness, authorization or
	// admission not at all).
	started *prometheus.CounterVec
	latency *prometheus.HistogramVec
	events  prometheus.Counter
	// slowWatchers counts watch streams ended as too slow.
	slowWatchers prometheus.Counter
	// watchesRefused counts watches refused by the node's limit.
	watchesRefused prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coord_grpc_requests_total", Help: "gRPC requests by method and status code.",
	}, []string{"method", "code"})
	m.started = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coord_grpc_requests_started_total", Help: "gRPC requests by method, counted when they arrive (also those refused before running: not ready, unauthorized, shed).",
	}, []string{"method"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "coord_grpc_request_seconds", Help: "gRPC request latency by method.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"method"})
	m.events = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coord_watch_events_total", Help: "Watch events produced by applied changes.",
	})
	m.slowWatchers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coord_watch_too_slow_total", Help: "Watch streams ended because their consumer fell too far behind.",
	})
	m.watchesRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coord_watches_refused_total", Help: "Watches refused because the node holds Config.MaxWatches.",
	})
	m.reg.MustRegister(m.slowWatchers, m.watchesRefused)
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_raft_term", Help: "Current raft term."},
			func() float64 { return float64(s.rep.Info().Term) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_raft_commit_index", Help: "Raft commit index."},
			func() float64 { return float64(s.rep.Info().CommitIndex) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_raft_applied_index", Help: "Index applied to the tree."},
			func() float64 { return float64(s.rep.Applied()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_raft_is_leader", Help: "1 on the leader."},
			func() float64 {
				if s.rep.IsLeader() {
					return 1
				}
				return 0
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coord_raft_log_appends_total", Help: "Durable raft log appends (each a bbolt commit with its fsyncs)."},
			func() float64 { a, _ := s.rep.LogAppends(); return float64(a) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coord_raft_log_entries_total", Help: "Raft log entries written by those appends."},
			func() float64 { _, e := s.rep.LogAppends(); return float64(e) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coord_raft_snapshots_total", Help: "FSM snapshots this node has taken (raft compacts the log after each)."},
			func() float64 { n, _ := s.rep.SnapshotStats(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coord_raft_snapshot_persist_seconds_total", Help: "Time spent writing FSM snapshots to their files, sync included."},
			func() float64 { _, d := s.rep.SnapshotStats(); return d.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coord_forward_batches_total", Help: "Batches of writes this follower forwarded to the leader."},
			func() float64 { b, _ := s.ForwardStats(); return float64(b) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coord_forwarded_writes_total", Help: "Writes this follower forwarded to the leader."},
			func() float64 { _, w := s.ForwardStats(); return float64(w) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_znodes", Help: "Znodes in the tree."},
			func() float64 { t, _ := s.rep.State(); return float64(t.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_watches", Help: "Watches registered on this node (all streams)."},
			func() float64 { return float64(s.watchCount.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_sessions", Help: "Live sessions."},
			func() float64 { t, _ := s.rep.State(); return float64(t.SessionCount()) }),
	}
	m.reg.MustRegister(m.requests, m.started, m.latency, m.events,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(gauges...)
	for _, c := range s.cfg.MetricsCollectors {
		if err := m.reg.Register(c); err != nil {
			s.log.Warn("metrics collector not registered", "error", err)
		}
	}
	return m
}

// arrive counts a request as it arrives, first in the chain: before
// readiness, authorization and admission, which may refuse it (and then
// unaryInterceptor, last in the chain, never sees it).
func (m *metrics) arrive(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	m.started.WithLabelValues(info.FullMethod).Inc()
	return handler(ctx, req)
}

func (m *metrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.latency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

// httpHandler serves /metrics, /healthz (the process is up) and /readyz
// (a leader is known and this node can serve).
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		info := s.rep.Info()
		if info.LeaderName == "" {
			http.Error(w, "not ready: no leader", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok: leader " + info.LeaderName + "\n"))
	})
	if s.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
