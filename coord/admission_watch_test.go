package coord_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// A watcher that never reads: the server does not park its handler (or
// grow its memory) forever; once the stream's bounded buffer stays full
// for WatchSlowTimeout it ends the stream with WATCH_TOO_SLOW and the
// zxid to resync from, which the consumer sees after what was already
// sent.
func TestWatch_TooSlowConsumerIsCutOff(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.HTTP = "127.0.0.1:0"
		cfg.WatchBuffer = 8
		cfg.WatchSlowTimeout = 200 * time.Millisecond
	}})
	ctx := coordtest.Ctx(t, 60*time.Second)
	// Small fixed windows (this also turns gRPC's BDP window growth off),
	// so a consumer that does not read blocks the server quickly.
	cc, err := grpc.NewClient(c.Node(0).Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	slow, err := coordpb.NewCoordClient(cc).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := slow.Send(&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Create{Create: &coordpb.WatchCreate{WatchId: 1, Path: "/", Kind: coordpb.WatchKind_WATCH_PERSISTENT_RECURSIVE}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := slow.Recv(); err != nil || !r.Created {
		t.Fatalf("create: %v %v", r, err)
	}
	// About 600 KB of events; the consumer reads none of them.
	conn := c.Conn(0)
	name := strings.Repeat("x", 200)
	var last uint64
	for b := 0; b < 6; b++ {
		var ops []*coordpb.Op
		for i := 0; i < 500; i++ {
			ops = append(ops, &coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: fmt.Sprintf("/%s%d-%d", name, b, i)}}})
		}
		r, err := conn.Multi(ctx, &coordpb.MultiRequest{Ops: ops})
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.GetZxid()
	}
	// The server gives up on the stream by itself.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(metrics(t, c.Node(0).Server.HTTPAddr()), "coord_watch_too_slow_total 1") {
		if time.Now().After(deadline) {
			t.Fatal("the server never ended the slow watch stream")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The consumer, reading at last, gets what was sent, then the signal.
	var got int
	var maxZxid uint64
	for {
		r, err := slow.Recv()
		if err != nil {
			if status.Code(err) != codes.ResourceExhausted || detailCode(err) != coordpb.ErrorCode_WATCH_TOO_SLOW {
				t.Fatalf("stream ended with %v, want WATCH_TOO_SLOW", err)
			}
			resume := resumeZxid(err)
			t.Logf("%d events received, then: %v (resume %d, last write %d)", got, err, resume, last)
			if resume == 0 || resume >= last || maxZxid > resume || !strings.Contains(err.Error(), fmt.Sprintf("resync from zxid %d", resume)) {
				t.Fatalf("resume zxid %d: received up to %d, last write %d", resume, maxZxid, last)
			}
			break
		}
		for _, e := range r.Events {
			got++
			maxZxid = max(maxZxid, e.Zxid)
		}
	}
	if got == 0 || got >= 3000 {
		t.Fatalf("%d events before the cut (of 3000)", got)
	}
}

func resumeZxid(err error) uint64 {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if e, ok := d.(*coordpb.ErrorDetail); ok {
			return e.ResumeZxid
		}
	}
	return 0
}

func metrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
