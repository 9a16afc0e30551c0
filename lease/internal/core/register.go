package core

// Register is one acceptor cell: the round-based register of Boichat et al.
// It reads no clock and does no I/O.
type Register struct {
	Promised Ballot // r: highest ballot read (promised)
	Accepted Ballot // w: ballot of the last accepted write
	Value    Value  // v: the last accepted value
}

// PrepareResult is the answer to Prepare.
type PrepareResult struct {
	OK       bool
	Promised Ballot // on nack: the ballot that caused it
	Accepted Ballot // on ack: w
	Value    Value  // on ack: v
}

// Prepare is read(b): nack when w ≥ b or r ≥ b, else promise b.
func (r *Register) Prepare(b Ballot) PrepareResult {
	if !r.Accepted.Less(b) || !r.Promised.Less(b) {
		return PrepareResult{Promised: maxBallot(r.Promised, r.Accepted)}
	}
	r.Promised = b
	return PrepareResult{OK: true, Accepted: r.Accepted, Value: r.Value}
}

// Accept is write(b, v): nack when w > b or r > b, else store (b, v).
// lowerOK is the AcceptLowerBallots teeth knob.
func (r *Register) Accept(b Ballot, v Value, lowerOK bool) (ok bool, promised Ballot) {
	if !lowerOK && (b.Less(r.Accepted) || b.Less(r.Promised)) {
		return false, maxBallot(r.Promised, r.Accepted)
	}
	r.Promised, r.Accepted, r.Value = b, b, v
	return true, Ballot{}
}

func maxBallot(a, b Ballot) Ballot {
	if a.Less(b) {
		return b
	}
	return a
}
