package par

import (
	"errors"
	"fmt"
)

// Errors returned by par. Test with errors.Is.
var (
	// ErrEntryUnavailable: a log entry this node durably holds (its
	// identifier is intact) fails verification and could not be repaired in
	// time. It is never raft.ErrLogNotFound: that would make a leader ship
	// a snapshot instead.
	ErrEntryUnavailable = errors.New("par: log entry is damaged and not yet repaired")
	// ErrAmnesia: raft data exists but both term/vote copies are unreadable.
	// Never reported as "not found", so raft cannot re-bootstrap.
	ErrAmnesia = errors.New("par: term and vote lost (both copies damaged) while raft data exists")
	// ErrVoteQuarantined: the vote-quarantine flag is set; raft's
	// requestVote refuses every vote while reading LastVoteTerm fails.
	ErrVoteQuarantined = errors.New("par: votes are quarantined on this node")
	// ErrDoubleFault: an entry and its identifier are both damaged.
	ErrDoubleFault = errors.New("par: entry and its identifier are both damaged")
	// ErrUnrecoverable: pre-start recovery could not decide every faulty
	// item before its deadline (all copies damaged, or too few peers).
	ErrUnrecoverable = errors.New("par: recovery could not complete")
	// ErrLostLog: term/vote survive but the log and its identifiers are
	// gone (a replaced or wiped disk). Starting would forget acknowledged
	// entries under the same identity (the paper's Figure 2), so the node
	// refuses; recover it with coordd --par-recover or coordctl par recover
	// (docs/PAR.md).
	ErrLostLog = errors.New("par: the log and its identifiers are lost but the term/vote survive (use coordd --par-recover or coordctl par recover)")
	// ErrNaiveReformat: the data dir holds no log, no term/vote and no
	// identity, but a peer knows this node's name: the disk was wiped or
	// replaced. Starting as a fresh node could forget what the old
	// incarnation acknowledged or voted (design §4.8), so the node refuses;
	// run `coordctl par recover` or start with `coordd --par-recover`.
	ErrNaiveReformat = errors.New("par: this node's data dir was wiped but the cluster knows it; refusing to start as a fresh node (use coordd --par-recover or coordctl par recover)")
	// ErrWrongCluster: the identity files name another cluster or node.
	ErrWrongCluster = errors.New("par: the data dir belongs to another cluster or node")
	// ErrNotLost: lost-node recovery was asked for a node whose log exists.
	ErrNotLost = errors.New("par: the data dir still holds a log; start normally (no lost-node recovery)")
	// ErrBadEnvelope: bytes that are not a valid par envelope.
	ErrBadEnvelope = errors.New("par: bad log entry envelope")
	// ErrRecordTooLarge: the term/vote record exceeds its fixed sector.
	ErrRecordTooLarge = errors.New("par: stable record too large")
	// ErrJournal: the identifier journal cannot be read or written.
	ErrJournal = errors.New("par: identifier journal")
	// ErrClosed: the store is closed (or closing); PeerRepair answers
	// codes.Unavailable with it.
	ErrClosed = errors.New("par: store closed")
)

// errKeyNotFound is what raft expects (by message text) for a missing
// StableStore key on a fresh node.
var errKeyNotFound = errors.New("not found")

// FaultError describes one faulty log entry.
type FaultError struct {
	Index, Term uint64
	Reason      string
}

func (e *FaultError) Error() string {
	return fmt.Sprintf("log entry %d (term %d): %s: %v", e.Index, e.Term, e.Reason, ErrEntryUnavailable)
}

// Unwrap makes errors.Is(err, ErrEntryUnavailable) hold.
func (e *FaultError) Unwrap() error { return ErrEntryUnavailable }
