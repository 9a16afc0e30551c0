// Command coordd is the coord server. With no flags it runs the embedded
// default: a single-node cluster named n1, data in ./coord-data, gRPC on
// 127.0.0.1:4180 and HTTP (metrics, health) on 127.0.0.1:4181.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"coord/coord"
	"coord/session"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	cfg := coord.DefaultConfig()
	fs := flag.NewFlagSet("coordd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Name, "name", cfg.Name, "this node's name in the cluster")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the raft log, votes and snapshots")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "the node's one address: clients, raft and peers")
	fs.StringVar(&cfg.Advertise, "advertise", "", "address peers dial and the member list shows, if not --listen (a proxy in front)")
	fs.BoolVar(&cfg.UnsafeLocalReads, "unsafe-local-reads", false, "")
	fs.StringVar(&cfg.HTTP, "http", cfg.HTTP, `address for /metrics, /healthz, /readyz ("" disables)`)
	cluster := fs.String("initial-cluster", "", "founding members, NAME=HOST:PORT,... (default: this node alone)")
	fs.BoolVar(&cfg.Join, "join", false, "start empty and wait to be added with `coordctl members add`")
	fs.IntVar(&cfg.MaxDataBytes, "max-data-bytes", cfg.MaxDataBytes, "largest znode data")
	fs.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", cfg.MaxRequestBytes, "largest request (bounds a multi)")
	fs.IntVar(&cfg.MaxWatches, "max-watches", 0, "watches this node holds over all streams (default 100000, -1: no limit)")
	fs.IntVar(&cfg.MaxWatchesPerStream, "max-watches-per-stream", 0, "watches on one watch stream (default 10000, -1: no limit)")
	fs.IntVar(&cfg.MaxSessionsPerAddress, "max-sessions-per-address", 0, "live sessions one client IP may open through this node (default 10000, -1: no limit)")
	fs.DurationVar(&cfg.Sessions.Min, "session-min-timeout", cfg.Sessions.Min, "smallest negotiated session timeout")
	fs.DurationVar(&cfg.Sessions.Max, "session-max-timeout", cfg.Sessions.Max, "largest negotiated session timeout")
	fs.DurationVar(&cfg.Sessions.Default, "session-default-timeout", cfg.Sessions.Default, "session timeout when the client asks for none")
	fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", 0, "raft heartbeat timeout (default 500ms, half the election timeout: writes resume within two election timeouts after a partition; must be >= --leader-lease; see docs/RELIABILITY.md)")
	fs.DurationVar(&cfg.ElectionTimeout, "election-timeout", 0, "raft election timeout (default 1s)")
	fs.DurationVar(&cfg.LeaderLease, "leader-lease", 0, "raft leader lease (default 500ms)")
	fs.DurationVar(&cfg.CommitTimeout, "commit-timeout", 0, "idle append interval that tells followers what committed (default 5ms; lower: fresher followers and watches, more idle traffic)")
	fs.BoolVar(&cfg.NudgeFollowers, "nudge-followers", false, "after a write with no other in flight, append a barrier so followers and their watchers learn the commit at once (one more log append per sparse write)")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", 0, "log entries between snapshots (default 65536)")
	fs.Int64Var(&cfg.SnapshotBytes, "snapshot-bytes", 0, "also snapshot after this many bytes of commands (default 64 MiB; negative: never by size)")
	fs.Float64Var(&cfg.RaftCompactPace, "raft-compact-pace", 0, "after each chunk of the log compaction that follows a raft snapshot, pause this multiple of the chunk's time, at most 50 ms a pause (default 1: the compaction takes about half of raft.db's time while it runs; negative: no pause, chunks back to back; docs/PAR.md, \"Pacing\")")
	fs.BoolVar(&cfg.EnablePprof, "enable-pprof", false, "serve /debug/pprof/ on the HTTP address")
	fs.BoolVar(&cfg.InsecureNonLoopback, "insecure", false, "allow listening beyond loopback without TLS (warns at every start)")
	oldInsecure := fs.Bool("insecure-no-tls", false, "deprecated alias of --insecure")
	fs.StringVar(&cfg.TLS.CertFile, "cert", "", "node certificate PEM (TLS for clients, raft and peers on the one address)")
	fs.StringVar(&cfg.TLS.KeyFile, "key", "", "node key PEM")
	fs.StringVar(&cfg.TLS.CAFile, "ca", "", "CA PEM that signs nodes and clients")
	superusers := fs.String("superusers", "", `ids that bypass ACLs and may change membership and take snapshots, e.g. "x509:admin" (setting any turns on the cluster-level auth rules)`)
	fs.StringVar(&cfg.TokenKeyFile, "token-key", "", "file with the cluster's session-token key (enables user/password login; same file on every node)")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", 0, "how long a password login lasts (default 1h)")
	peerNames := fs.String("peer-names", "", "allowed peer certificate names, comma-separated (default: this node and --initial-cluster names)")
	fs.BoolVar(&cfg.PARRecover, "par-recover", false, "start a node whose data dir was wiped or replaced through PAR's lost-node procedure: demote, learn every voter's term, rejoin, promote (docs/PAR.md; use once)")
	fs.BoolVar(&cfg.PlainStorage, "plain-storage", false, "turn protocol-aware recovery off: plain raft-boltdb log and term/vote (docs/PAR.md)")
	raftTelemetry := fs.Bool("raft-metrics", true, "serve hashicorp/raft's internal timings (commit time, store latency, replication RPCs) on /metrics as raft_* (and raft_boltdb_* with --plain-storage: PAR writes raft.db itself)")
	fs.BoolVar(&cfg.Admission.Disabled, "no-admission", false, "turn admission control off: no request is ever shed (overload tests only)")
	fs.IntVar(&cfg.Admission.MaxWrites, "admission-max-writes", 0, "writes in flight to raft before new ones queue, then are shed (default 64)")
	fs.IntVar(&cfg.Admission.MaxLinearReads, "admission-max-reads", 0, "linearizable reads in flight before new ones queue, then are shed (default 128)")
	noGuard := fs.Bool("no-session-guard", false, "turn the leader's session-expiry guard off: plain deadlines, no expiry rate limit (comparison runs only; docs/RELIABILITY.md)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Lookup("unsafe-local-reads").Usage = "BROKEN ON PURPOSE (tests only): serve linearizable reads from local state"
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "coordd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *noGuard {
		cfg.SessionGuard = &session.Guard{}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "coordd: --log-level: %v\n", err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	peers, err := coord.ParseCluster(*cluster)
	if err != nil {
		fmt.Fprintf(stderr, "coordd: --initial-cluster: %v\n", err)
		return 2
	}
	cfg.InitialCluster = peers
	if *oldInsecure {
		cfg.Logger.Warn("--insecure-no-tls is deprecated; use --insecure")
		cfg.InsecureNonLoopback = true
	}
	for _, n := range strings.Split(*superusers, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.Superusers = append(cfg.Superusers, n)
		}
	}
	for _, n := range strings.Split(*peerNames, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.PeerNames = append(cfg.PeerNames, n)
		}
	}

	if *raftTelemetry {
		c, err := raftMetrics()
		if err != nil {
			fmt.Fprintf(stderr, "coordd: %v\n", err)
			return 1
		}
		cfg.MetricsCollectors = append(cfg.MetricsCollectors, c)
	}
	srv, err := coord.Start(cfg, nil)
	if err != nil {
		fmt.Fprintf(stderr, "coordd: %v\n", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	cfg.Logger.Info("shutting down", "signal", s.String())
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintf(stderr, "coordd: shutdown: %v\n", err)
			return 1
		}
	case <-time.After(10 * time.Second):
		fmt.Fprintln(stderr, "coordd: shutdown timed out")
		return 1
	}
	return 0
}
