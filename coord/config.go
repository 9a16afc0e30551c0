package coord

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"coord/coord/auth"
	"coord/coord/par"
	"coord/coord/replica"
	"coord/session"
)

// Defaults for Config.
const (
	DefaultName            = "n1"
	DefaultDataDir         = "coord-data"
	DefaultListen          = "127.0.0.1:4180"
	DefaultHTTP            = "127.0.0.1:4181"
	DefaultMaxDataBytes    = 1 << 20
	DefaultMaxRequestBytes = 4 << 20
	DefaultWatchHistory    = 100_000
	// DefaultMaxWatches and DefaultMaxWatchesPerStream bound the watches
	// on one node and on one stream (Config.MaxWatches).
	DefaultMaxWatches          = 100_000
	DefaultMaxWatchesPerStream = 10_000
	// DefaultPARRecoverTimeout bounds pre-start PAR recovery.
	DefaultPARRecoverTimeout = 60 * time.Second
)

// Config configures a Server. The zero value plus DefaultConfig's fields is
// coordd's embedded default: one node named n1 on loopback.
type Config struct {
	// Name is this node's name in the cluster.
	Name string
	// DataDir holds the raft log, votes and snapshots.
	DataDir string
	// Listen is the node's ONE address: clients, raft and peer RPCs.
	Listen string
	// Advertise is the address peers dial to reach this node and the one in
	// the member list ("" means Listen); it differs from Listen when a
	// proxy sits in front of the node (the nemesis harness).
	Advertise string
	// UnsafeLocalReads is a deliberately broken mode for testing the
	// nemesis harness: linearizable reads are served from local state
	// without a read index, so they can be stale. Never set it in
	// production; coordd exposes it only as a hidden flag.
	UnsafeLocalReads bool
	// HTTP serves /metrics, /healthz and /readyz ("" disables it).
	HTTP string
	// InitialCluster lists every founding member (name=address); empty means
	// a single-node cluster of this node.
	InitialCluster []replica.Peer
	// Join: this node starts empty and waits for `coordctl members add`.
	Join bool
	// MaxDataBytes limits one znode's data.
	MaxDataBytes int
	// MaxRequestBytes limits one request (and so one multi).
	MaxRequestBytes int
	// MaxSessionsPerAddress bounds the live sessions one client IP opens
	// through this node (0: rpc.DefaultMaxSessionsPerAddress; <0: none).
	MaxSessionsPerAddress int
	// Sessions is the negotiated session timeout range.
	Sessions session.Limits
	// SessionGuard is the leader's expiry guard (session.Guard; nil:
	// session.DefaultGuard for the session loop's tick; &session.Guard{}
	// turns it off).
	SessionGuard *session.Guard
	// WatchHistory is how many recent change events each node keeps so a
	// reconnecting watcher can resume without loss (0: DefaultWatchHistory).
	WatchHistory int
	// Raft timing; zero takes replica's defaults.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	LeaderLease      time.Duration
	// CommitTimeout bounds how far followers (and their watchers) trail
	// the leader when writes are sparse; lower costs idle traffic.
	CommitTimeout time.Duration
	// NudgeFollowers: after a write when no other is in flight, append a
	// barrier so followers (and their watchers) learn the commit at once
	// instead of after CommitTimeout; costs one log append per sparse
	// write.
	NudgeFollowers bool
	// SnapshotThreshold and TrailingLogs; zero takes replica's defaults.
	SnapshotThreshold uint64
	// SnapshotBytes: also snapshot after this many command bytes (zero:
	// replica.DefaultSnapshotBytes, 64 MiB; negative: never by size).
	SnapshotBytes int64
	TrailingLogs  uint64
	// RaftCompactPace: after each chunk of the log compaction that follows
	// a snapshot, pause this multiple of the chunk's time (0:
	// par.DefaultCompactPace; negative: no pause, chunks back to back; one
	// pause at most 50 ms). PAR storage only; must be finite.
	RaftCompactPace float64
	// PlainStorage turns protocol-aware recovery off: raft-boltdb holds the
	// log and the term/vote unprotected (the "original" column of the PAR
	// fault matrix, and benchmark comparisons). PAR is on by default.
	PlainStorage bool
	// PARRecoverTimeout bounds pre-start recovery (repairing damaged log
	// entries from peers, rebuilding a lost term/vote); when it ends
	// unresolved the node refuses to start (0: DefaultPARRecoverTimeout).
	PARRecoverTimeout time.Duration
	// PARSerialJournal writes PAR identifiers after each bbolt commit even
	// in multi-node clusters: a crash then never needs peers to decide the
	// tail, at one more fdatasync per log append. By default multi-node
	// clusters write them concurrently with the commit (single-node
	// clusters always write serially: they have no peers to ask).
	PARSerialJournal bool
	// PARScrubRate is how many log entries per second the PAR scrubber
	// re-verifies (0: par.DefaultScrubRate; negative: no scrubber).
	PARScrubRate int
	// PARRecover starts this node through PAR's lost-node procedure
	// (design §4.8): for a node whose data dir was wiped or replaced and
	// whose name the cluster knows (it otherwise refuses to start). The
	// node is demoted to a non-voter, takes the max durable term of every
	// other voter, starts under a new incarnation and asks to be promoted
	// once it holds the leader's commit index. Use once; docs/PAR.md.
	PARRecover bool
	// PARReadFault injects read errors into PAR-owned files (fault tests
	// only: cmd/coordfault's EIO cases; nil in production).
	PARReadFault par.ReadFault
	// InsecureNonLoopback allows listening on a non-loopback address without
	// TLS (coordd --insecure); Start then logs a warning every time.
	InsecureNonLoopback bool
	// EnablePprof serves net/http/pprof under /debug/pprof/ on the HTTP
	// address (profiling a live node; off by default).
	EnablePprof bool
	// MetricsCollectors are registered in this server's /metrics registry
	// beside its own (coordd adds hashicorp/raft's internal timings).
	MetricsCollectors []prometheus.Collector
	// TLS names the node's certificate, key and CA (all three or none).
	// With TLS the one address speaks only TLS: clients, raft and peer
	// RPCs alike; peers must present a certificate naming one of
	// PeerNames.
	TLS auth.TLSFiles
	// PeerNames is the allow-list of peer certificate names (CN or DNS
	// SAN). Empty: this node's name plus every InitialCluster name.
	PeerNames []string
	// Superusers are caller ids ("x509:admin", "user:root") that bypass
	// znode ACLs and may change membership and take snapshots. Setting any
	// turns on the cluster-level rules (status and members need an
	// identity; membership and snapshots a superuser); empty keeps the
	// open world of a cluster without auth.
	Superusers []string
	// TokenKeyFile holds the cluster's session-token key (the same file on
	// every node, at least 32 bytes; coordctl certs init writes one).
	// Empty: password login is off.
	TokenKeyFile string
	// TokenTTL is how long a password login lasts (0: one hour).
	TokenTTL time.Duration
	// WatchBuffer bounds the responses queued for one watch stream
	// (0: DefaultWatchBuffer); when it stays full for WatchSlowTimeout
	// (0: DefaultWatchSlowTimeout) the stream is ended as too slow.
	WatchBuffer      int
	WatchSlowTimeout time.Duration
	// MaxWatches bounds the watches registered on this node over all its
	// streams (0: DefaultMaxWatches; <0: none), and MaxWatchesPerStream
	// those on one stream (0: DefaultMaxWatchesPerStream; <0: none). A
	// watch over a limit is refused with a message naming it; with
	// WatchBuffer per stream this bounds the memory watchers can hold.
	MaxWatches          int
	MaxWatchesPerStream int
	// Admission bounds each class of client request (admission.go);
	// Admission.Disabled (coordd --no-admission) turns it off.
	Admission AdmissionConfig
	// Logger; nil discards.
	Logger *slog.Logger
}

// DefaultConfig is the embedded default: n1, ./coord-data, 127.0.0.1:4180.
func DefaultConfig() Config {
	return Config{
		Name:            DefaultName,
		DataDir:         DefaultDataDir,
		Listen:          DefaultListen,
		HTTP:            DefaultHTTP,
		MaxDataBytes:    DefaultMaxDataBytes,
		MaxRequestBytes: DefaultMaxRequestBytes,
		Sessions:        session.DefaultLimits(),
	}
}

// Validate reports every problem with the config at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty"))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := checkListen("listen", c.Listen, c.InsecureNonLoopback || c.TLS.Enabled()); err != nil {
		errs = append(errs, err)
	}
	if c.Advertise != "" {
		if err := checkListen("advertise", c.Advertise, c.InsecureNonLoopback); err != nil {
			errs = append(errs, err)
		}
	}
	if c.HTTP != "" {
		if err := checkListen("http", c.HTTP, c.InsecureNonLoopback); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MaxDataBytes <= 0 {
		errs = append(errs, fmt.Errorf("max data bytes %d must be positive", c.MaxDataBytes))
	}
	if c.MaxRequestBytes < c.MaxDataBytes+64<<10 {
		errs = append(errs, fmt.Errorf("max request bytes %d must exceed max data bytes %d by at least 64 KiB", c.MaxRequestBytes, c.MaxDataBytes))
	}
	if err := c.Sessions.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SessionGuard != nil {
		if err := c.SessionGuard.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Admission.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := par.CheckCompactPace(c.RaftCompactPace); err != nil {
		errs = append(errs, err)
	}
	for _, p := range c.InitialCluster {
		if p.Name == "" || p.Address == "" {
			errs = append(errs, fmt.Errorf("initial cluster entry %q=%q: name and address are required", p.Name, p.Address))
		}
	}
	return errors.Join(errs...)
}

func checkListen(what, addr string, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s address %q: %v", what, addr, err)
	}
	if insecure {
		return nil
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%s address %q is not loopback: coord serves beyond loopback only with TLS (--cert, --key, --ca) or --insecure", what, addr)
}

// peerNames is the effective allow-list.
func (c Config) peerNames() []string {
	if len(c.PeerNames) > 0 {
		return c.PeerNames
	}
	names := []string{c.Name}
	for _, p := range c.InitialCluster {
		names = append(names, p.Name)
	}
	return names
}

// ParseCluster parses "n1=127.0.0.1:4101,n2=127.0.0.1:4102".
func ParseCluster(s string) ([]replica.Peer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []replica.Peer
	for _, part := range strings.Split(s, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("initial cluster entry %q: want NAME=HOST:PORT", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("initial cluster entry %q: %v", part, err)
		}
		out = append(out, replica.Peer{Name: name, Address: addr})
	}
	return out, nil
}
