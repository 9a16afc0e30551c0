// Package replica is coord's raft glue: hashicorp/raft with raft-boltdb/v2
// for the log and votes and a file snapshot store (storage.go: the one seam
// protocol-aware recovery wraps), the batching state machine that applies
// commands to coord/tree (fsm.go), the connection mux that lets raft share
// the node's one address with gRPC (mux.go), and the leader-side read index
// (replica.go).
//
// # Contract
//
//  1. Build a Mux over the node's listener and pass it to New; serve gRPC on
//     Mux.GRPC() and run Mux.Serve.
//  2. On the leader, Propose(ctx, EncodeCommand(cmd)) replicates one command
//     and returns its ApplyResult. Concurrent proposals share fsyncs: raft's
//     leader loop takes up to MaxAppendEntries queued applies per disk write
//     (BatchApplyCh), and the FSM applies each batch in one tree Txn.
//  3. ReadIndex(ctx) on the leader returns a safe read point; WaitApplied
//     blocks until the local FSM reached an index; State returns the latest
//     immutable tree (no locks: readers never block the apply loop).
//  4. Close stops raft and releases storage, after the heartbeats raft
//     handles on transport goroutines have left raft (transport.go: raft's
//     Shutdown does not wait for them, and one persisting its term into a
//     closed store made raft panic).
//
// # Goroutines
//
//   - raft's own goroutines: started by raft.NewRaft, stopped by Close.
//   - watchLeadership: started by New, ends when Close closes stop.
//   - the read-index batcher: started on demand by ReadIndex, ends when
//     its queue drains.
//   - awaitFuture helpers: one per in-flight future, end when raft answers
//     (raft answers every future, at the latest at shutdown).
//
// # Errors
//
// ErrNotLeader, ErrNoLeader, ErrUnknownOutcome (leadership lost with the
// write in flight: it may or may not apply), ErrStopped, ErrMembership.
//
// # Decisions
//
//   - A command is one protobuf coordpb.Command behind a version byte.
//   - The FSM snapshot is a 16-byte header (magic, applied index) and the
//     tree's own checksummed stream; restore rejects any damage.
//   - Failed commands still consume their index (the zxid moves), as in
//     ZooKeeper.
package replica
