package coord_test

import (
	"fmt"
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
