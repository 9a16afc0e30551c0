package core

import "time"

// Acceptor is a member's acceptor role: one Register per resource, the
// restart wait, and the stale-request filter. Pure: time is passed in.
type Acceptor struct {
	self         int
	timing       Timing
	knobs        Knobs
	recoverUntil time.Duration
	cells        map[string]*acceptorCell
}

type acceptorCell struct {
	Register
	lastTouch time.Duration
}

// NewAcceptor returns the acceptor of member self, started at start. It
// refuses every request until start.Mono + RestartWait.
func NewAcceptor(self int, t Timing, k Knobs, start Instant) *Acceptor {
	a := &Acceptor{self: self, timing: t, knobs: k, cells: make(map[string]*acceptorCell)}
	if !k.NoRestartWait {
		a.recoverUntil = start.Mono + t.RestartWait()
	}
	return a
}

// RecoverUntil is the monotonic instant at which the restart wait ends.
func (a *Acceptor) RecoverUntil() time.Duration { return a.recoverUntil }

// Recovering reports whether the restart wait is still running at now.
func (a *Acceptor) Recovering(now Instant) bool { return now.Mono < a.recoverUntil }

// Refusal says why an acceptor did not answer.
type Refusal uint8

// Refusal reasons.
const (
	Answered   Refusal = iota
	Recovering         // inside the restart wait
	ClockBad           // the acceptor's clock is not vouched for
	Stale              // the request is older than MaxMessageAge
	NotRequest         // not a Prepare or Accept
)

// Handle processes a Prepare or Accept and returns the reply. When it
// refuses (see Refusal) it made no promise and changed nothing.
func (a *Acceptor) Handle(now Instant, m Message) (Message, Refusal) {
	if m.Kind != MsgPrepare && m.Kind != MsgAccept {
		return Message{}, NotRequest
	}
	if a.Recovering(now) && !(a.knobs.SelfVotesWhileRecovering && m.From == a.self) {
		return Message{}, Recovering
	}
	if !now.ClockOK {
		return Message{}, ClockBad
	}
	if now.Wall-m.Sent > int64(a.timing.MaxMessageAge) {
		return Message{}, Stale
	}
	c := a.cells[m.Resource]
	if c == nil {
		c = &acceptorCell{}
		a.cells[m.Resource] = c
	}
	c.lastTouch = now.Mono
	r := Message{From: a.self, To: m.From, Resource: m.Resource, Ballot: m.Ballot, Sent: now.Wall}
	switch m.Kind {
	case MsgPrepare:
		res := c.Prepare(m.Ballot)
		r.Kind, r.OK, r.Promised, r.Accepted, r.Value = MsgPrepareReply, res.OK, res.Promised, res.Accepted, res.Value
	case MsgAccept:
		r.Kind = MsgAcceptReply
		r.OK, r.Promised = c.Accept(m.Ballot, m.Value, a.knobs.AcceptLowerBallots)
	}
	return r, Answered
}

// Cell returns a copy of the register for res (zero if none).
func (a *Acceptor) Cell(res string) Register {
	if c := a.cells[res]; c != nil {
		return c.Register
	}
	return Register{}
}

// Len is the number of live cells.
func (a *Acceptor) Len() int { return len(a.cells) }

// GC drops cells untouched for RestartWait whose value expired more than ε
// ago on this clock. Dropping a cell is amnesia for that one cell, which the
// restart-wait argument already covers.
func (a *Acceptor) GC(now Instant) int {
	if !now.ClockOK {
		return 0
	}
	n := 0
	for res, c := range a.cells {
		if now.Mono-c.lastTouch > a.timing.RestartWait() &&
			now.Wall-int64(a.timing.MaxClockError) > c.Value.Expiry {
			delete(a.cells, res)
			n++
		}
	}
	return n
}
