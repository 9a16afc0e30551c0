package coord_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

func retryAfterMs(err error) int64 {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if e, ok := d.(*coordpb.ErrorDetail); ok {
			return e.RetryAfterMs
		}
	}
	return -1
}

// One Call stream carries a burst of writes far above the node's write
// bound: admission applies per request, so the excess is shed with
// ResourceExhausted/OVERLOADED and a retry-after hint, everything admitted
// succeeds, and a keepalive sent behind the burst on the same stream is
// answered (session traffic is never queued or shed).
func TestAdmission_ShedsPerRequestOnCallStream(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.Admission = coord.AdmissionConfig{MaxWrites: 2, MaxQueue: 2, RetryAfter: 40 * time.Millisecond}
		cfg.HTTP = "127.0.0.1:0"
	}})
	ctx := coordtest.Ctx(t, 30*time.Second)
	conn := c.Conn(0)
	sess, err := conn.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: 2000})
	if err != nil {
		t.Fatal(err)
	}
	st, err := conn.Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const burst = 400
	for i := 1; i <= burst; i++ {
		req := &coordpb.CallRequest{Id: uint64(i), Op: &coordpb.CallRequest_Create{Create: &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: fmt.Sprintf("/b%d", i), Data: make([]byte, 512)}}}}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Send(&coordpb.CallRequest{Id: burst + 1, Op: &coordpb.CallRequest_KeepAlive{KeepAlive: &coordpb.KeepAliveRequest{SessionId: sess.SessionId}}}); err != nil {
		t.Fatal(err)
	}
	var ok, shed int
	keepalive := false
	for n := 0; n < burst+1; n++ {
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetId() == burst+1 {
			if err := callStatus(t, r); err != nil || r.GetKeepAlive() == nil {
				t.Fatalf("keepalive behind the burst: %v", err)
			}
			keepalive = true
			continue
		}
		switch err := callStatus(t, r); {
		case err == nil:
			ok++
		case status.Code(err) == codes.ResourceExhausted && detailCode(err) == coordpb.ErrorCode_OVERLOADED:
			if ms := retryAfterMs(err); ms != 40 {
				t.Fatalf("retry-after %d ms, want 40: %v", ms, err)
			}
			shed++
		default:
			t.Fatalf("call %d: %v", r.GetId(), err)
		}
	}
	t.Logf("%d admitted, %d shed", ok, shed)
	if !keepalive || ok == 0 || shed == 0 || ok+shed != burst {
		t.Fatalf("keepalive %v, %d ok, %d shed of %d", keepalive, ok, shed, burst)
	}
	// What was shed was not applied; what was admitted was.
	got, err := conn.Children(ctx, &coordpb.ChildrenRequest{Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Names) != ok {
		t.Fatalf("%d nodes exist, %d writes admitted", len(got.Names), ok)
	}
	// Every create counts as arrived; only the admitted ones as run.
	m := metrics(t, c.Node(0).Server.HTTPAddr())
	for _, want := range []string{
		fmt.Sprintf(`coord_grpc_requests_started_total{method="/coord.v1.Coord/Create"} %d`, burst),
		fmt.Sprintf(`coord_grpc_requests_total{code="OK",method="/coord.v1.Coord/Create"} %d`, ok),
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// With admission disabled the same burst is never shed.
func TestAdmission_Disabled(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.Admission = coord.AdmissionConfig{Disabled: true, MaxWrites: 1, MaxQueue: 1}
	}})
	ctx := coordtest.Ctx(t, 30*time.Second)
	st, err := c.Conn(0).Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const burst = 200
	for i := 1; i <= burst; i++ {
		if err := st.Send(&coordpb.CallRequest{Id: uint64(i), Op: &coordpb.CallRequest_Create{Create: &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: fmt.Sprintf("/b%d", i)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < burst; n++ {
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if err := callStatus(t, r); err != nil {
			t.Fatalf("call %d: %v", r.GetId(), err)
		}
	}
}

// Deadline-aware shedding over real gRPC: with the node's only write slot
// taken and a service time of ~300 ms learned, a write whose deadline
// leaves less than that is shed at once (unary and on a Call stream), and
// one whose deadline leaves more waits only until it could no longer be
// served in time, then is shed — OVERLOADED with the retry-after hint,
// never a DeadlineExceeded after a wait the caller paid for. Without the
// deadline rule these requests wait in the queue (the CoDel wait here is
// 2 s) until the caller's deadline and fail with DeadlineExceeded.
func TestAdmission_DeadlineAwareShedding(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.Admission = coord.AdmissionConfig{MaxWrites: 1, MaxQueue: 8, Target: 5 * time.Millisecond, Interval: 2 * time.Second, RetryAfter: 40 * time.Millisecond}
	}})
	ctx := coordtest.Ctx(t, 30*time.Second)
	conn := c.Conn(0)
	srv := c.Node(0).Server
	// A request that held the slot for 300 ms teaches the estimate.
	rel, err := coord.HoldWriteSlot(srv)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	rel()
	if est := coord.WriteServiceEstimate(srv); est < 300*time.Millisecond || est > 2*time.Second {
		t.Fatalf("service estimate %v after one 300 ms request", est)
	}
	hold, err := coord.HoldWriteSlot(srv)
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, timeout time.Duration) (time.Duration, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		start := time.Now()
		_, err := conn.Create(cctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/" + name}})
		return time.Since(start), err
	}
	overloaded := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.ResourceExhausted || detailCode(err) != coordpb.ErrorCode_OVERLOADED || retryAfterMs(err) != 40 {
			t.Fatalf("%s: want OVERLOADED with a 40 ms retry-after, got %v", what, err)
		}
	}
	// 200 ms left < 300 ms of service: shed before it queues.
	took, err := create("short", 200*time.Millisecond)
	overloaded("200 ms deadline", err)
	if took >= 200*time.Millisecond {
		t.Fatalf("200 ms deadline: shed after %v", took)
	}
	// 800 ms left: it may wait 800 - 300 = 500 ms, then it is shed,
	// before the caller's deadline.
	took, err = create("long", 800*time.Millisecond)
	overloaded("800 ms deadline", err)
	if took < 350*time.Millisecond || took >= 800*time.Millisecond {
		t.Fatalf("800 ms deadline: shed after %v, want about 500 ms", took)
	}
	// The same on a Call stream (the deadline is the request's timeout_ms).
	st, err := conn.Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := st.Send(&coordpb.CallRequest{Id: 1, TimeoutMs: 200, Op: &coordpb.CallRequest_Create{Create: &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/stream"}}}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	overloaded("Call stream, 200 ms", callStatus(t, r))
	if took := time.Since(start); took >= 200*time.Millisecond {
		t.Fatalf("Call stream, 200 ms: shed after %v", took)
	}
	if got := srv.AdmissionStats().Shed; got != 3 {
		t.Fatalf("%d shed, want 3", got)
	}
	// A free slot runs the request whatever its deadline.
	hold()
	if _, err := create("free", 200*time.Millisecond); err != nil {
		t.Fatalf("with a free slot: %v", err)
	}
}
