package par

// This file is the start-up decision table (design §4.3.3): for each index,
// the state of its identifier record and of its bolt entry decide what
// pre-start recovery does. It is pure and table-tested exhaustively.

// IDState is the state of an index's identifier record.
type IDState int

const (
	// IDValid: a valid APPEND/ADOPT record names (i, t, cksum).
	IDValid IDState = iota
	// IDCorrupt: no valid record, but the journal has corrupt slots before
	// its last valid record (so one of them may have been i's).
	IDCorrupt
	// IDNone: beyond the last valid record and no mid-journal damage.
	IDNone
	// IDCompacted: a COMPACT_PREFIX record covers i.
	IDCompacted
)

// EntryState is the state of an index's bolt entry.
type EntryState int

const (
	// EntryOK: present, decodes, checksum verifies, index matches, and (when
	// the identifier is valid) term and checksum equal the identifier's.
	EntryOK EntryState = iota
	// EntryBad: missing, undecodable, failing its checksum, a read error or
	// panic, or disagreeing with a valid identifier.
	EntryBad
	// EntryAbsent: no key at all (only meaningful beyond the journal).
	EntryAbsent
)

// Verdict is what pre-start recovery does with one index.
type Verdict int

const (
	// VerdictOK: nothing to do.
	VerdictOK Verdict = iota
	// VerdictFaulty: a storage fault on an entry that may have been
	// acknowledged; repair from peers, never discard locally.
	VerdictFaulty
	// VerdictAdopt: re-derive the identifier from the verified entry
	// (ADOPT record). Keeping an intact entry is always safe.
	VerdictAdopt
	// VerdictDoubleFault: entry and identifier both damaged: refuse to
	// start (the paper crashes here too).
	VerdictDoubleFault
	// VerdictTornTail: an unacknowledged entry damaged by a crash: discard
	// it and every later bolt key (the paper's batching rule).
	VerdictTornTail
	// VerdictFinishCompact: a compaction was interrupted; delete the key.
	VerdictFinishCompact
	// VerdictNothing: no identifier and no entry: nothing there.
	VerdictNothing
)

var verdictNames = [...]string{"ok", "faulty", "adopt", "double-fault", "torn-tail", "finish-compact", "nothing"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "verdict?"
}

// Classify decides one index. contiguous reports, for an entry beyond the
// journal (IDNone) or under a corrupt record, that it follows the previous
// kept entry (index = previous+1 and term >= previous term).
func Classify(id IDState, entry EntryState, contiguous bool) Verdict {
	switch id {
	case IDValid:
		if entry == EntryOK {
			return VerdictOK
		}
		return VerdictFaulty
	case IDCorrupt:
		switch {
		case entry == EntryOK && contiguous:
			return VerdictAdopt
		case entry == EntryAbsent:
			// The damaged slot may have named this index: the entry may
			// have been acked and is now lost. Treat as a double fault.
			return VerdictDoubleFault
		default:
			return VerdictDoubleFault
		}
	case IDNone:
		switch {
		case entry == EntryAbsent:
			return VerdictNothing
		case entry == EntryOK && contiguous:
			return VerdictAdopt
		default:
			return VerdictTornTail
		}
	case IDCompacted:
		if entry == EntryAbsent {
			return VerdictNothing
		}
		return VerdictFinishCompact
	}
	return VerdictDoubleFault
}
