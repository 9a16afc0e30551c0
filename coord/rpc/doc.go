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
