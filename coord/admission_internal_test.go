package coord

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"coord/coord/rpc"
	"coord/proto/coordpb"
)

func TestAdmission_Classify(t *testing.T) {
	local := &coordpb.GetRequest{Read: &coordpb.ReadOptions{Consistency: coordpb.Consistency_LOCAL}}
	for _, tc := range []struct {
		method string
		req    any
		want   string
	}{
		{coordpb.Coord_Create_FullMethodName, &coordpb.CreateRequest{}, classWrite},
		{coordpb.Coord_Multi_FullMethodName, &coordpb.MultiRequest{}, classWrite},
		{coordpb.Coord_SetACL_FullMethodName, &coordpb.SetACLRequest{}, classWrite},
		{coordpb.Coord_Get_FullMethodName, &coordpb.GetRequest{}, classLinearRead},
		{coordpb.Coord_Get_FullMethodName, local, classLocalRead},
		{coordpb.Coord_Children_FullMethodName, &coordpb.ChildrenRequest{Read: local.Read}, classLocalRead},
		{coordpb.Coord_Sync_FullMethodName, &coordpb.SyncRequest{}, classLinearRead},
		// Never shed: sessions, peers, cluster calls.
		{coordpb.Coord_KeepAlive_FullMethodName, &coordpb.KeepAliveRequest{}, ""},
		{coordpb.Coord_OpenSession_FullMethodName, &coordpb.OpenSessionRequest{}, ""},
		{coordpb.Coord_CloseSession_FullMethodName, &coordpb.CloseSessionRequest{}, ""},
		{coordpb.Peer_KeepAlives_FullMethodName, &coordpb.KeepAlivesRequest{}, ""},
		{coordpb.Peer_ProposeBatch_FullMethodName, &coordpb.ProposeBatchRequest{}, ""},
		{coordpb.Coord_Status_FullMethodName, &coordpb.StatusRequest{}, ""},
	} {
		if got := classify(tc.method, tc.req); got != tc.want {
			t.Errorf("classify(%s, %T) = %q, want %q", tc.method, tc.req, got, tc.want)
		}
	}
}

// The limiter: slots first, then a bounded queue with CoDel timeouts, and
// a typed shed error with the retry-after hint.
func TestAdmission_Limiter(t *testing.T) {
	a := newAdmission(AdmissionConfig{MaxWrites: 2, MaxQueue: 1, Target: 5 * time.Millisecond, Interval: 200 * time.Millisecond, RetryAfter: 70 * time.Millisecond}, nil, nil)
	l := a.classes[classWrite]
	ctx := context.Background()
	r1, err := a.acquire(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.acquire(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	// Both slots taken: one may wait (a burst: up to Interval), and is
	// admitted when a slot frees.
	got := make(chan error, 1)
	go func() {
		rel, err := a.acquire(ctx, l)
		if err == nil {
			rel()
		}
		got <- err
	}()
	for l.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	// The queue (1) is full: the next is shed at once.
	_, err = a.acquire(ctx, l)
	var ov *rpc.OverloadError
	if !errors.As(err, &ov) || !errors.Is(err, rpc.ErrOverloaded) || ov.Reason != "queue full" || ov.RetryAfter != 70*time.Millisecond || ov.Class != classWrite {
		t.Fatalf("queue full: %v", err)
	}
	r1()
	if err := <-got; err != nil {
		t.Fatalf("queued request: %v", err)
	}
	// A standing queue: the slots stay full for longer than Interval, so
	// the queue was last empty long ago and a waiter gets Target only.
	r3, err := a.acquire(ctx, l) // takes the freed slot at once
	if err != nil {
		t.Fatal(err)
	}
	l.lastEmpty.Store(time.Now().Add(-time.Second).UnixNano())
	start := time.Now()
	_, err = a.acquire(ctx, l)
	if !errors.As(err, &ov) || ov.Reason != "queued too long" {
		t.Fatalf("standing queue: %v", err)
	}
	if el := time.Since(start); el > 150*time.Millisecond {
		t.Fatalf("standing queue waited %v, want about Target (5ms)", el)
	}
	// A caller that gives up is not an overload verdict.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.acquire(cctx, l); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	r2()
	r3()
	if l.waiting.Load() != 0 {
		t.Fatalf("waiting = %d after all left", l.waiting.Load())
	}
	// The in-server count: slots plus queue at most (2 + 1), shed
	// requests not counted, 0 when all left.
	if n, m := a.inServer.Load(), a.maxInServe.Load(); n != 0 || m != 3 {
		t.Fatalf("in server %d, high-water mark %d; want 0 and 3", n, m)
	}
}

func TestAdmissionConfig_Validate(t *testing.T) {
	if err := (AdmissionConfig{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	err := AdmissionConfig{MaxWrites: -1, Target: time.Second, Interval: time.Millisecond}.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"max writes -1", "target 1s must not exceed interval 1ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing %q", err, want)
		}
	}
}

// The limiter's cost per admitted request when there is no queue (the
// normal heavy-load case): compare with coordbench's CPU per operation
// (hundreds of µs).
func BenchmarkAdmission_Unary(b *testing.B) {
	info := &grpc.UnaryServerInfo{FullMethod: coordpb.Coord_Set_FullMethodName}
	req := &coordpb.SetRequest{}
	h := func(context.Context, any) (any, error) { return nil, nil }
	for _, disabled := range []bool{false, true} {
		name := "enabled"
		if disabled {
			name = "disabled"
		}
		b.Run(name, func(b *testing.B) {
			a := newAdmission(AdmissionConfig{Disabled: disabled}, nil, nil)
			ctx := context.Background()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := a.unary(ctx, req, info, h); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
