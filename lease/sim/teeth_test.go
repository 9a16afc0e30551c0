package sim

import (
	"testing"
	"time"

	"coord/lease/internal/core"
)

// firstViolation runs seeds 0..limit-1 with knobs and returns the first seed
// that the checker flags, or -1.
func firstViolation(k core.Knobs, clockErr time.Duration, limit int) (int, Result) {
	for seed := 0; seed < limit; seed++ {
		c := cfg(uint64(seed))
		c.Knobs, c.ClockError = k, clockErr
		if r := Run(c); len(r.Violations) > 0 {
			return seed, r
		}
	}
	return -1, Result{}
}

func TestRun_Teeth(t *testing.T) {
	for _, tc := range []struct {
		name     string
		k        core.Knobs
		clockErr time.Duration
	}{
		{"clocks 3ε off, guard disabled", core.Knobs{}, 3 * TestTiming().MaxClockError},
		{"no restart wait", core.Knobs{NoRestartWait: true}, 0},
		{"validity without ε", core.Knobs{NoClockMargin: true}, 0},
		{"epoch without max", core.Knobs{EpochIgnoresMax: true}, 0},
		{"epoch without wall term", core.Knobs{EpochIgnoresWall: true}, 0},
		{"own proposer bypasses restart wait", core.Knobs{SelfVotesWhileRecovering: true}, 0},
		{"acceptor ignores promise", core.Knobs{AcceptLowerBallots: true}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed, r := firstViolation(tc.k, tc.clockErr, 1000)
			if seed < 0 {
				t.Fatalf("no violation in 1000 seeds: the checker or the fault model has no teeth for %q", tc.name)
			}
			t.Logf("caught at seed %d: %s", seed, r.Violations[0])
		})
	}
}
