package coord_test

import (
	"fmt"
	"testing"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

func callStatus(t *testing.T, r *coordpb.CallResponse) error {
	t.Helper()
	if len(r.GetStatus()) == 0 {
		return nil
	}
	var s spb.Status
	if err := proto.Unmarshal(r.GetStatus(), &s); err != nil {
		t.Fatalf("call %d: undecodable status: %v", r.GetId(), err)
	}
	return status.FromProto(&s).Err()
}

// The Call stream answers each request by id with what the unary method
// would have returned, typed errors included, many in flight at once, on
// a follower (writes forwarded) as on the leader.
func TestCall_StreamAnswersLikeUnaryCalls(t *testing.T) {
	// 200 writes at once on one raw stream: admission control may shed
	// some on a slow machine (admission_test.go tests that); here every
	// one must be answered with its own result.
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) { cfg.Admission.Disabled = true }})
	ctx := coordtest.Ctx(t, 20*time.Second)
	st, err := c.Conn(c.Follower()).Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *coordpb.CallRequest) {
		t.Helper()
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *coordpb.CallResponse {
		t.Helper()
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	send(&coordpb.CallRequest{Id: 1, Op: &coordpb.CallRequest_Create{Create: &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/c", Data: []byte("v")}}}})
	if r := recv(); r.GetId() != 1 || r.GetCreate().GetPath() != "/c" || callStatus(t, r) != nil {
		t.Fatalf("create: %v", r)
	}
	send(&coordpb.CallRequest{Id: 2, Op: &coordpb.CallRequest_Create{Create: &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/c"}}}})
	r := recv()
	if err := callStatus(t, r); r.GetId() != 2 || status.Code(err) != codes.AlreadyExists || detailCode(err) != coordpb.ErrorCode_NODE_EXISTS {
		t.Fatalf("second create: id %d, %v", r.GetId(), err)
	}
	send(&coordpb.CallRequest{Id: 3})
	if r := recv(); r.GetId() != 3 || status.Code(callStatus(t, r)) != codes.InvalidArgument {
		t.Fatalf("empty request: %v", r)
	}
	// Many in flight: each id answered once, with its own data.
	const n = 200
	for i := range n {
		send(&coordpb.CallRequest{Id: uint64(100 + i), Op: &coordpb.CallRequest_Set{Set: &coordpb.SetRequest{Op: &coordpb.SetOp{Path: "/c", Data: []byte(fmt.Sprint(i)), Version: -1}}}})
	}
	seen := map[uint64]bool{}
	for range n {
		r := recv()
		if seen[r.GetId()] || r.GetId() < 100 || r.GetId() >= 100+n || callStatus(t, r) != nil || r.GetSet().GetHeader().GetZxid() == 0 {
			t.Fatalf("answer %v (seen before: %v)", r, seen[r.GetId()])
		}
		seen[r.GetId()] = true
	}
	send(&coordpb.CallRequest{Id: 500, TimeoutMs: 5000, Op: &coordpb.CallRequest_Get{Get: &coordpb.GetRequest{Path: "/c"}}})
	if r := recv(); r.GetId() != 500 || r.GetGet().GetStat().GetVersion() != n {
		t.Fatalf("get after %d sets: %v", n, r)
	}
	// A closed send side still gets its answers.
	send(&coordpb.CallRequest{Id: 501, Op: &coordpb.CallRequest_Exists{Exists: &coordpb.ExistsRequest{Path: "/nope"}}})
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if r := recv(); r.GetId() != 501 || r.GetExists() == nil || r.GetExists().GetExists() {
		t.Fatalf("exists after CloseSend: %v", r)
	}
}
