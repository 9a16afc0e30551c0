package coord_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// Every malformed request gets a typed error a person can read, and the
// server keeps serving.
func TestBadInput_TypedErrors(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.MaxDataBytes = 1024
		cfg.MaxRequestBytes = 1024 + 128<<10
	}})
	ctx := coordtest.Ctx(t, 20*time.Second)
	cl := c.Conn(0)
	type call func() error
	for _, tc := range []struct {
		name string
		do   call
		grpc codes.Code
		code coordpb.ErrorCode
		msg  string
	}{
		{"create without op", func() error { _, err := cl.Create(ctx, &coordpb.CreateRequest{}); return err },
			codes.InvalidArgument, coordpb.ErrorCode_INVALID_ARGUMENT, "missing op"},
		{"bad path", func() error { _, err := create(ctx, cl, "/a//b", nil); return err },
			codes.InvalidArgument, coordpb.ErrorCode_INVALID_PATH, "empty segment"},
		{"data over the limit", func() error { _, err := create(ctx, cl, "/big", make([]byte, 1025)); return err },
			codes.InvalidArgument, coordpb.ErrorCode_DATA_TOO_LARGE, "1025 bytes, the limit is 1024"},
		{"request over the limit", func() error {
			_, err := cl.Multi(ctx, &coordpb.MultiRequest{Ops: []*coordpb.Op{{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: "/x", Data: make([]byte, 300<<10)}}}}})
			return err
		}, codes.ResourceExhausted, -1, ""},
		{"negative children limit", func() error {
			_, err := cl.Children(ctx, &coordpb.ChildrenRequest{Path: "/", Limit: -1})
			return err
		}, codes.InvalidArgument, coordpb.ErrorCode_INVALID_ARGUMENT, "negative limit"},
		{"empty multi op", func() error {
			_, err := cl.Multi(ctx, &coordpb.MultiRequest{Ops: []*coordpb.Op{{}}})
			return err
		}, codes.InvalidArgument, coordpb.ErrorCode_INVALID_ARGUMENT, "empty op"},
		{"get bad path", func() error { _, err := cl.Get(ctx, &coordpb.GetRequest{Path: "rel"}); return err },
			codes.InvalidArgument, coordpb.ErrorCode_INVALID_PATH, "must start with /"},
		{"unknown session keepalive", func() error {
			_, err := cl.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: 42})
			return err
		}, codes.FailedPrecondition, coordpb.ErrorCode_SESSION_EXPIRED, "session"},
		{"ephemeral with unknown session", func() error {
			_, err := cl.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/e", Mode: coordpb.CreateMode_EPHEMERAL, SessionId: 42}})
			return err
		}, codes.FailedPrecondition, coordpb.ErrorCode_SESSION_EXPIRED, "does not exist"},
		{"delete root", func() error {
			_, err := cl.Delete(ctx, &coordpb.DeleteRequest{Op: &coordpb.DeleteOp{Path: "/", Version: -1, Recursive: true}})
			return err
		}, codes.InvalidArgument, coordpb.ErrorCode_ROOT_NODE, "root"},
		{"multi failure names the op", func() error {
			_, err := cl.Multi(ctx, &coordpb.MultiRequest{Ops: []*coordpb.Op{
				{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: "/m"}}},
				{Op: &coordpb.Op_Set{Set: &coordpb.SetOp{Path: "/nope", Version: -1}}},
			}})
			return err
		}, codes.NotFound, coordpb.ErrorCode_NO_NODE, "op 1 (set /nope): node does not exist"},
		{"remove unknown member", func() error {
			_, err := cl.RemoveMember(ctx, &coordpb.RemoveMemberRequest{Name: "zz"})
			return err
		}, codes.FailedPrecondition, coordpb.ErrorCode_MEMBERSHIP, "not a member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			st, _ := status.FromError(err)
			if st.Code() != tc.grpc {
				t.Fatalf("code = %v (%v), want %v", st.Code(), err, tc.grpc)
			}
			if tc.code >= 0 && detailCode(err) != tc.code {
				t.Fatalf("detail = %v, want %v", detailCode(err), tc.code)
			}
			if !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("message %q lacks %q", st.Message(), tc.msg)
			}
		})
	}
	// Still serving.
	if _, err := create(ctx, cl, "/ok", nil); err != nil {
		t.Fatal(err)
	}
}

func TestConfig_Validate(t *testing.T) {
	cfg := coord.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	cfg.Listen = "0.0.0.0:4180"
	cfg.MaxDataBytes = 0
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "not loopback") || !strings.Contains(err.Error(), "max data bytes") {
		t.Fatalf("Validate = %v", err)
	}
	cfg = coord.DefaultConfig()
	cfg.Listen = "0.0.0.0:4180"
	cfg.InsecureNonLoopback = true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("explicit insecure: %v", err)
	}
	if _, err := coord.ParseCluster("n1=127.0.0.1:1,bad"); err == nil {
		t.Fatal("ParseCluster accepted a bad entry")
	}
}

func TestStart_PortInUseAndBadDataDir(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{})
	cfg := coord.DefaultConfig()
	cfg.Listen = c.Node(0).Addr
	cfg.HTTP = ""
	cfg.DataDir = t.TempDir()
	if _, err := coord.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("port in use: %v", err)
	}
	cfg.Listen = "127.0.0.1:0"
	file := t.TempDir() + "/file"
	if err := writeFile(file); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = file
	if _, err := coord.Start(cfg, nil); err == nil || !strings.Contains(err.Error(), "data dir") {
		t.Fatalf("data dir is a file: %v", err)
	}
}

func writeFile(p string) error { return os.WriteFile(p, []byte("x"), 0o600) }
