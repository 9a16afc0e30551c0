package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/coordpb"
)

func withDetail(c codes.Code, msg string, code coordpb.ErrorCode, failedOp int32) error {
	st, err := status.New(c, msg).WithDetails(&coordpb.ErrorDetail{Code: code, FailedOp: failedOp, Path: "/p"})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestMapError(t *testing.T) {
	refused := `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`
	for _, tc := range []struct {
		name      string
		in        error
		want      error
		transport bool
		text      string // "" = do not check
	}{
		{"no node", withDetail(codes.NotFound, "node does not exist", coordpb.ErrorCode_NO_NODE, -1), ErrNoNode, false, "node does not exist"},
		{"node exists", withDetail(codes.AlreadyExists, "node already exists", coordpb.ErrorCode_NODE_EXISTS, -1), ErrNodeExists, false, "node already exists"},
		{"bad version keeps server text", withDetail(codes.Aborted, "version mismatch: expected 3, current 5", coordpb.ErrorCode_BAD_VERSION, -1), ErrBadVersion, false, "version mismatch: expected 3, current 5"},
		{"not empty", withDetail(codes.FailedPrecondition, "node has children", coordpb.ErrorCode_NOT_EMPTY, -1), ErrNotEmpty, false, ""},
		{"ephemeral parent", withDetail(codes.FailedPrecondition, "x", coordpb.ErrorCode_NO_CHILDREN_FOR_EPHEMERALS, -1), ErrNoChildrenForEphemerals, false, ""},
		{"invalid path", withDetail(codes.InvalidArgument, `invalid path "a": not absolute`, coordpb.ErrorCode_INVALID_PATH, -1), ErrInvalidPath, false, `invalid path "a": not absolute`},
		{"too large", withDetail(codes.InvalidArgument, "data too large", coordpb.ErrorCode_DATA_TOO_LARGE, -1), ErrDataTooLarge, false, ""},
		{"session", withDetail(codes.FailedPrecondition, "session gone", coordpb.ErrorCode_SESSION_EXPIRED, -1), ErrSessionExpired, false, "session gone"},
		{"invalid argument", withDetail(codes.InvalidArgument, "x", coordpb.ErrorCode_INVALID_ARGUMENT, -1), ErrInvalidArgument, false, ""},
		{"no leader", withDetail(codes.Unavailable, "no leader", coordpb.ErrorCode_UNAVAILABLE, -1), ErrUnavailable, false, "no leader"},
		{"not leader", withDetail(codes.Unavailable, "not leader", coordpb.ErrorCode_NOT_LEADER, -1), ErrUnavailable, false, ""},
		{"compacted", withDetail(codes.OutOfRange, "x", coordpb.ErrorCode_COMPACTED, -1), ErrCompacted, false, ""},
		{"internal", withDetail(codes.Internal, "boom", coordpb.ErrorCode_INTERNAL, -1), ErrInternal, false, "boom"},
		{"root", withDetail(codes.InvalidArgument, "x", coordpb.ErrorCode_ROOT_NODE, -1), ErrRootNode, false, ""},
		{"membership", withDetail(codes.FailedPrecondition, "x", coordpb.ErrorCode_MEMBERSHIP, -1), ErrMembership, false, ""},
		{"timeout", withDetail(codes.Unavailable, "x", coordpb.ErrorCode_TIMEOUT, -1), ErrTimeout, false, ""},
		{"unknown outcome", withDetail(codes.Unavailable, "leadership lost", coordpb.ErrorCode_UNKNOWN_OUTCOME, -1), ErrConnectionLoss, false, "leadership lost"},
		{"unknown code", withDetail(codes.Internal, "boom", coordpb.ErrorCode(99), -1), ErrInternal, false, "boom"},
		{"deadline with detail", withDetail(codes.DeadlineExceeded, "context deadline exceeded", coordpb.ErrorCode_TIMEOUT, -1), context.DeadlineExceeded, false, ""},
		{"canceled with detail", withDetail(codes.Canceled, "context canceled", coordpb.ErrorCode_TIMEOUT, -1), context.Canceled, false, ""},
		{"transport refused", status.Error(codes.Unavailable, refused), ErrConnectionLoss, true, "connection lost: dial tcp 127.0.0.1:1: connect: connection refused"},
		{"transport broken", status.Error(codes.Unavailable, "error reading from server: EOF"), ErrConnectionLoss, true, "connection lost: error reading from server: EOF"},
		{"deadline", status.Error(codes.DeadlineExceeded, "late"), context.DeadlineExceeded, false, "late"},
		{"canceled", status.Error(codes.Canceled, "gone"), context.Canceled, false, ""},
		{"ctx error as is", fmt.Errorf("x: %w", context.DeadlineExceeded), context.DeadlineExceeded, false, ""},
		{"not found without detail", status.Error(codes.NotFound, "nope"), ErrNoNode, false, "nope"},
		{"too big message", status.Error(codes.ResourceExhausted, "grpc: received message larger than max"), ErrInvalidArgument, false, ""},
		{"unimplemented", status.Error(codes.Unimplemented, "unknown method Frob"), ErrInternal, false, "Unimplemented: unknown method Frob"},
		{"local error passes through", io.ErrShortWrite, io.ErrShortWrite, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, transport := mapError(tc.in)
			if !errors.Is(got, tc.want) || transport != tc.transport {
				t.Fatalf("mapError = %v (transport %v), want %v (transport %v)", got, transport, tc.want, tc.transport)
			}
			if tc.text != "" && got.Error() != tc.text {
				t.Fatalf("text = %q, want %q", got.Error(), tc.text)
			}
		})
	}
	if got, _ := mapError(nil); got != nil {
		t.Fatalf("mapError(nil) = %v", got)
	}
	// The detail's path and failed op are kept.
	got, _ := mapError(withDetail(codes.Aborted, "op 2 (set /p): version mismatch", coordpb.ErrorCode_BAD_VERSION, 2))
	var e *Error
	if !errors.As(got, &e) || e.Path != "/p" || e.failedOp != 2 {
		t.Fatalf("detail fields lost: %#v", got)
	}
}

func TestMapError_EveryCodeHasASentinel(t *testing.T) {
	for code := range coordpb.ErrorCode_name {
		if code == 0 {
			continue
		}
		if _, ok := codeSentinels[coordpb.ErrorCode(code)]; !ok {
			t.Errorf("code %v has no client sentinel", coordpb.ErrorCode(code))
		}
	}
}

func TestNeverSent(t *testing.T) {
	for _, tc := range []struct {
		in   error
		want bool
	}{
		{status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), true},
		{&notConnectedError{addr: "a:1"}, true},
		{status.Error(codes.Unavailable, "error reading from server: EOF"), false},
		{status.Error(codes.Unavailable, "transport is closing"), false},
	} {
		if got := neverSent(tc.in); got != tc.want {
			t.Errorf("neverSent(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestUnavailableError(t *testing.T) {
	last, _ := mapError(status.Error(codes.Unavailable, "dial tcp 127.0.0.1:1: connect: connection refused"))
	err := error(&unavailableError{last: last, ctx: context.DeadlineExceeded})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrConnectionLoss) {
		t.Fatalf("unavailableError does not unwrap: %v", err)
	}
	if want := "no server reachable: dial tcp 127.0.0.1:1: connect: connection refused"; err.Error() != want {
		t.Fatalf("text = %q, want %q", err.Error(), want)
	}
	noLeader, _ := mapError(withDetail(codes.Unavailable, "no leader", coordpb.ErrorCode_UNAVAILABLE, -1))
	if err := (&unavailableError{last: noLeader, ctx: context.DeadlineExceeded}); err.Error() != "no leader" {
		t.Fatalf("text = %q", err.Error())
	}
}

func TestConfig_Validate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	err := Config{Endpoints: []string{"a:1", " ", "a:1", "nohost"}, DialTimeout: -1, RequestTimeout: -1, SessionTimeout: -1}.Validate()
	for _, want := range []string{"empty endpoint", "listed twice", `"nohost": want host:port`, "DialTimeout", "RequestTimeout", "SessionTimeout"} {
		if err == nil || !contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestCreateOptions_Validate(t *testing.T) {
	for _, tc := range []struct {
		opts CreateOptions
		ok   bool
	}{
		{CreateOptions{}, true},
		{CreateOptions{Ephemeral: true, Sequential: true}, true},
		{CreateOptions{TTL: 1}, true},
		{CreateOptions{TTL: -1}, false},
		{CreateOptions{Ephemeral: true, Container: true}, false},
		{CreateOptions{Container: true, TTL: 5}, false},
	} {
		err := tc.opts.validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
			t.Errorf("%+v: validate = %v", tc.opts, err)
		}
	}
}
