package nemesis

import (
	"fmt"
	"math"
	"time"

	"github.com/anishathalye/porcupine"
)

// Keys is how many registers the workload uses (/nemesis/r/k0..).
const Keys = 3

// OpKind is a register operation.
type OpKind int

// Register operations.
const (
	OpGet   OpKind = iota // linearizable Get
	OpSet                 // unconditional Set (version -1)
	OpCAS                 // Set with an expected version
	OpMulti               // Multi: Check(Key, Ver) then Set(Key2, Val)
)

func (k OpKind) String() string {
	return [...]string{"get", "set", "cas", "multi"}[k]
}

// Input is one operation's request.
type Input struct {
	Kind OpKind
	Key  int
	Key2 int    // multi: the key set
	Val  string // set, cas, multi: the new value (unique per write)
	Ver  int64  // cas: expected version of Key; multi: checked version of Key
}

// Output is one operation's outcome.
type Output struct {
	// Unknown: the write may or may not have happened (connection lost,
	// leader lost, timeout); its return time is infinite in the history.
	Unknown bool
	// OK: the write applied (false: version mismatch).
	OK bool
	// Val and Ver: what a get read, or the version a write produced.
	Val string
	Ver int64
}

type reg struct {
	val string
	ver int64
}

// state is the model's state: every register (an array, so == compares).
type state [Keys]reg

// Infinity is the return time of an operation whose outcome is unknown.
const Infinity = int64(math.MaxInt64)

// RegisterModel is the sequential specification of Keys versioned
// registers (znodes with data and a version) under get, set,
// compare-and-set and a check+set multi.
var RegisterModel = porcupine.Model{
	Init: func() any { return state{} },
	Step: func(s, in, out any) (bool, any) {
		st := s.(state)
		i, o := in.(Input), out.(Output)
		switch i.Kind {
		case OpGet:
			r := st[i.Key]
			return r.val == o.Val && r.ver == o.Ver, st
		case OpSet:
			r := st[i.Key]
			if !o.Unknown && o.Ver != r.ver+1 {
				return false, st
			}
			st[i.Key] = reg{val: i.Val, ver: r.ver + 1}
			return true, st
		case OpCAS:
			r := st[i.Key]
			if r.ver != i.Ver {
				return o.Unknown || !o.OK, st
			}
			if !o.Unknown && (!o.OK || o.Ver != r.ver+1) {
				return false, st
			}
			st[i.Key] = reg{val: i.Val, ver: r.ver + 1}
			return true, st
		case OpMulti:
			if st[i.Key].ver != i.Ver {
				return o.Unknown || !o.OK, st
			}
			r := st[i.Key2]
			if !o.Unknown && (!o.OK || o.Ver != r.ver+1) {
				return false, st
			}
			st[i.Key2] = reg{val: i.Val, ver: r.ver + 1}
			return true, st
		}
		return false, st
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(Input), out.(Output)
		res := fmt.Sprintf("ok=%v v%d %q", o.OK, o.Ver, o.Val)
		if o.Unknown {
			res = "unknown"
		}
		switch i.Kind {
		case OpGet:
			return fmt.Sprintf("get(k%d) -> %q v%d", i.Key, o.Val, o.Ver)
		case OpSet:
			return fmt.Sprintf("set(k%d, %q) -> %s", i.Key, i.Val, res)
		case OpCAS:
			return fmt.Sprintf("cas(k%d, v%d, %q) -> %s", i.Key, i.Ver, i.Val, res)
		default:
			return fmt.Sprintf("multi(check k%d v%d; set k%d %q) -> %s", i.Key, i.Ver, i.Key2, i.Val, res)
		}
	},
	DescribeState: func(s any) string {
		st := s.(state)
		return fmt.Sprintf("%v", st)
	},
}

// CheckLinearizable checks a history with porcupine within timeout.
func CheckLinearizable(ops []porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(RegisterModel, ops, timeout)
}

// writeKey is the register a write changes (-1 for a get).
func writeKey(in Input) int {
	switch in.Kind {
	case OpSet, OpCAS:
		return in.Key
	case OpMulti:
		return in.Key2
	}
	return -1
}

// ResolveUnknown shrinks the uncertainty of unknown-outcome writes before
// the check, which otherwise grows exponentially with their number (each
// stays open to the end of the history). Both steps only remove
// linearizations, so they cannot hide a violation:
//   - a write whose unique value a get observed took effect before that
//     get returned: its return time becomes the get's;
//   - when a register's final version equals the writes known to have
//     happened on it (acknowledged ones plus observed unknown ones), no
//     other write happened there: its unobserved unknown writes are
//     dropped.
//
// final maps each register to its version read after the run.
func ResolveUnknown(ops []porcupine.Operation, final map[int]int64) []porcupine.Operation {
	byVal := make(map[string]int)
	for i, op := range ops {
		in, out := op.Input.(Input), op.Output.(Output)
		if out.Unknown && writeKey(in) >= 0 {
			byVal[in.Val] = i
		}
	}
	out := make([]porcupine.Operation, len(ops))
	copy(out, ops)
	observed := make(map[int]bool)
	for _, op := range ops {
		in, o := op.Input.(Input), op.Output.(Output)
		if in.Kind != OpGet {
			continue
		}
		if i, ok := byVal[o.Val]; ok && o.Val != "" && writeKey(ops[i].Input.(Input)) == in.Key {
			observed[i] = true
			out[i].Return = min(out[i].Return, op.Return)
		}
	}
	happened := make(map[int]int64)
	for i, op := range ops {
		in, o := op.Input.(Input), op.Output.(Output)
		if k := writeKey(in); k >= 0 && ((o.OK && !o.Unknown) || observed[i]) {
			happened[k]++
		}
	}
	kept := out[:0]
	for i, op := range out {
		in, o := op.Input.(Input), op.Output.(Output)
		k := writeKey(in)
		if o.Unknown && !observed[i] && k >= 0 {
			if f, ok := final[k]; ok && happened[k] == f {
				continue
			}
		}
		kept = append(kept, op)
	}
	return kept
}
