package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"coord/client"
	"coord/coord"
	"coord/coord/coordtest"
)

// The short overload proof (issue 10; the long one is `make overload`,
// docs/RELIABILITY.md "Overload"): a burst of concurrent requests far
// above a node's admission bounds. Protected, the node holds at most its
// bounds (slots plus queue) of data requests at once, the excess gets the
// typed client.ErrOverloaded with the server's retry-after hint, no live
// session expires and service is back right after the burst. With
// admission disabled the same burst breaks the bound (the node holds
// hundreds of requests at once) and sheds nothing: the test has teeth.

const (
	burstSlots      = 4
	burstQueue      = 8
	burstRetryAfter = 30 * time.Millisecond
	burstRequests   = 1500
	burstSessions   = 4
)

// burstBound: the most data requests the node may hold at once (writes
// and linearizable reads, each class its slots plus its queue).
const burstBound = 2 * (burstSlots + burstQueue)

type burstResult struct {
	ok, shed, hinted, other int
	// throttled: sheds that were the client's own throttle (ErrThrottled);
	// mixed: sheds both hinted by a server and ErrThrottled, or neither.
	throttled, mixed int
	// counted: the load clients' OverloadStats after the burst.
	counted         client.OverloadStats
	firstOther      error
	stats           coord.AdmissionStats
	sessionsExpired int
	after           error         // a fresh client's set + get after the burst
	backIn          time.Duration // until a burst client's request succeeds again
}

// violations lists the protected criteria res fails.
func (res burstResult) violations() []string {
	var v []string
	if res.stats.MaxInServer > burstBound {
		v = append(v, fmt.Sprintf("the node held %d data requests at once (bound %d)", res.stats.MaxInServer, burstBound))
	}
	if res.shed == 0 || res.stats.Shed == 0 {
		v = append(v, fmt.Sprintf("nothing shed (%d client verdicts, %d server)", res.shed, res.stats.Shed))
	}
	if res.hinted == 0 {
		v = append(v, "no shed request carried the server's retry-after hint")
	}
	if res.mixed > 0 {
		v = append(v, fmt.Sprintf("%d shed requests were not exactly one of a server's shed (hinted) or the client's throttle (ErrThrottled)", res.mixed))
	}
	if res.counted.Throttled != int64(res.throttled) || res.counted.Shed < int64(res.hinted) || res.counted.Retried > res.counted.Shed {
		v = append(v, fmt.Sprintf("client counters %+v disagree with the outcomes (%d throttled, %d hinted)", res.counted, res.throttled, res.hinted))
	}
	if res.ok == 0 {
		v = append(v, "nothing served during the burst")
	}
	if res.other > 0 {
		v = append(v, fmt.Sprintf("%d requests failed otherwise than overloaded, first: %v", res.other, res.firstOther))
	}
	if res.sessionsExpired > 0 {
		v = append(v, fmt.Sprintf("%d of %d live sessions expired", res.sessionsExpired, burstSessions))
	}
	if res.after != nil {
		v = append(v, fmt.Sprintf("a fresh client after the burst: %v", res.after))
	}
	if res.backIn < 0 || res.backIn > 5*time.Second {
		v = append(v, fmt.Sprintf("the burst's clients served again only after %v", res.backIn))
	}
	return v
}

func runBurst(t *testing.T, disabled bool) burstResult {
	cl := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.Admission = coord.AdmissionConfig{Disabled: disabled, MaxWrites: burstSlots, MaxLinearReads: burstSlots,
			MaxLocalReads: burstSlots, MaxQueue: burstQueue, RetryAfter: burstRetryAfter}
	}})
	ctx := coordtest.Ctx(t, 60*time.Second)
	addr := cl.Addrs()[0]
	newC := func(sessionTimeout time.Duration) *client.Client {
		cfg := client.DefaultConfig()
		cfg.Endpoints = []string{addr}
		cfg.RequestTimeout = 10 * time.Second
		cfg.SessionTimeout = sessionTimeout
		c, err := client.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	admin := newC(0)
	for k := 0; k < 64; k++ {
		if _, _, err := admin.Create(ctx, fmt.Sprintf("/k%d", k), []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Live sessions, each its own client: keepalives are never shed.
	var sessions []*client.Client
	for i := 0; i < burstSessions; i++ {
		s := newC(3 * time.Second)
		if _, err := s.Session(ctx); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	loads := []*client.Client{newC(0), newC(0), newC(0), newC(0)}

	var res burstResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < burstRequests; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, p := loads[i%len(loads)], fmt.Sprintf("/k%d", i%64)
			<-start
			var err error
			if i%2 == 0 {
				_, err = c.Set(ctx, p, []byte("burst"), -1)
			} else {
				_, _, err = c.Get(ctx, p, nil)
			}
			mu.Lock()
			defer mu.Unlock()
			var ce *client.Error
			switch {
			case err == nil:
				res.ok++
			case errors.Is(err, client.ErrOverloaded):
				res.shed++
				hinted := errors.As(err, &ce) && ce.RetryAfter == burstRetryAfter
				throttled := errors.Is(err, client.ErrThrottled)
				if hinted {
					res.hinted++
				}
				if throttled {
					res.throttled++
				}
				if hinted == throttled {
					res.mixed++
				}
			default:
				if res.other++; res.firstOther == nil {
					res.firstOther = err
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	res.stats = cl.Node(0).Server.AdmissionStats()
	for _, c := range loads {
		st := c.OverloadStats()
		res.counted.Shed += st.Shed
		res.counted.Throttled += st.Throttled
		res.counted.Retried += st.Retried
	}

	// Sessions: every one still alive, and its keepalives answered.
	for _, s := range sessions {
		select {
		case <-s.SessionDone():
			res.sessionsExpired++
			t.Logf("session ended: %v", s.SessionErr())
		default:
		}
	}
	// Service is back: a fresh client is served at once; the burst's own
	// clients once their throttles see no more shedding.
	fresh := newC(0)
	if _, err := fresh.Set(ctx, "/k0", []byte("after"), -1); err != nil {
		res.after = err
	} else if d, _, err := fresh.Get(ctx, "/k0", nil); err != nil || string(d) != "after" {
		res.after = fmt.Errorf("get = %q, %v", d, err)
	}
	t0 := time.Now()
	res.backIn = -1
	for time.Since(t0) < 10*time.Second {
		if _, err := loads[0].Set(ctx, "/k1", []byte("after"), -1); err == nil {
			res.backIn = time.Since(t0)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("admission disabled=%v: %d ok, %d overloaded (%d with the hint, %d throttled by the client), %d other; client counters %+v; node: %+v; back in %v",
		disabled, res.ok, res.shed, res.hinted, res.throttled, res.other, res.counted, res.stats, res.backIn)
	return res
}

func TestOverload_BurstIsShedAndServiceReturns(t *testing.T) {
	if v := runBurst(t, false).violations(); len(v) > 0 {
		t.Fatalf("protected: %v", v)
	}
}

// The teeth: the same burst without admission control fails the bound.
func TestOverload_BurstWithoutAdmissionBreaksTheBound(t *testing.T) {
	res := runBurst(t, true)
	if res.stats.MaxInServer <= burstBound || res.shed != 0 {
		t.Fatalf("without admission: %d requests held at once (bound %d), %d shed: the burst does not overload the node, the protected test proves nothing", res.stats.MaxInServer, burstBound, res.shed)
	}
	t.Logf("without admission the criteria fail as they should: %v", res.violations())
}
