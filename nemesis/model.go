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
