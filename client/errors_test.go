package client

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/coordpb"
)

func withDetail(c codes.Code, msg string, d *coordpb.ErrorDetail) error {
	st, _ := status.New(c, msg).WithDetails(d)
	return st.Err()
}

func TestFromStatus(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        error
		want      error
		transport bool
		text      string
	}{
		{"no node", withDetail(codes.NotFound, "node does not exist", &coordpb.ErrorDetail{Code: coordpb.ErrorCode_NO_NODE, FailedOp: -1}), ErrNoNode, false, "node does not exist"},
		{"bad version keeps server text", withDetail(codes.Aborted, "version mismatch: expected 3, current 5", &coordpb.ErrorDetail{Code: coordpb.ErrorCode_BAD_VERSION, FailedOp: -1}), ErrBadVersion, false, "version mismatch: expected 3, current 5"},
		{"no leader", withDetail(codes.Unavailable, "no leader", &coordpb.ErrorDetail{Code: coordpb.ErrorCode_UNAVAILABLE, FailedOp: -1}), ErrUnavailable, false, "no leader"},
		{"unknown outcome", withDetail(codes.Unavailable, "leadership lost", &coordpb.ErrorDetail{Code: coordpb.ErrorCode_UNKNOWN_OUTCOME, FailedOp: -1}), ErrConnectionLoss, false, "leadership lost"},
		{"session", withDetail(codes.FailedPrecondition, "session gone", &coordpb.ErrorDetail{Code: coordpb.ErrorCode_SESSION_EXPIRED, FailedOp: -1}), ErrSessionExpired, false, ""},
		{"too large", withDetail(codes.InvalidArgument, "data too large", &coordpb.ErrorDetail{Code: coordpb.ErrorCode_DATA_TOO_LARGE, FailedOp: -1}), ErrDataTooLarge, false, ""},
		{"transport", status.Error(codes.Unavailable, "connection refused"), ErrConnectionLoss, true, ""},
		{"deadline", status.Error(codes.DeadlineExceeded, "late"), context.DeadlineExceeded, false, ""},
		{"canceled", status.Error(codes.Canceled, "gone"), context.Canceled, false, ""},
		{"unknown code", withDetail(codes.Internal, "boom", &coordpb.ErrorDetail{Code: coordpb.ErrorCode(99), FailedOp: -1}), ErrInternal, false, "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, transport := fromStatus(tc.in)
			if !errors.Is(got, tc.want) || transport != tc.transport {
				t.Fatalf("fromStatus = %v (transport %v), want %v (%v)", got, transport, tc.want, tc.transport)
			}
			if tc.text != "" && got.Error() != tc.text {
				t.Fatalf("text = %q, want %q", got.Error(), tc.text)
			}
		})
	}
	// A failed multi op becomes a *MultiError with its index.
	got, _ := fromStatus(withDetail(codes.Aborted, "op 2 (set /a): version mismatch", &coordpb.ErrorDetail{Code: coordpb.ErrorCode_BAD_VERSION, FailedOp: 2}))
	var me *MultiError
	if !errors.As(got, &me) || me.Index != 2 || !errors.Is(got, ErrBadVersion) {
		t.Fatalf("multi error = %#v", got)
	}
	// Every server code maps to some sentinel.
	for code := range coordpb.ErrorCode_name {
		if code == 0 {
			continue
		}
		if _, ok := codeSentinels[coordpb.ErrorCode(code)]; !ok {
			t.Errorf("code %v has no client sentinel", coordpb.ErrorCode(code))
		}
	}
}
