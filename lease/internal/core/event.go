package core

// Op is what a round is for.
type Op uint8

// Round intents, in priority order (lowest value first when several are due).
const (
	OpNone    Op = iota
	OpRelease    // write Released over my lease
	OpRenew      // extend my lease, same epoch
	OpAcquire    // blocking acquire: retry until held
	OpTry        // one acquisition attempt (up to MaxAttempts rounds on nacks/timeouts)
	OpQuery      // linearizable read: write back the current value
)

var opNames = [...]string{"none", "release", "renew", "acquire", "try", "query"}

func (o Op) String() string { return opNames[o] }

// EventKind classifies what the member tells its host.
type EventKind uint8

// Event kinds.
const (
	EvAcquired EventKind = iota + 1 // a new tenure is mine (Value)
	EvRenewed                       // my tenure was extended (Value)
	EvLost                          // my tenure ended without a release (Value, Reason)
	EvReleased                      // a release request finished (Value: what was released)
	EvHeld                          // OpTry found another holder (Value)
	EvFailed                        // a request (Op) failed (Reason)
	EvHolder                        // OpQuery result (Value; zero if free)
	EvLearned                       // a newer committed value was seen (Value)
)

var evNames = [...]string{"?", "acquired", "renewed", "lost", "released", "held", "failed", "holder", "learned"}

func (k EventKind) String() string { return evNames[k] }

// Reason explains EvLost and EvFailed.
type Reason uint8

// Reasons.
const (
	ReasonNone        Reason = iota
	ReasonExpired            // the holder's deadline passed before a renewal committed
	ReasonRenewFailed        // a renewal read found the lease no longer mine
	ReasonClockUnsafe        // the clock guard withdrew its bound
	ReasonNoQuorum           // MaxAttempts rounds failed
	ReasonRecovering         // the member is inside its restart wait
	ReasonCancelled          // the host cancelled the request
)

var reasonNames = [...]string{"none", "expired", "renew-failed", "clock-unsafe", "no-quorum", "recovering", "cancelled"}

func (r Reason) String() string { return reasonNames[r] }

// Event is one notification from a Member to its host.
type Event struct {
	Kind     EventKind
	Resource string
	Op       Op
	Value    Value
	Reason   Reason
}
