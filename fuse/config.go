package fuse

import (
	"errors"
	"log/slog"
	"time"

	"coord/client"
)

// Defaults.
const (
	// DefaultCacheTimeout is how long the kernel may keep entries and
	// attributes without asking. It is the fallback only: watch events
	// invalidate the kernel's caches as they arrive.
	DefaultCacheTimeout = time.Second
	// DefaultMaxFileBytes bounds a file's buffered contents (writes past
	// it fail with EFBIG at write time, where bash sees the error). The
	// server has its own limit, which gives EFBIG at close.
	DefaultMaxFileBytes = 1 << 20
)

// Config configures a Mount. Zero fields take their defaults.
type Config struct {
	// Client configures the mount's one client (and its session).
	Client client.Config
	// CacheTimeout: kernel entry/attribute/negative-entry timeout.
	// Default DefaultCacheTimeout; negative means 0 (no kernel caching).
	CacheTimeout time.Duration
	// MaxFileBytes: largest file contents a write may build. Default
	// DefaultMaxFileBytes.
	MaxFileBytes int
	// Debug logs every FUSE request (go-fuse's debug output) to stderr.
	Debug bool
	// Logger receives the mount's log lines (EIO causes, session loss);
	// nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.CacheTimeout == 0 {
		c.CacheTimeout = DefaultCacheTimeout
	}
	if c.CacheTimeout < 0 {
		c.CacheTimeout = 0
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = DefaultMaxFileBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if err := c.Client.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxFileBytes < 0 {
		errs = append(errs, errors.New("MaxFileBytes must not be negative"))
	}
	return errors.Join(errs...)
}
