// Package rpc implements coord's gRPC services (Coord for clients, Peer for
// nodes) on top of a Backend that coord.Server provides. It is the ONLY
// place where errors become gRPC statuses (errors.go: ToStatus, with its
// inverse FromStatus for peer calls); every status carries a
// coordpb.ErrorDetail whose code the client maps back to its sentinels.
//
// # Validation at the edge
//
// Node data above the configured limit is refused here (DATA_TOO_LARGE)
// before anything is proposed; request size is bounded by the gRPC
// server's MaxRecvMsgSize; paths and everything else are validated by
// coord/tree, deterministically, so every replica agrees.
//
// # Authorization
//
// authz.go: Rules names every method's rule (anyone, ACL, authenticated,
// superuser, peer); a method without a rule is refused (fail closed) and
// fails coord's permission-matrix test. The Authorizer interceptors turn
// the TLS state into a tree.Caller (x509:CN plus group:OU, or peer:NAME)
// and attach it to the ctx. Reads check the znode ACL in the handler on
// the tree they read (exists: READ on the parent); writes carry the
// caller in the Txn and coord/tree checks at apply, so every replica
// decides the same and a multi fails whole. A follower handing a read to
// the leader sends the caller along; the leader believes that only from a
// verified peer. A password login (users.go: Authenticate, bcrypt against
// the replicated user table) returns an HMAC session token; a call that
// carries "authorization: Bearer TOKEN" runs as user:NAME plus its groups,
// and a token that does not verify is refused, not ignored.
//
// # Decisions
//
//   - Every write, single op or multi, is one Txn command: one code path,
//     one all-or-nothing rule.
//   - A failed multi reports the failing op's index in ErrorDetail.failed_op
//     and names it in the message: "op 2 (set /a): version mismatch ...".
//   - Coord.Call (call.go) multiplexes the data operations over one
//     stream: each request runs through its unary method and through
//     Service.Interceptor under the unary method's name, so metrics and
//     checks see one kind of call. Goroutines: one sender per stream and
//     one per request in flight, all ending with the stream.
//   - Children are paged (DefaultChildrenPage per page, at most
//     MaxChildrenPage): a parent with 100,000 children never produces an
//     oversized response.
package rpc
