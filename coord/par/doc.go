// Package par is protocol-aware recovery (PAR, FAST'18 "CTRL") for coord's
// raft storage: hashicorp/raft and raft-boltdb/v2 stay unmodified; par wraps
// the stores so that a node whose disk returns damaged or missing data
// neither crashes in a loop, nor forgets what it acknowledged, nor
// double-votes. Design: ../shared/design/par.md (section numbers below).
//
// # What it owns
//
//   - LogStore (logstore.go, envelope.go): each raft entry is kept in bolt as
//     a checksummed envelope whose CRC32C covers index and term; its
//     identifier (index, term, type, checksum) goes to a separate
//     append-only journal, par-ids.log (idjournal.go), durable before
//     StoreLogs returns (ordering: see Decisions). A present identifier
//     therefore means "possibly acknowledged". FirstIndex/LastIndex come
//     from the identifiers, so an entry lost at the tail stays visible to
//     elections. GetLog verifies envelope and identifier and never hands
//     raft unverified bytes: a faulty entry is fetched from a peer (rule 1)
//     within DefaultRepairWait, else GetLog returns a *FaultError
//     (errors.Is ErrEntryUnavailable), never raft.ErrLogNotFound.
//     A compaction (DeleteRange of a prefix) journals COMPACT_PREFIX, then
//     deletes the prefix from raft.db in chunks of DefaultCompactChunk keys,
//     lowest first, with appends going first between chunks, so StoreLogs
//     never waits for the whole delete; a crash between chunks leaves keys
//     below the journal's first index, which start-up and the next
//     compaction delete (raft never sees them).
//   - Start-up classification (classify.go, open.go): the pure decision
//     table of §4.3.3 per index: OK, FAULTY (to peers, never discarded
//     locally), ADOPT (identifier re-derived from an intact entry), torn
//     tail (no identifier: never acked, discarded with every later key),
//     double fault (refuse to start), finish an interrupted compaction.
//     raft.db's structure is checked at open (both bbolt meta pages, file
//     size against the high-water page, a guarded walk of every value); a
//     damaged file is moved to par-quarantine/ and every identified entry
//     becomes FAULTY, to be fetched from peers. A log lost under a
//     surviving term refuses to start (ErrLostLog).
//   - StableStore (stable.go): term and vote in one 512-byte record, stored
//     twice (par-meta.a then par-meta.b, each fdatasync'ed), max valid seq
//     wins and the other copy is rewritten (DecideLoad, pure). Both copies
//     lost while raft data exists is amnesia (ErrAmnesia, never "not
//     found"): Recover asks EVERY other voter for its durable term, takes the
//     max M (never a majority's max: §4.5 counterexample) and records a
//     sentinel vote in M. A vote-quarantine flag makes LastVoteTerm reads
//     fail, so raft refuses votes (defence in depth; not yet used by a
//     procedure).
//   - Repair rules (decide.go, pure) and their exhaustive model check
//     (decide_test.go), which also fails when a rule is weakened.
//   - PeerRepair gRPC service (repair_server.go, proto/par.proto) answering
//     from the durable identifier view, and the Client (repair_client.go).
//     Close refuses new handlers and waits for running ones before it
//     closes a file; later calls answer codes.Unavailable (ErrClosed), so a
//     gRPC server that outlives the store never reads or writes it.
//   - SnapshotStore (snapshot.go): raft's FileSnapshotStore underneath,
//     unchanged on disk, plus a sidecar per snapshot in par-snapmeta/<id>.a
//     and .b (raft's whole meta, size, SHA-256 and a CRC32C per 64 KiB
//     chunk of state.bin, itself CRC32C'd). Start-up verifies every
//     snapshot (sidecar, meta.json against it, size, every chunk): a
//     meta.json that does not parse or was edited (Index, Term, Size,
//     Configuration) is rewritten from the sidecar, a bad sidecar copy from
//     its twin, a snapshot without any sidecar (crash after raft's Close) is
//     adopted if raft's CRC64 agrees; anything else is moved to
//     par-quarantine/snapshots/ and never listed. List/Open compare
//     meta.json with the sidecar again, and Open's reader checks each chunk
//     before handing out a byte (*SnapshotError, errors.Is
//     ErrSnapshotCorrupt, at the first bad one; the snapshot is then
//     quarantined). par reaps, keeping the newest 2 verified snapshots.
//   - Snapshot repair (snapshot_repair.go, snapshot_rpc.go): before raft
//     starts, faulty entries a verified snapshot covers are compacted
//     locally; then the I4 gap check: the log must start at or before the
//     newest usable snapshot's index + 1, else a snapshot covering the gap
//     is obtained from peers (ListSnapshots/FetchSnapshot): only the bad
//     chunks of a quarantined snapshot when a peer holds a byte-identical
//     one, else a peer's whole snapshot, every chunk checked against the
//     checksums we trust and the whole against its SHA-256. After
//     installing one the log is aligned with it (Raft's Figure 13: a
//     suffix from a conflicting entry is discarded; the prefix compacted).
//     When no peer has or can take such a snapshot, the gap is filled
//     from a peer's log (gapfill.go, PeerRepair.GetLogRange): the peer's
//     entry at our first index must equal our identifier there (term and
//     checksum), so by Log Matching its entries below it are the committed
//     ones we compacted; each is envelope-checked, written to bolt below
//     the first index, then made visible by one journal write (recBackfill
//     records + recBackfillDone; an unfinished fill is deleted at start-up
//     as an unfinished compaction). raft then replays from the snapshot
//     (or index 1). Recover never returns nil with a gap (raft would panic
//     in its configuration scan). Repair rule 3 (COMMITTED_COMPACTED) is
//     acted on by the snapshot path.
//   - Node identity (identity.go, lostnode.go, design §4.8): par-node.a|.b
//     hold name, random node id, cluster id (from the initial cluster's
//     names) and incarnation, checksummed, written A then B. A node with no
//     log, no term/vote and no identity asks its peers (PeerRepair.Hello);
//     if any peer recorded its name it refuses to start (ErrNaiveReformat).
//     Config.LostNode (coordd --par-recover) or PrepareLostNode (coordctl par
//     recover) run the lost-node procedure instead: demote to non-voter,
//     max durable term of EVERY other voter with the sentinel vote and the
//     vote quarantine, a new incarnation whose PromoteAt is the leader's
//     commit index; a promoter goroutine re-adds the node as a voter once
//     its commit index reaches it, then clears the quarantine.
//   - Vote trace (votetrace.go): every durable vote is appended to
//     par-votes.log, a diagnostic the fault harness checks for two votes
//     in one term.
//   - ReadFault (fsys.go): injected read errors (EIO) for the identifier
//     journal; an unreadable record takes the corrupt-record path.
//   - raft.db itself (boltlog.go): raft-boltdb v2's on-disk format, opened
//     and written by par with BoltOptions (map free list, synced), so that StoreLogs can overlap the identifiers' direct write
//     with the encoding of the batch. An EIO on raft.db is a SIGBUS under
//     bbolt's mmap (guard turns it into an error: the entry is FAULTY; a
//     rewrite into the same page fails too) or an error from the pread
//     walk at open (boltcheck.go), which quarantines raft.db so that it is
//     rebuilt from peers through the identifiers (parfault family K).
//   - parfault/: the fault-injection harness behind cmd/coordfault.
//
// # Caller's contract
//
//  1. Open(cfg) before raft: opens bolt, the journal and the meta copies and
//     classifies every entry (local, always-safe actions only).
//  2. Serve NewServer(store) on the node's gRPC address (before raft, so
//     nodes in pre-start recovery can repair each other).
//  3. Recover(ctx, client): fixes or discards every faulty entry by rules
//     1-5 and rebuilds amnesic term/vote; returns ErrUnrecoverable when ctx
//     ends first (the node stays down: the paper's "wait").
//  4. Give raft NewLogCache(store.Log), store.Stable and store.Snapshots();
//     SetFetcher(client) for runtime repairs; SetCommitFloor(raft commit
//     index).
//
// # Goroutines
//
// LogStore.Scrub runs on a goroutine its caller owns (coord starts it and
// stops it through ctx at Close); it slows to 1/20 of its rate while the
// node appends. Recover may start two goroutines the Store owns, stopped by
// Close: the announcer (tells peers this node's identity until each
// recorded it) and the promoter (a lost node's pending promotion). StoreLogs with ParallelJournal runs the
// journal write on a goroutine and waits for it. Client.ask runs one
// goroutine per peer per call and waits for all of them. gRPC runs the
// server's handlers.
//
// # Errors
//
// ErrEntryUnavailable (*FaultError), ErrAmnesia, ErrVoteQuarantined,
// ErrDoubleFault, ErrUnrecoverable, ErrLostLog, ErrNaiveReformat,
// ErrWrongCluster, ErrNotLost, ErrBadEnvelope, ErrRecordTooLarge,
// ErrJournal, ErrClosed; for snapshots ErrSnapshotCorrupt (*SnapshotError),
// ErrNoSnapshot, ErrSnapshotGap. Test with errors.Is.
//
// # Decisions and deviations from the design
//
//   - bbolt's tx.Check walks in its own goroutine, out of SetPanicOnFault's
//     reach (a SIGBUS there kills the process), so par checks meta pages
//     and size itself and walks the data in a guarded goroutine.
//   - raft.db's free list stays synced (plain storage does not sync it):
//     without it bbolt rebuilds the list by a walk, at open and after
//     every rolled-back write, that panics in its own goroutine on a
//     damaged page (BoltOptions). par's own pread walk (walkBoltTree)
//     checks the same conditions at open.
//   - In multi-node clusters (Config.ParallelJournal) identifiers are
//     written with O_DIRECT before the bbolt commit, whose fdatasync of
//     raft.db flushes the device and so makes them durable too (direct.go:
//     no extra fdatasync; needs O_DIRECT and one device, else they are
//     fdatasync'ed concurrently with the commit, the paper's ordering).
//     After a crash the last batch may hold identifiers without entries;
//     they are FAULTY and decided by peers. Single-node clusters write the
//     identifiers after the commit, with their own fdatasync.
//   - Conservative GetLog mode only (raft here is v1.7.3, not v1.8): no
//     caller-aware header-only reads, so the double-fault stall of §4.4
//     exists as a state (parfault family C4, built offline: unavailable by
//     design); with three voters no legal history with only the two damaged
//     tails reaches it (docs/PAR.md). A faulty entry that cannot be
//     repaired at runtime makes processLogs panic (the process restarts and
//     pre-start recovery runs).
//   - Discards happen only before raft starts (Recover); at runtime only rule
//     1 (fetch an intact copy) is applied.
//   - The model check reduces to one index by log matching: it enumerates
//     every copy state, durable term (<= 3), reply mode (answer, UNKNOWN,
//     down) and commit state of the other voters for N in {3, 5}.
//   - Voters for Recover are the initial cluster (coord.Config), not the
//     latest configuration in the log; the membership rule of §4.4 (quorum
//     in every uncommitted configuration) is not implemented.
//   - The journal is preallocated with written zeros but never rewritten:
//     it grows by 64 bytes per entry and never shrinks (compaction only
//     records COMPACT_PREFIX).
//   - Snapshots: a gap is closed with a peer's snapshot, else with
//     entries from a peer's log anchored at our first identifier; a node
//     whose log is empty after compaction (nothing to anchor on) can only
//     use a snapshot, and waits. Fetched entries below the first index are
//     trusted through that anchor (Log Matching), not through identifiers
//     of their own (the node no longer has them); the decision (gapCheck)
//     has its own exhaustive model check (gapfill_model_test.go). Chunk repair needs a
//     byte-identical peer snapshot, which hashicorp's independent snapshot
//     indexes give only for snapshots shipped by InstallSnapshot or taken
//     at the same applied index (no identical checkpoints, design §4.6
//     phase 2); the scrubber does not re-read snapshot chunks (they are
//     checked at start-up and on every read); par-quarantine/ is never
//     emptied.
//   - Lost-node recovery demotes by RemoveServer + AddNonvoter (raft's
//     AddNonvoter keeps an existing voter a voter; there is no DemoteVoter
//     RPC in coord), and learns the leader's commit index through
//     Peer.ReadIndex. The design's fallback (rejoin under a new server id
//     when not every voter answers) is not built: the procedure waits.
//   - A node learns that peers know its name only from their durable
//     records (PeerRepair.Hello); a new identity waits (at most freshWait,
//     3 s) until Q-1 peers recorded it, and a node without identity waits
//     at most freshWait for Q-1 answers before starting as new, so a naive
//     reformat is caught only when a peer that knows the name answers in
//     time (a fresh cluster started one node at a time must still start). The responder echoes the requester's cluster id
//     until it has an identity of its own.
//   - Start-up also validates bbolt's freelist and root pages (boltcheck.go):
//     a freelist page with a garbage overflow field made raft-boltdb's open
//     loop (found by coordfault family I).
package par
