package coord

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

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
	// Sessions is the negotiated session timeout range.
	Sessions session.Limits
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
	TrailingLogs      uint64
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
	// InsecureNonLoopback allows listening on a non-loopback address without
	// TLS (TLS arrives with the security work; until then this must be
	// asked for explicitly).
	InsecureNonLoopback bool
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
	if err := checkListen("listen", c.Listen, c.InsecureNonLoopback); err != nil {
		errs = append(errs, err)
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
	return fmt.Errorf("%s address %q is not loopback: coord serves loopback only unless --insecure-no-tls is given (TLS is not implemented yet)", what, addr)
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
