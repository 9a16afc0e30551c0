// Package coord assembles a coord server: a raft replica of the znode tree
// (coord/replica over coord/tree), served over gRPC (coord/rpc) on ONE
// address that also carries raft and peer traffic, with HTTP metrics and
// health beside it.
//
// # Where it sits
//
// cmd/coordd → coord → coord/rpc, coord/replica, coord/tree, session, proto.
// coord/rpc never imports coord: it declares rpc.Backend, which *Server
// implements.
//
// # Usage
//
//  1. cfg := coord.DefaultConfig(); adjust; srv, err := coord.Start(cfg, nil).
//  2. Clients speak the Coord gRPC service (proto/coord.proto) to any node.
//  3. srv.Close() stops serving, stops raft and closes storage.
//
// # Requests
//
// Writes go to the leader: a follower forwards the encoded command with
// Peer.Propose and answers once the leader has committed it (reads that
// follow wait for their read index or min_zxid, which covers it). The
// leader stamps its wall clock into each command (ctime/mtime, TTL), which
// keeps apply deterministic.
//
// Linearizable reads (the default) ask the leader for a read index; the
// leader batches concurrent requests behind one leadership check (a round
// of heartbeats) and, the first time in each term, commits a barrier so its
// commit index covers everything acknowledged by earlier leaders. The
// serving node then waits until it has applied that index and reads its
// own immutable tree without locks. Local reads skip the leader and only
// wait for the client's min_zxid (monotonic reads across servers).
//
// While no leader is known a request retries for up to 3 election
// timeouts (or its deadline), then fails Unavailable.
//
// # Sessions
//
// Opened and closed through raft; keepalives go to any node. A follower
// answers a keepalive from its replicated state and relays it to the leader
// in batches (every 100 ms). The leader alone keeps deadlines
// (session.Table) and commits ONE CloseSession entry per expired session,
// which removes it and its ephemeral nodes atomically. A new leader gives
// every session a grace period of its own timeout. The leader's expiry
// guard (session.Guard; Config.SessionGuard, coordd --no-session-guard)
// does not count the time its session loop was paused, holds timeouts
// while keepalive intake has collapsed — in total, or from one follower's
// relay (the relay names its follower in gRPC metadata) — and expires at
// most 1,000 sessions a second, re-checking each before it proposes; a
// session whose client is gone still ends within 3 × its timeout of the
// last keepalive the leader counted.
//
// # Goroutines
//
//   - mux accept loop (replica.Mux.Serve): started by Start, ends when Close
//     closes the listener; one short-lived goroutine per new connection
//     sniffs whether it is raft or gRPC.
//   - gRPC server and HTTP server: started by Start, stopped by Close.
//   - session loop (sessionManager.run): started by Start, ends on Close;
//     each expiry proposal runs on its own goroutine, awaited before the
//     loop returns.
//   - replica goroutines: see coord/replica.
//
// # Errors
//
// Handlers return sentinels from coord/tree, coord/replica and coord/rpc;
// coord/rpc.ToStatus maps them to a gRPC status with an ErrorDetail code,
// which client/ maps back to its own sentinels.
//
// # Decisions
//
//   - One address per node: a tiny connection mux sniffs a 7-byte magic
//     that raft connections send first; everything else is gRPC. This keeps
//     hashicorp/raft's NetworkTransport (the fastest, with pipelining)
//     instead of tunnelling raft through gRPC streams.
//   - Recursive delete is server-side and atomic (ZooKeeper's is a client
//     loop that can leave half a subtree).
//   - Non-loopback listen addresses are refused unless TLS is configured
//     (Config.TLS: cert, key, CA) or InsecureNonLoopback (--insecure) is
//     set, which then warns at every start. TLS is terminated on the
//     listener before the mux, so clients, raft and peer RPCs share one
//     handshake; security.go wires coord/auth in (docs/SECURITY.md).
package coord
