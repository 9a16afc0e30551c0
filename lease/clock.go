package lease

import (
	"log/slog"
	"time"

	"coord/lease/internal/core"
)

// Instant is one reading of a node's clocks: wall time (unix ns), a
// monotonic reading, and whether the clock guard vouches for the wall clock
// (|wall − true time| ≤ MaxClockError).
type Instant = core.Instant

// Clock is where a Node reads time. Implementations: an NTP guard
// (lease/ntpguard) in production, UncheckedClock for single-host
// development.
type Clock interface {
	Now() Instant
}

// SystemInstant reads time.Now as an Instant with the given monotonic origin
// and ClockOK = ok.
func SystemInstant(origin time.Time, ok bool) Instant {
	t := time.Now()
	return Instant{Wall: t.UnixNano(), Mono: t.Sub(origin), ClockOK: ok}
}

type uncheckedClock struct{ origin time.Time }

func (c uncheckedClock) Now() Instant { return SystemInstant(c.origin, true) }

// UncheckedClock returns the system clock with no error bound check: every
// reading claims to be within ε. It is for single-host development and tests
// only, where every member reads the same clock. It logs a warning when
// called so the choice is visible in every log.
func UncheckedClock(log *slog.Logger) Clock {
	if log != nil {
		log.Warn("lease: UNCHECKED CLOCK: leases are safe only if every member shares this host's clock; never use this across hosts")
	}
	return uncheckedClock{origin: time.Now()}
}
