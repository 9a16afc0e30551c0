package core

import "time"

// Timing is the protocol timing shared by every member of a group.
type Timing struct {
	LeaseDuration time.Duration // t_max: every proposed lease expires now+LeaseDuration
	MaxClockError time.Duration // ε: bound on each node's offset from true time
	RoundTimeout  time.Duration // per phase
	RenewAfter    time.Duration // renew this long after a lease was decided
	MaxMessageAge time.Duration // acceptors drop requests older than this (sender wall clock)
	BackoffBase   time.Duration // first retry backoff; doubles up to RoundTimeout
	MaxAttempts   int           // failed rounds before a one-shot request reports NoQuorum
	MaxDriftPPM   int           // ρ, clock rate error bound in parts per million
}

// RestartWait is W, the time a freshly started member stays silent in every
// role. It covers every lease it may have voted for before the start
// (LeaseDuration), the clock margins on both sides (4ε: expiry is judged with
// ε by the taker, and message ages are measured across two clocks), and the
// oldest request an acceptor still processes (MaxMessageAge), stretched by
// the rate error ρ.
func (t Timing) RestartWait() time.Duration {
	base := t.LeaseDuration + t.MaxMessageAge + 4*t.MaxClockError
	return base + time.Duration(int64(base)/1e6*int64(2*t.MaxDriftPPM))
}

// holderSpan is how long, on the monotonic clock from the decision, the
// holder may use a lease of duration d: (d − ε)·(1 − ρ).
func (t Timing) holderSpan(d time.Duration) time.Duration {
	s := d - t.MaxClockError
	return s - time.Duration(int64(s)/1e6*int64(t.MaxDriftPPM))
}

// Knobs are deliberate safety bugs for the simulator's teeth tests. The zero
// value is the correct protocol; production code never sets them (the type
// lives in an internal package).
type Knobs struct {
	NoRestartWait            bool // members start serving at once (XtreemFS clean restart)
	NoClockMargin            bool // validity and takeover without ε
	EpochIgnoresMax          bool // new epoch = wall µs only (no eMax+1)
	EpochIgnoresWall         bool // new epoch = eMax+1 only (no wall µs)
	SelfVotesWhileRecovering bool // during W only remote requests are refused; the own proposer runs and its local acceptor votes (XtreemFS)
	AcceptLowerBallots       bool // acceptor ignores its promise on Accept
}
