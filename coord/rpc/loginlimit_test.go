package rpc

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"coord/coord/auth"
)

func TestLoginLimiter_Allow(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ll := newLoginLimiter(LoginLimits{PerAddress: 1, PerAddressBurst: 3, Global: 2, GlobalBurst: 5})
	for i := 0; i < 3; i++ {
		if err := ll.allow("10.0.0.1", now); err != nil {
			t.Fatalf("login %d within the burst: %v", i, err)
		}
	}
	err := ll.allow("10.0.0.1", now)
	if !errors.Is(err, auth.ErrTooManyLogins) {
		t.Fatalf("4th login from one address: %v, want ErrTooManyLogins", err)
	}
	t.Log(err)
	// Another address has its own bucket, but the node's is nearly spent.
	for i := 0; i < 2; i++ {
		if err := ll.allow("10.0.0.2", now); err != nil {
			t.Fatalf("other address, login %d: %v", i, err)
		}
	}
	if err := ll.allow("10.0.0.3", now); !errors.Is(err, auth.ErrTooManyLogins) {
		t.Fatalf("past the global burst: %v, want ErrTooManyLogins", err)
	}
	// Buckets refill with time.
	if err := ll.allow("10.0.0.1", now.Add(2*time.Second)); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

// The address table stays bounded under a flood of distinct addresses.
func TestLoginLimiter_Bounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ll := newLoginLimiter(LoginLimits{PerAddress: 1, PerAddressBurst: 1, Global: 1e9, GlobalBurst: 1 << 30})
	for i := 0; i < 3*maxLoginAddrs; i++ {
		_ = ll.allow(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
	}
	if n := len(ll.byAddr); n > maxLoginAddrs {
		t.Fatalf("%d addresses tracked, bound %d", n, maxLoginAddrs)
	}
	// Idle addresses make room again.
	if err := ll.allow("192.168.0.1", now.Add(2*loginIdle)); err != nil {
		t.Fatal(err)
	}
	if _, ok := ll.byAddr["192.168.0.1"]; !ok || len(ll.byAddr) > maxLoginAddrs {
		t.Fatalf("after the idle sweep: tracked=%v n=%d", ok, len(ll.byAddr))
	}
}
