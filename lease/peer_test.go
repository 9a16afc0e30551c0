package lease

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"coord/proto/leasepb"
)

func peerClient(t *testing.T, addr string) leasepb.FleasePeerClient {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return leasepb.NewFleasePeerClient(cc)
}

func TestPeerServer_Prepare(t *testing.T) {
	c := newCluster(t, 3, nil)
	pc := peerClient(t, c.addrs[0])
	ctx := ctxT(t, 10*time.Second)
	hdr := func() *leasepb.Header {
		return &leasepb.Header{GroupId: "g", ConfigVersion: 1, From: "m1", SentUnixNanos: time.Now().UnixNano()}
	}
	item := []*leasepb.PrepareItem{{Resource: "r", Ballot: &leasepb.Ballot{Round: uint64(time.Now().UnixMilli()), Proposer: 1}}}

	// Freshly started: the acceptor refuses (no promise) during its restart wait.
	resp, err := pc.Prepare(ctx, &leasepb.PrepareRequest{Header: hdr(), Items: item})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Results[0]; r.Refusal != leasepb.Refusal_RECOVERING || r.Ok {
		t.Fatalf("during the restart wait: %v", r)
	}
	probe, err := pc.Probe(ctx, &leasepb.ProbeRequest{Header: hdr()})
	if err != nil || probe.RecoveringUntilUnixNanos == 0 {
		t.Fatalf("probe during the restart wait: %v %v", probe, err)
	}
	c.waitReady()
	resp, err = pc.Prepare(ctx, &leasepb.PrepareRequest{Header: hdr(), Items: item})
	if err != nil || resp.Results[0].Refusal != leasepb.Refusal_ANSWERED || !resp.Results[0].Ok {
		t.Fatalf("after the wait: %v %v", resp, err)
	}
	if resp.Header.GetFrom() != "m0" || resp.Header.GetGroupId() != "g" || resp.Header.GetConfigVersion() != 1 {
		t.Fatalf("response header %v", resp.Header)
	}
	// Same ballot again: nack naming the promise.
	resp, _ = pc.Prepare(ctx, &leasepb.PrepareRequest{Header: hdr(), Items: item})
	if r := resp.Results[0]; r.Ok || r.Promised.GetRound() != item[0].Ballot.Round {
		t.Fatalf("repeated prepare: %v", r)
	}
	// A request older than MaxMessageAge is refused as stale.
	old := hdr()
	old.SentUnixNanos -= int64(time.Second)
	item[0].Ballot.Round++
	resp, _ = pc.Prepare(ctx, &leasepb.PrepareRequest{Header: old, Items: item})
	if r := resp.Results[0]; r.Refusal != leasepb.Refusal_STALE {
		t.Fatalf("stale prepare: %v", r)
	}

	for _, tc := range []struct {
		name string
		mod  func(*leasepb.PrepareRequest)
		code codes.Code
	}{
		{"wrong version", func(r *leasepb.PrepareRequest) { r.Header.ConfigVersion = 2 }, codes.FailedPrecondition},
		{"wrong group", func(r *leasepb.PrepareRequest) { r.Header.GroupId = "h" }, codes.FailedPrecondition},
		{"not a member", func(r *leasepb.PrepareRequest) { r.Header.From = "zz" }, codes.FailedPrecondition},
		{"no header", func(r *leasepb.PrepareRequest) { r.Header = nil }, codes.InvalidArgument},
		{"zero ballot", func(r *leasepb.PrepareRequest) { r.Items[0].Ballot = nil }, codes.InvalidArgument},
		{"bad resource", func(r *leasepb.PrepareRequest) { r.Items[0].Resource = "" }, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &leasepb.PrepareRequest{Header: hdr(), Items: []*leasepb.PrepareItem{{Resource: "r", Ballot: &leasepb.Ballot{Round: 1}}}}
			tc.mod(req)
			_, err := pc.Prepare(context.Background(), req)
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
		})
	}
}
