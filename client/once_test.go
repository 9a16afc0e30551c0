package client_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"coord/client"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// TestCluster_SequentialCreatesExactlyOnceAcrossLeaderKill: with a session
// open, writes carry request ids; killing the leader mid-stream makes some
// answers go missing, the client retries them elsewhere, and the server
// answers from memory. Every call succeeds and every sequential create
// happened exactly once.
func TestCluster_SequentialCreatesExactlyOnceAcrossLeaderKill(t *testing.T) {
	cl := coordtest.NewCluster(t, 3, coordtest.Options{})
	c := newClient(t, cl.Addrs()...)
	ctx := coordtest.Ctx(t, 60*time.Second)
	if _, err := c.Session(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Create(ctx, "/q", nil, nil); err != nil {
		t.Fatal(err)
	}
	var ok, failed atomic.Int64
	var mu sync.Mutex
	paths := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				p, _, err := c.Create(cctx, "/q/n-", nil, &client.CreateOptions{Sequential: true})
				cancel()
				if err != nil {
					failed.Add(1)
					t.Errorf("create: %v", err)
					return
				}
				ok.Add(1)
				mu.Lock()
				if paths[p] {
					t.Errorf("two calls returned %s", p)
				}
				paths[p] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	cl.Stop(cl.Leader())
	cl.WaitLeader(10 * time.Second)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	names, _, err := c.Children(ctx, "/q", nil)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(names)) != ok.Load() {
		t.Fatalf("%d creates acknowledged, %d nodes exist: a retry applied twice or an ack was lost", ok.Load(), len(names))
	}
	t.Logf("%d sequential creates across a leader kill, %d failed, %d nodes", ok.Load(), failed.Load(), len(names))
	if ok.Load() < 50 {
		t.Fatalf("too few creates (%d) to mean anything", ok.Load())
	}

}

// TestCluster_SessionSurvivesServerAndLeaderLoss: the client's server is
// the leader; it is killed. Keepalives move to another server, the new
// leader grants a grace period, and the session with its ephemeral lives
// on well past its timeout.
func TestCluster_SessionSurvivesServerAndLeaderLoss(t *testing.T) {
	cl := coordtest.NewCluster(t, 3, coordtest.Options{})
	li := cl.Leader()
	eps := []string{cl.Addrs()[li]}
	for i, a := range cl.Addrs() {
		if i != li {
			eps = append(eps, a)
		}
	}
	cfg := client.DefaultConfig()
	cfg.Endpoints = eps
	cfg.SessionTimeout = 2 * time.Second
	c, err := client.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx := coordtest.Ctx(t, 30*time.Second)
	if _, _, err := c.Create(ctx, "/mine", nil, &client.CreateOptions{Ephemeral: true}); err != nil {
		t.Fatal(err)
	}
	cl.Stop(li)
	time.Sleep(5 * time.Second) // 2.5 session timeouts
	select {
	case <-c.SessionDone():
		t.Fatalf("session ended: %v", c.SessionErr())
	default:
	}
	st, err := c.Exists(ctx, "/mine", nil)
	if err != nil || st == nil || st.EphemeralOwner != c.SessionID() {
		t.Fatalf("ephemeral after failover: %v, %v", st, err)
	}
	if c.Endpoint() == cl.Addrs()[li] {
		t.Fatal("client still on the killed server")
	}
}

// TestClient_SessionStates: disconnected while the only server is down,
// connected again after it restarts (the session survives: the new leader
// grants a grace period), expired when the server ends the session.
func TestClient_SessionStates(t *testing.T) {
	cl := coordtest.NewCluster(t, 1, coordtest.Options{})
	cfg := client.DefaultConfig()
	cfg.Endpoints = cl.Addrs()
	cfg.SessionTimeout = 2 * time.Second
	c, err := client.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx := coordtest.Ctx(t, 30*time.Second)
	id, err := c.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := c.SessionStates()
	want := func(s client.SessionState) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case got := <-states:
				if got == s {
					return
				}
			case <-deadline:
				t.Fatalf("never reached %v (now %v)", s, c.SessionState())
			}
		}
	}
	want(client.StateConnected)
	cl.Stop(0)
	want(client.StateDisconnected)
	cl.Restart(0)
	want(client.StateConnected)
	if _, err := cl.Conn(0).CloseSession(ctx, closeReq(id)); err != nil {
		t.Fatal(err)
	}
	want(client.StateExpired)
	<-c.SessionDone()
}

func closeReq(id uint64) *coordpb.CloseSessionRequest {
	return &coordpb.CloseSessionRequest{SessionId: id}
}
