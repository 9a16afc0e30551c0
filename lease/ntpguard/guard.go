package ntpguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/beevik/ntp"

	"coord/lease"
)

// Defaults (design §4.9).
const (
	DefaultPollInterval   = 16 * time.Second
	DefaultQueryTimeout   = time.Second
	DefaultMaxSyncAge     = 64 * time.Second
	DefaultJumpTolerance  = 5 * time.Millisecond
	DefaultJumpCheckEvery = 10 * time.Millisecond
)

// Config configures a Guard.
type Config struct {
	// Servers are NTP servers as host:port; at least one.
	Servers []string
	// MaxClockError is ε; it must equal the lease group's MaxClockError.
	MaxClockError time.Duration
	// MaxDriftPPM is ρ (0: 200).
	MaxDriftPPM int
	// MinAgree is how many servers must vouch for the clock (0: a
	// majority of Servers).
	MinAgree int
	// PollInterval, QueryTimeout, MaxSyncAge, JumpTolerance and
	// JumpCheckEvery: 0 means the Default* constant.
	PollInterval   time.Duration
	QueryTimeout   time.Duration
	MaxSyncAge     time.Duration
	JumpTolerance  time.Duration
	JumpCheckEvery time.Duration
	// Logger: nil discards.
	Logger *slog.Logger
	// Now is the local wall clock (nil: time.Now). Tests inject skew here;
	// it is also what the NTP exchange timestamps with. The monotonic clock
	// is always the process's own.
	Now func() time.Time
}

// State is the guard's verdict.
type State uint8

// States.
const (
	Unknown State = iota // no good poll yet
	OK                   // bound ≤ ε
	Unsafe               // bound > ε, too old, or a step was seen
)

func (s State) String() string { return [...]string{"unknown", "ok", "unsafe"}[s] }

// Status is a snapshot of the guard.
type Status struct {
	State    State
	Bound    time.Duration // current error bound (valid when State is OK)
	LastGood time.Time     // wall time of the last good poll
	Reason   string        // why not OK
}

// Guard implements lease.Clock.
type Guard struct {
	cfg    Config
	log    *slog.Logger
	origin time.Time
	repoll chan struct{}

	mu        sync.Mutex
	good      bool          // a good poll happened and nothing since invalidated it
	bound     time.Duration // bound at the last good poll
	goodMono  time.Duration // monotonic time of the last good poll
	goodWall  time.Time
	reason    string
	lastWall  int64 // for step detection
	lastMono  time.Duration
	lastCheck time.Duration
}

var _ lease.Clock = (*Guard)(nil)

// New validates cfg and returns a guard in state Unknown.
func New(cfg Config) (*Guard, error) {
	var errs []error
	if len(cfg.Servers) == 0 {
		errs = append(errs, errors.New("ntpguard: no Servers (use lease.UncheckedClock for single-host development)"))
	}
	if cfg.MaxClockError <= 0 {
		errs = append(errs, errors.New("ntpguard: MaxClockError must be > 0"))
	}
	if cfg.MinAgree > len(cfg.Servers) {
		errs = append(errs, fmt.Errorf("ntpguard: MinAgree %d exceeds %d servers", cfg.MinAgree, len(cfg.Servers)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.PollInterval, DefaultPollInterval)
	def(&cfg.QueryTimeout, DefaultQueryTimeout)
	def(&cfg.MaxSyncAge, DefaultMaxSyncAge)
	def(&cfg.JumpTolerance, DefaultJumpTolerance)
	def(&cfg.JumpCheckEvery, DefaultJumpCheckEvery)
	if cfg.MaxDriftPPM == 0 {
		cfg.MaxDriftPPM = lease.DefaultMaxDriftPPM
	}
	if cfg.MinAgree == 0 {
		cfg.MinAgree = len(cfg.Servers)/2 + 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{cfg: cfg, log: cfg.Logger, origin: time.Now(), repoll: make(chan struct{}, 1), reason: "no poll yet"}
	return g, nil
}

func (g *Guard) drift(d time.Duration) time.Duration {
	return time.Duration(int64(d) / 1e6 * int64(g.cfg.MaxDriftPPM))
}

// Now implements lease.Clock: the local clock, with ClockOK only while the
// bound holds. It also runs the step detector.
func (g *Guard) Now() lease.Instant {
	in := lease.Instant{Wall: g.cfg.Now().UnixNano(), Mono: time.Since(g.origin)}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.detectStep(in)
	if g.good {
		age := in.Mono - g.goodMono
		switch {
		case age > g.cfg.MaxSyncAge:
			g.invalidate(fmt.Sprintf("last good poll %v ago exceeds MaxSyncAge %v", age.Round(time.Millisecond), g.cfg.MaxSyncAge))
		case g.bound+g.drift(age) > g.cfg.MaxClockError:
			g.invalidate(fmt.Sprintf("error bound %v grew past ε %v", g.bound+g.drift(age), g.cfg.MaxClockError))
		}
	}
	in.ClockOK = g.good
	return in
}

// detectStep compares wall and monotonic progress since the last reading
// (at most every JumpCheckEvery); a difference above JumpTolerance is a
// step: unsafe at once, and a re-poll is requested. Caller holds mu.
func (g *Guard) detectStep(in lease.Instant) {
	if g.lastWall != 0 && in.Mono-g.lastCheck < g.cfg.JumpCheckEvery {
		return
	}
	if g.lastWall != 0 {
		step := time.Duration(in.Wall-g.lastWall) - (in.Mono - g.lastMono)
		if step.Abs() > g.cfg.JumpTolerance+g.drift(in.Mono-g.lastMono) {
			if g.good {
				g.invalidate(fmt.Sprintf("wall clock stepped by %v", step))
			}
			select {
			case g.repoll <- struct{}{}:
			default:
			}
		}
	}
	g.lastWall, g.lastMono, g.lastCheck = in.Wall, in.Mono, in.Mono
}

// invalidate marks the clock unsafe. Caller holds mu.
func (g *Guard) invalidate(reason string) {
	g.good = false
	g.reason = reason
	g.log.Error("ntpguard: CLOCK UNSAFE: leases are refused and held leases are lost", "reason", reason)
}

// Status returns a snapshot.
func (g *Guard) Status() Status {
	in := g.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	st := Status{LastGood: g.goodWall, Reason: g.reason}
	switch {
	case in.ClockOK:
		st.State, st.Bound, st.Reason = OK, g.bound+g.drift(in.Mono-g.goodMono), ""
	case g.goodWall.IsZero():
		st.State = Unknown
	default:
		st.State = Unsafe
	}
	return st
}

// Run polls until ctx ends: at once, then every PollInterval, and right
// after a detected step. It returns ctx.Err().
func (g *Guard) Run(ctx context.Context) error {
	t := time.NewTicker(g.cfg.PollInterval)
	defer t.Stop()
	check := time.NewTicker(max(g.cfg.JumpCheckEvery, 100*time.Millisecond))
	defer check.Stop()
	g.Poll(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			g.Poll(ctx)
		case <-check.C:
			g.Now() // runs the step detector even when no one reads the clock
		case <-g.repoll:
			g.Poll(ctx)
		}
	}
}

type sample struct {
	server string
	bound  time.Duration
	err    error
}

// Poll queries every server once (concurrently) and updates the state. It
// returns an error describing why the clock is not OK, or nil.
func (g *Guard) Poll(ctx context.Context) error {
	start := g.Now()
	samples := make([]sample, len(g.cfg.Servers))
	var wg sync.WaitGroup
	for i, srv := range g.cfg.Servers {
		wg.Add(1)
		go func() { // bounded by QueryTimeout; Poll waits for it
			defer wg.Done()
			samples[i] = g.query(srv)
		}()
	}
	wg.Wait()
	var bounds []time.Duration
	answered := 0
	var bad []string
	margin := g.drift(g.cfg.PollInterval)
	for _, s := range samples {
		if s.err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", s.server, s.err))
			continue
		}
		answered++
		if s.bound+margin > g.cfg.MaxClockError {
			bad = append(bad, fmt.Sprintf("%s: bound %v + drift margin %v > ε %v", s.server, s.bound, margin, g.cfg.MaxClockError))
			continue
		}
		bounds = append(bounds, s.bound)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(bounds) >= g.cfg.MinAgree {
		slices.Sort(bounds)
		wasGood := g.good
		g.good, g.bound, g.goodMono, g.goodWall, g.reason = true, bounds[g.cfg.MinAgree-1], start.Mono, time.Unix(0, start.Wall), ""
		if !wasGood {
			g.log.Info("ntpguard: clock OK", "bound", g.bound, "agree", len(bounds), "servers", len(samples))
		}
		return nil
	}
	reason := fmt.Sprintf("%d of %d servers vouch for the clock, need %d: %v", len(bounds), len(samples), g.cfg.MinAgree, bad)
	if answered >= g.cfg.MinAgree || !g.good {
		// Measured bad (or never good): unsafe now.
		if g.good {
			g.invalidate(reason)
		} else {
			g.reason = reason
		}
		return errors.New("ntpguard: " + reason)
	}
	// Servers silent: keep the old bound until MaxSyncAge.
	g.log.Warn("ntpguard: poll failed; keeping the last bound until MaxSyncAge", "reason", reason)
	return errors.New("ntpguard: " + reason)
}

func (g *Guard) query(srv string) sample {
	r, err := ntp.QueryWithOptions(srv, ntp.QueryOptions{Timeout: g.cfg.QueryTimeout, GetSystemTime: g.cfg.Now})
	if err != nil {
		return sample{server: srv, err: err}
	}
	if err := r.Validate(); err != nil {
		return sample{server: srv, err: err}
	}
	return sample{server: srv, bound: r.ClockOffset.Abs() + r.RTT/2}
}
