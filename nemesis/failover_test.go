package nemesis

import (
	"context"
	"testing"
	"time"
)

// TestFailoverSessions kills the leader under a write load while 1,000
// sessions keep alive (NEMESIS_FAILOVER_SESSIONS raises the count; the
// 10,000-session run is coordnemesis --failover-sessions 10000): no
// session may expire, no ephemeral may go, and the client request rate
// in the 10 s after the kill stays within 2× the offered rate.
func TestFailoverSessions(t *testing.T) {
	n := envInt("NEMESIS_FAILOVER_SESSIONS", 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := RunFailover(ctx, FailoverConfig{
		Coordd: coorddBin, Dir: t.TempDir(), Sessions: n, SessionTimeout: 2 * time.Second,
		// Two session processes (as coordnemesis does for 10,000), so
		// the worker path is exercised on every make test.
		Workers: 2,
		Before:  4 * time.Second, Log: func(f string, a ...any) { t.Logf(f, a...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	for _, v := range res.Violations {
		t.Error(v)
	}
	if res.Recover > 5*time.Second {
		t.Errorf("writes recovered %v after the kill (want <= 5s: 1 s heartbeat timeout drawn up to 2 s, an election, the clients finding the leader)", res.Recover)
	}
}
