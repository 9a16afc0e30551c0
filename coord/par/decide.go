package par

// This file holds the repair decision rules (design §4.4) as pure
// functions; decide_test.go model-checks them exhaustively.

// Status is a responder's answer about one (index, term).
type Status int

const (
	StatusUnknown            Status = iota // damaged or unsure: never a nack
	StatusHave                             // intact copy (bytes attached)
	StatusDontHave                         // durably never held (i, t)
	StatusHaveFaulty                       // holds (i, t), its copy is damaged
	StatusCommittedCompacted               // i committed and compacted away
	StatusConflictsCommitted               // a different term is committed at i
)

// Reply is one peer's answer about the item being decided.
type Reply struct {
	From   string
	Status Status
	// Verified: for StatusHave, the bytes verify against the requester's
	// own identifier checksum.
	Verified bool
	// DurableTerm is the responder's persisted current term.
	DurableTerm uint64
}

// Action is the decision for one faulty (index, term).
type Action int

const (
	ActWait          Action = iota // keep retrying (rule 5)
	ActFix                         // write the verified copy (rule 1)
	ActDiscard                     // discard the suffix from index (rules 2 and 4)
	ActFetchSnapshot               // committed and compacted elsewhere (rule 3)
)

var actionNames = [...]string{"wait", "fix", "discard", "fetch-snapshot"}

func (a Action) String() string { return actionNames[a] }

// Rules are the knobs of Decide. DefaultRules are the safe ones; the model
// check shows that each weakening is unsafe.
type Rules struct {
	// NackThreshold(n) is how many distinct other voters must nack; safe is
	// n - quorum(n) + 1.
	NackThreshold func(voters int) int
	// RequireNewerTerm: a nack counts only if the responder's durable term
	// exceeds the requester's last log term.
	RequireNewerTerm bool
	// FaultyIsNack counts HAVE_FAULTY as a nack (unsafe; for the check).
	FaultyIsNack bool
}

// Quorum is the majority of n voters.
func Quorum(n int) int { return n/2 + 1 }

// DefaultRules are the rules par runs with.
var DefaultRules = Rules{
	NackThreshold:    func(n int) int { return n - Quorum(n) + 1 },
	RequireNewerTerm: true,
}

// Decide applies rules 1-5 to the replies about one faulty entry of the
// requester. voters counts the voters of the configuration, the requester
// included; tLast is the term of the requester's last log entry. Replies
// from the same peer must be deduplicated by the caller (only the last
// counts here too).
func Decide(r Rules, voters int, tLast uint64, replies []Reply) Action {
	nackers := map[string]bool{}
	compacted := false
	for _, rep := range replies {
		switch rep.Status {
		case StatusHave:
			if rep.Verified {
				return ActFix // rule 1
			}
		case StatusConflictsCommitted:
			return ActDiscard // rule 2
		case StatusCommittedCompacted:
			compacted = true
		case StatusDontHave:
			if !r.RequireNewerTerm || rep.DurableTerm > tLast {
				nackers[rep.From] = true
			}
		case StatusHaveFaulty:
			if r.FaultyIsNack && (!r.RequireNewerTerm || rep.DurableTerm > tLast) {
				nackers[rep.From] = true
			}
		}
	}
	if compacted {
		return ActFetchSnapshot // rule 3
	}
	if len(nackers) >= r.NackThreshold(voters) {
		return ActDiscard // rule 4
	}
	return ActWait // rule 5
}
