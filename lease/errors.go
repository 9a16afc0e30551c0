package lease

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Every error the package returns wraps one of these (test
// with errors.Is); Lease.Err reports why a lease ended with one of them.
var (
	// ErrInvalidConfig: Config.Validate found a problem (see *ConfigError).
	ErrInvalidConfig = errors.New("lease: invalid config")
	// ErrBadResource: a resource name is empty, longer than 512 bytes, not
	// UTF-8 or contains NUL.
	ErrBadResource = errors.New("lease: bad resource name")
	// ErrLeaseHeld: TryAcquire found a valid lease of another holder (see
	// *HeldError for who).
	ErrLeaseHeld = errors.New("lease: held by another holder")
	// ErrNotOwner: Renew or Release on a lease this caller no longer holds.
	ErrNotOwner = errors.New("lease: not the owner")
	// ErrClockUnsafe: the clock guard does not vouch for the local clock, so
	// the node neither grants nor honours leases.
	ErrClockUnsafe = errors.New("lease: clock error bound unknown or above ε")
	// ErrRecovering: the node is inside its restart wait.
	ErrRecovering = errors.New("lease: node recovering (restart wait)")
	// ErrNoQuorum: MaxAttempts rounds failed to reach a majority.
	ErrNoQuorum = errors.New("lease: no quorum")
	// ErrConfigMismatch: a peer runs another group id or config version.
	ErrConfigMismatch = errors.New("lease: group config mismatch")
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("lease: node closed")
	// ErrExpired: a lease reached its deadline without a committed renewal.
	ErrExpired = errors.New("lease: expired")
	// ErrRenewFailed: a renewal found the lease no longer ours.
	ErrRenewFailed = errors.New("lease: renewal failed")
	// ErrReleased: the lease was released by its holder.
	ErrReleased = errors.New("lease: released")
)

// HeldError is returned (wrapping ErrLeaseHeld) by TryAcquire when another
// holder has a valid lease.
type HeldError struct {
	Holder NodeID
	Epoch  uint64
	Expiry time.Time
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lease: held by %s (epoch %d) until %s", e.Holder, e.Epoch, e.Expiry.Format(time.RFC3339Nano))
}

// Unwrap makes errors.Is(err, ErrLeaseHeld) true.
func (e *HeldError) Unwrap() error { return ErrLeaseHeld }

// ConfigError is one problem found by Config.Validate.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("lease: config: %s %s", e.Field, e.Reason) }

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }
