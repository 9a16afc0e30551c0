package lease

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	c := DefaultConfig()
	c.ID, c.Group = "a", "g"
	c.Members = []Member{{"a", "127.0.0.1:1"}, {"b", "127.0.0.1:2"}, {"c", "127.0.0.1:3"}}
	c.Clock = UncheckedClock(nil)
	return c
}

func TestConfig_Validate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string // substrings, each must appear
	}{
		{"lease too short for a round", func(c *Config) {
			c.LeaseDuration, c.RoundTimeout, c.MaxClockError = time.Second, 250*time.Millisecond, 250*time.Millisecond
		}, []string{"LeaseDuration 1s must exceed 2·RoundTimeout + 2·MaxClockError = 1s"}},
		{"ε too large", func(c *Config) { c.MaxClockError = 3 * time.Second },
			[]string{"MaxClockError 3s must be ≤ LeaseDuration/4 = 2.5s"}},
		{"ε zero", func(c *Config) { c.MaxClockError = 0 }, []string{"MaxClockError 0s must be > 0"}},
		{"renew too late", func(c *Config) { c.RenewAfter = 9 * time.Second },
			[]string{"RenewAfter 9s must be ≤ LeaseDuration − MaxClockError − 2·RoundTimeout = 8.9s"}},
		{"renew before a round", func(c *Config) { c.RenewAfter = time.Millisecond }, []string{"RenewAfter 1ms must be ≥ RoundTimeout"}},
		{"no clock", func(c *Config) { c.Clock = nil }, []string{"Clock", "UncheckedClock"}},
		{"self missing", func(c *Config) { c.ID = "z" }, []string{`must include this node's ID "z"`}},
		{"duplicate member", func(c *Config) { c.Members[1].ID = "a" }, []string{`duplicate member ID "a"`}},
		{"too many members", func(c *Config) {
			for i := 0; i < 6; i++ {
				c.Members = append(c.Members, Member{NodeID(rune('d' + i)), "x:1"})
			}
		}, []string{"9 members; a group has 1 to 7"}},
		{"several problems at once", func(c *Config) { c.Group = ""; c.MaxAttempts = 0; c.MaxDriftPPM = 0 },
			[]string{"Group", "MaxAttempts 0", "MaxDriftPPM 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mod(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("no *ConfigError in %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New accepted an invalid config: %v", err)
			}
		})
	}
}

func TestConfig_RestartWait(t *testing.T) {
	c := DefaultConfig()
	// (10s + 1s + 0.4s)·(1 + 400ppm)
	if got, want := c.RestartWait(), 11400*time.Millisecond+4560*time.Microsecond; got != want {
		t.Fatalf("RestartWait = %v, want %v", got, want)
	}
}

func TestCheckResource(t *testing.T) {
	for _, tc := range []struct {
		res string
		ok  bool
	}{
		{"shard-17/primary", true},
		{"", false},
		{strings.Repeat("x", 512), true},
		{strings.Repeat("x", 513), false},
		{"a\x00b", false},
		{"\xff", false},
	} {
		err := checkResource(tc.res)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadResource)) {
			t.Errorf("checkResource(%q) = %v", tc.res, err)
		}
	}
}
