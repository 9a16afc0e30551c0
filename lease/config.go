package lease

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"coord/lease/internal/core"
)

// Defaults (design §4.8).
const (
	DefaultLeaseDuration = 10 * time.Second
	DefaultMaxClockError = 100 * time.Millisecond
	DefaultRoundTimeout  = 500 * time.Millisecond
	DefaultBackoffBase   = 5 * time.Millisecond
	DefaultMaxAttempts   = 3
	DefaultMaxDriftPPM   = 200
	// MaxMembers is the largest group.
	MaxMembers = 7
)

// Config configures one Node: one member of one lease group.
type Config struct {
	// ID is this member's ID; it must appear in Members.
	ID NodeID
	// Group names the lease group; every peer message carries it.
	Group string
	// Version is the group's config version; peers with another version are
	// refused (ErrConfigMismatch).
	Version uint64
	// Members lists the group, this node included, in the same order on
	// every member (a member's index is its ballot tie-break).
	Members []Member

	// LeaseDuration is t_max: every lease expires this long after it was
	// proposed unless renewed.
	LeaseDuration time.Duration
	// MaxClockError is ε: the bound on every member's offset from true time,
	// enforced by the Clock (the NTP guard).
	MaxClockError time.Duration
	// RoundTimeout bounds each of the two phases of a round.
	RoundTimeout time.Duration
	// RenewAfter is how long after a lease was decided it is renewed;
	// 0 means LeaseDuration/2.
	RenewAfter time.Duration
	// MaxMessageAge: acceptors drop requests older than this (by the
	// sender's wall clock); 0 means 2·RoundTimeout.
	MaxMessageAge time.Duration
	// BackoffBase is the first retry backoff (doubling, capped at
	// RoundTimeout, full jitter).
	BackoffBase time.Duration
	// MaxAttempts is how many failed rounds TryAcquire, Holder and Release
	// make before ErrNoQuorum.
	MaxAttempts int
	// MaxDriftPPM is ρ, the clock rate error bound in parts per million.
	MaxDriftPPM int

	// Clock is required: an NTP guard (lease/ntpguard), or UncheckedClock
	// for single-host development.
	Clock Clock
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Shards is the number of event loops (resources are hashed onto
	// them); 0 means 2.
	Shards int
	// DialOptions are added to the defaults (insecure, loopback; or TLS)
	// when the node dials its peers.
	DialOptions []grpc.DialOption
	// TLS, when set, makes Flease traffic mutual TLS (tls.go): the node
	// dials each member with this certificate and accepts it only if its
	// certificate names that member's ID, and refuses FleasePeer requests
	// whose certificate does not name their sender. Serve the node with
	// ServerCredentials(TLS). Nil: plaintext (loopback only).
	TLS *TLSStore
}

// DefaultConfig returns the default timings; the caller fills ID, Group,
// Members and Clock.
func DefaultConfig() Config {
	return Config{
		LeaseDuration: DefaultLeaseDuration,
		MaxClockError: DefaultMaxClockError,
		RoundTimeout:  DefaultRoundTimeout,
		BackoffBase:   DefaultBackoffBase,
		MaxAttempts:   DefaultMaxAttempts,
		MaxDriftPPM:   DefaultMaxDriftPPM,
	}
}

func (c Config) withDefaults() Config {
	if c.RenewAfter == 0 {
		c.RenewAfter = c.LeaseDuration / 2
	}
	if c.MaxMessageAge == 0 {
		c.MaxMessageAge = 2 * c.RoundTimeout
	}
	if c.Shards == 0 {
		c.Shards = 2
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) timing() core.Timing {
	return core.Timing{
		LeaseDuration: c.LeaseDuration, MaxClockError: c.MaxClockError, RoundTimeout: c.RoundTimeout,
		RenewAfter: c.RenewAfter, MaxMessageAge: c.MaxMessageAge, BackoffBase: c.BackoffBase,
		MaxAttempts: c.MaxAttempts, MaxDriftPPM: c.MaxDriftPPM,
	}
}

// RestartWait is how long a node started with this config stays silent in
// every role: (LeaseDuration + MaxMessageAge + 4·MaxClockError)·(1+2ρ).
func (c Config) RestartWait() time.Duration { return c.withDefaults().timing().RestartWait() }

// Validate reports every problem with c (errors.Join of *ConfigError, each
// wrapping ErrInvalidConfig). Timing problems name the inequality broken.
// Unset RenewAfter and MaxMessageAge are checked at their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	d, eps, rt := c.LeaseDuration, c.MaxClockError, c.RoundTimeout
	if eps <= 0 {
		bad("MaxClockError", "%v must be > 0", eps)
	} else if eps > d/4 {
		bad("MaxClockError", "%v must be ≤ LeaseDuration/4 = %v", eps, d/4)
	}
	if rt < time.Millisecond {
		bad("RoundTimeout", "%v must be ≥ 1ms", rt)
	} else if rt > d/4 {
		bad("RoundTimeout", "%v must be ≤ LeaseDuration/4 = %v", rt, d/4)
	}
	if min := 2*rt + 2*eps; d <= min {
		bad("LeaseDuration", "%v must exceed 2·RoundTimeout + 2·MaxClockError = %v", d, min)
	}
	if c.RenewAfter < rt {
		bad("RenewAfter", "%v must be ≥ RoundTimeout = %v", c.RenewAfter, rt)
	} else if max := d - eps - 2*rt; c.RenewAfter > max {
		bad("RenewAfter", "%v must be ≤ LeaseDuration − MaxClockError − 2·RoundTimeout = %v (time for two renewal attempts)", c.RenewAfter, max)
	}
	if c.MaxMessageAge < rt {
		bad("MaxMessageAge", "%v must be ≥ RoundTimeout = %v", c.MaxMessageAge, rt)
	}
	if c.BackoffBase <= 0 || c.BackoffBase > rt {
		bad("BackoffBase", "%v must be in (0, RoundTimeout = %v]", c.BackoffBase, rt)
	}
	if c.MaxAttempts < 1 {
		bad("MaxAttempts", "%d must be ≥ 1", c.MaxAttempts)
	}
	if c.MaxDriftPPM < 1 || c.MaxDriftPPM > 1000 {
		bad("MaxDriftPPM", "%d must be in [1, 1000]", c.MaxDriftPPM)
	}
	if c.Shards < 1 || c.Shards > 256 {
		bad("Shards", "%d must be in [1, 256]", c.Shards)
	}
	if c.ID == "" {
		bad("ID", "must be set")
	}
	if c.Group == "" {
		bad("Group", "must be set")
	}
	if n := len(c.Members); n < 1 || n > MaxMembers {
		bad("Members", "%d members; a group has 1 to %d", n, MaxMembers)
	}
	seen := map[NodeID]bool{}
	self := false
	for i, m := range c.Members {
		if m.ID == "" || m.Addr == "" {
			bad("Members", "member %d needs an ID and an Addr", i)
		}
		if seen[m.ID] {
			bad("Members", "duplicate member ID %q", m.ID)
		}
		seen[m.ID] = true
		self = self || m.ID == c.ID
	}
	if c.ID != "" && !self {
		bad("Members", "must include this node's ID %q", c.ID)
	}
	if c.Clock == nil {
		bad("Clock", "must be set: an NTP guard (lease/ntpguard), or lease.UncheckedClock for single-host development")
	}
	return errors.Join(errs...)
}
