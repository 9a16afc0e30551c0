// Package client is the Go client of coord, a ZooKeeper/Chubby-like
// coordination service: a replicated tree of znodes with versions,
// ephemeral, sequential, container and TTL nodes, atomic multi-op
// transactions and sessions.
//
// It imports only the wire API (coord/proto/coordpb) and gRPC, never the
// server packages, so a client binary stays small. Its public API uses its
// own types (Stat, Member, Status, Op, OpResult), never proto messages.
//
// # Usage
//
//  1. Make a client: c, err := client.New(ctx, client.Config{Endpoints:
//     []string{"10.0.0.1:4180", "10.0.0.2:4180"}}). Zero fields take their
//     defaults (DefaultConfig); New only checks the config, connections are
//     made on the first call.
//  2. Call methods; each takes ctx first. A ctx without a deadline gets
//     Config.RequestTimeout; retries stay within the deadline.
//  3. Reads are linearizable by default. Pass &ReadOptions{Local: true} to
//     read from the connected server without asking the leader: the client
//     sends the highest zxid it has seen in any response (LastZxid) as
//     min_zxid, so a local read never returns older state than this client
//     already saw, even after switching servers (monotonic reads).
//  4. Children pages through the server's listing until done; ChildrenPage
//     is for callers that page themselves. Each page is a consistent read
//     on its own; a listing spanning pages can see changes between them.
//  5. Multi(ctx, CreateOp(...), SetOp(...), DeleteOp(...), CheckOp(...))
//     applies ops all or none.
//  6. Close(ctx) when done: it closes the session (ephemerals go at once)
//     and the connections.
//
// # Sessions
//
// A client has at most one session. It is opened lazily by the first
// ephemeral create (Create or a CreateOp in Multi), or explicitly with
// Session(ctx), requesting Config.SessionTimeout (0: the server's default);
// the server negotiates the timeout (SessionTimeout). SessionID is 0 until
// then. SessionDone is closed when the session ends: when the server says
// it expired (SessionErr is ErrSessionExpired; its ephemerals are gone) or
// on Close (ErrClosed). SessionStates streams the session's state changes
// (connected, disconnected while keepalives fail, expired, closed). An
// expired session is not replaced: calls that
// need it fail with ErrSessionExpired; make a new Client.
//
// # Goroutines
//
//   - keepAlive (session.go): started by the call that opens the session;
//     sends KeepAlive every timeout/3 to the endpoint in use (failing over
//     like a read); owns nothing but its ticker. It stops when the server
//     says the session expired, or when Close closes its stop channel (Close
//     waits for it to return before closing the session on the server).
//   - gRPC's connection goroutines, one set per endpoint; Close stops them.
//   - One receiver per open Call stream (call.go), ending with the stream
//     (Close ends it).
//
// No other goroutine outlives a call. All methods are safe for concurrent
// use.
//
// # Errors
//
// Errors are the exported sentinels in errors.go; test them with
// errors.Is. The server attaches a machine-readable ErrorDetail to every
// error status; mapError (errors.go) is the one place it is turned back
// into a sentinel (or, without a detail, the gRPC code is mapped). The
// error's text is the server's message ("node does not exist"), so
// callers can print it as is. A failed Multi op is a *MultiError with the
// op's index. Exists returns (nil, nil) for a missing node.
//
// ErrConnectionLoss (the request may or may not have been applied) is
// distinct from ErrUnavailable (nothing was applied: no leader, or no
// server reachable until the deadline) and from ErrSessionExpired (fatal
// for the session).
//
// # Failover and retries
//
// The client keeps one connection per endpoint and uses one endpoint at a
// time, the last one that worked, starting with the first listed. A
// transport failure (codes.Unavailable without an ErrorDetail, a broken
// connection, or no connection within DialTimeout) moves it to the next
// endpoint. Then:
//
//   - Reads (Get, Exists, Children, Sync, Members, Status, Snapshot before
//     its first byte), keepalives and OpenSession/CloseSession are retried
//     on the next endpoint, round after round with a growing pause (10 ms to
//     0.5 s), until ctx ends; they then fail with an error that is both
//     ErrUnavailable and the ctx error.
//   - Writes (Create, Set, Delete, DeleteAll, Multi) made while the client
//     has a live session are exactly-once (once.go): each carries the
//     session id and a request id, the server remembers the result until
//     the client acknowledges it, and so they are retried like reads — also
//     after UNKNOWN_OUTCOME — and a retry is answered with the original
//     result. A sequential create never makes two nodes.
//   - Writes without a session (and AddMember, RemoveMember) are retried on
//     another endpoint only when the request cannot have reached a server
//     (dialing failed). Once it may have, a transport failure or
//     UNKNOWN_OUTCOME (leadership lost with the write in flight) returns
//     ErrConnectionLoss: retrying blindly could apply it twice. Call
//     Session(ctx) first to get exactly-once writes.
//   - Any call the server refused with code UNAVAILABLE (no leader, node
//     stopping: nothing applied) is retried, writes included, on the next
//     endpoint with the same pacing until ctx ends.
//
// # Decisions
//
//   - Endpoints are tried in the order given, not shuffled: a CLI user who
//     lists the nearest server first gets it. Spreading load is the
//     caller's choice of order.
//   - OpenSession is retried like a read: a session opened by a lost
//     attempt owns no ephemerals and simply expires.
//   - Connections are plaintext unless Config.TLS is set (LoadTLS builds
//     it from the same --cert/--key/--ca files coordd takes).
//   - No functional options (see STYLE.md G): Config plus Validate.
//   - Retries cannot become a storm (retry.go): pauses between rounds use
//     full jitter, keepalive intervals are re-drawn in [0.75, 1] × T/3 each
//     tick, and a retry budget caps retries at 20% of the requests of the
//     last 10 s plus 10 a second; past it a call returns its last error
//     (errors.Is ErrUnavailable) instead of retrying.
//   - The data operations (create, delete, set, get, exists, children,
//     multi, sync, keepalive) travel on one Coord.Call stream per
//     endpoint, many in flight, instead of one unary call each: about half
//     the CPU per operation on both sides (docs/BENCHMARKS.md). Answers and
//     errors are the unary ones, so retries and failover are unchanged; a
//     server without Call gets unary calls; Config.UnaryCalls forces them.
package client
