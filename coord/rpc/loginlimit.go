package rpc

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"coord/coord/auth"
)

// LoginLimits bound password logins on one node. Each Authenticate costs
// a bcrypt comparison (~50-100 ms of CPU at cost 10), so unbounded logins
// are a CPU denial of service; a refused login costs no bcrypt.
type LoginLimits struct {
	// PerAddress is the sustained logins per second from one client IP
	// address, with bursts of PerAddressBurst.
	PerAddress      rate.Limit
	PerAddressBurst int
	// Global is the sustained logins per second on this node, all
	// addresses together, with bursts of GlobalBurst.
	Global      rate.Limit
	GlobalBurst int
}

// Defaults for LoginLimits: a person or a restarting fleet logs in far
// below them; a flood is held to about half a core of bcrypt per node.
const (
	DefaultLoginsPerAddress      = 5
	DefaultLoginsPerAddressBurst = 10
	DefaultLoginsGlobal          = 10
	DefaultLoginsGlobalBurst     = 20
)

// DefaultLoginLimits returns the default limits.
func DefaultLoginLimits() LoginLimits {
	return LoginLimits{
		PerAddress: DefaultLoginsPerAddress, PerAddressBurst: DefaultLoginsPerAddressBurst,
		Global: DefaultLoginsGlobal, GlobalBurst: DefaultLoginsGlobalBurst,
	}
}

// maxLoginAddrs bounds the addresses tracked; past it, idle ones are
// dropped, and if every one is busy new addresses share one limiter.
const maxLoginAddrs = 4096

// loginIdle: an address unseen this long has a full bucket again and is
// forgotten when room is needed.
const loginIdle = time.Minute

type addrLimiter struct {
	lim  *rate.Limiter
	last time.Time
}

// loginLimiter applies LoginLimits. Safe for concurrent use.
type loginLimiter struct {
	l        LoginLimits
	global   *rate.Limiter
	mu       sync.Mutex
	byAddr   map[string]*addrLimiter
	overflow *rate.Limiter // addresses beyond maxLoginAddrs
	swept    time.Time     // last sweep of idle addresses (at most one a second)
}

func newLoginLimiter(l LoginLimits) *loginLimiter {
	return &loginLimiter{
		l:        l,
		global:   rate.NewLimiter(l.Global, l.GlobalBurst),
		byAddr:   map[string]*addrLimiter{},
		overflow: rate.NewLimiter(l.PerAddress, l.PerAddressBurst),
	}
}

// allow takes one login from addr's bucket and then the node's, or
// returns auth.ErrTooManyLogins saying which limit was hit.
func (ll *loginLimiter) allow(addr string, now time.Time) error {
	ll.mu.Lock()
	lim := ll.addrLocked(addr, now)
	ok := lim.AllowN(now, 1)
	ll.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: more than %v logins a second (burst %d) from %s; retry later", auth.ErrTooManyLogins, ll.l.PerAddress, ll.l.PerAddressBurst, addr)
	}
	if !ll.global.AllowN(now, 1) {
		return fmt.Errorf("%w: this node takes at most %v logins a second (burst %d); retry later", auth.ErrTooManyLogins, ll.l.Global, ll.l.GlobalBurst)
	}
	return nil
}

func (ll *loginLimiter) addrLocked(addr string, now time.Time) *rate.Limiter {
	if a, ok := ll.byAddr[addr]; ok {
		a.last = now
		return a.lim
	}
	if len(ll.byAddr) >= maxLoginAddrs && now.Sub(ll.swept) >= time.Second {
		ll.swept = now
		for k, a := range ll.byAddr {
			if now.Sub(a.last) > loginIdle {
				delete(ll.byAddr, k)
			}
		}
	}
	if len(ll.byAddr) >= maxLoginAddrs {
		return ll.overflow
	}
	a := &addrLimiter{lim: rate.NewLimiter(ll.l.PerAddress, ll.l.PerAddressBurst), last: now}
	ll.byAddr[addr] = a
	return a.lim
}
