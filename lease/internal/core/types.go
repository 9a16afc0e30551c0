package core

import (
	"fmt"
	"time"
)

// NodeID names a group member; stable across restarts ("osd-7").
type NodeID string

// Ballot is a register ballot. Ballots are totally ordered by (Round,
// Proposer, Inc). Proposer is the member's index in the group; Inc is the low
// 32 bits of the proposer's incarnation, so two incarnations of one member
// never produce the same ballot even if their rounds collide.
type Ballot struct {
	Round    uint64
	Proposer uint32
	Inc      uint32
}

// IsZero reports whether b is the zero ballot (never used by a proposer).
func (b Ballot) IsZero() bool { return b == Ballot{} }

// Less reports whether b orders strictly before o.
func (b Ballot) Less(o Ballot) bool {
	if b.Round != o.Round {
		return b.Round < o.Round
	}
	if b.Proposer != o.Proposer {
		return b.Proposer < o.Proposer
	}
	return b.Inc < o.Inc
}

func (b Ballot) String() string { return fmt.Sprintf("%d.%d.%x", b.Round, b.Proposer, b.Inc) }

// Value is the register content: a lease. The zero Value is ⊥ (no lease).
// A released value keeps its Epoch so the maximum epoch survives releases.
type Value struct {
	Owner    NodeID
	OwnerInc uint64
	Expiry   int64 // absolute wall time, unix ns
	Epoch    uint64
	Released bool
}

// IsZero reports whether v is ⊥.
func (v Value) IsZero() bool { return v == Value{} }

// Free reports whether v names no usable lease (⊥ or released).
func (v Value) Free() bool { return v.IsZero() || v.Released }

// Instant is one reading of a node's clocks, passed into the pure core.
type Instant struct {
	Wall    int64         // wall clock, unix ns (no monotonic part)
	Mono    time.Duration // monotonic clock since an arbitrary origin
	ClockOK bool          // the clock guard vouches that |Wall − true time| ≤ ε
}

// MsgKind is the type of a peer message.
type MsgKind uint8

// Message kinds. Prepare and Accept go proposer → acceptor; their replies go
// back; Learn is a fire-and-forget hint between members.
const (
	MsgPrepare MsgKind = iota + 1
	MsgPrepareReply
	MsgAccept
	MsgAcceptReply
	MsgLearn
)

var msgKindNames = [...]string{"?", "prepare", "prepare-reply", "accept", "accept-reply", "learn"}

func (k MsgKind) String() string {
	if int(k) < len(msgKindNames) {
		return msgKindNames[k]
	}
	return "?"
}

// Message is one peer message about one resource. From and To are member
// indices. Sent is the sender's wall clock at send time (unix ns).
type Message struct {
	Kind     MsgKind
	From, To int
	Resource string
	Ballot   Ballot
	Sent     int64
	OK       bool   // replies: ack (true) or nack
	Promised Ballot // nack: the ballot that caused it
	Accepted Ballot // prepare ack: ballot of the accepted value
	Value    Value  // prepare ack: accepted value; accept: proposal; learn: committed value
}
