package sim

import "coord/lease/internal/core"

// wallBase puts virtual true time 0 at a realistic unix time so wall-clock
// epochs (µs) look like production ones.
const wallBase = int64(1_750_000_000) * 1e9

// clockModel is one node's clocks as functions of true time T (ns):
// wall(T) = wallBase + T + off + T·ppm/1e6, mono(T) = monoBase + T + T·ppm/1e6.
// |off| + |T·ppm/1e6| stays within ε for the whole run.
type clockModel struct {
	off, ppm, monoBase int64
}

func (c clockModel) drift(t int64) int64 { return t / 1_000_000 * c.ppm }

func (c clockModel) wall(t int64) int64 { return wallBase + t + c.off + c.drift(t) }
func (c clockModel) mono(t int64) int64 { return c.monoBase + t + c.drift(t) }

func (c clockModel) instant(t int64) core.Instant {
	return core.Instant{Wall: c.wall(t), Mono: durationOf(c.mono(t)), ClockOK: true}
}

// firstAt returns the smallest true time T ≥ lo with f(T) ≥ target, for a
// non-decreasing f. It is exact (binary search), so the checker neither
// invents nor hides overlaps through rounding.
func firstAt(f func(int64) int64, lo, target int64) int64 {
	if f(lo) >= target {
		return lo
	}
	hi := lo + 1
	for f(hi) < target {
		hi = lo + (hi-lo)*2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if f(mid) >= target {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}
