package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"coord/coord/auth"
	"coord/coord/replica"
	"coord/coord/tree"
	"coord/proto/coordpb"
)

// Errors raised at the edge, before anything reaches the tree.
var (
	// ErrDataTooLarge: node data above the configured limit.
	ErrDataTooLarge = errors.New("data too large")
	// ErrInvalidArgument: a malformed request.
	ErrInvalidArgument = tree.ErrInvalidArgument
	// ErrOverloaded: admission control shed the request before it did
	// anything (see OverloadError for the retry-after hint).
	ErrOverloaded = errors.New("overloaded")
	// ErrWatchTooSlow: a watch stream's consumer fell too far behind and
	// the server ended the stream (see TooSlowError for where to resume).
	ErrWatchTooSlow = errors.New("watch consumer too slow")
)

// OverloadError is ErrOverloaded with the class that shed the request and
// how long the client should wait before trying again.
type OverloadError struct {
	Class      string
	RetryAfter time.Duration
	Reason     string // "queue full" or "queued too long"
}

func (e *OverloadError) Error() string {
	return fmt.Sprintf("overloaded: %s requests shed (%s); nothing was applied, retry after %v", e.Class, e.Reason, e.RetryAfter)
}

func (e *OverloadError) Unwrap() error { return ErrOverloaded }

// TooSlowError is ErrWatchTooSlow with the zxid every event up to which
// was sent: the consumer resumes (re-watches) after it.
type TooSlowError struct {
	ResumeZxid uint64
	Buffered   int // responses waiting when the stream was ended
}

func (e *TooSlowError) Error() string {
	return fmt.Sprintf("watch consumer too slow (%d responses waiting): stream ended, resync from zxid %d", e.Buffered, e.ResumeZxid)
}

func (e *TooSlowError) Unwrap() error { return ErrWatchTooSlow }

// errorTable is THE mapping from server errors to (gRPC code, ErrorCode).
// Order matters only where sentinels wrap each other.
var errorTable = []struct {
	err   error
	grpc  codes.Code
	coord coordpb.ErrorCode
}{
	{tree.ErrNoNode, codes.NotFound, coordpb.ErrorCode_NO_NODE},
	{tree.ErrNodeExists, codes.AlreadyExists, coordpb.ErrorCode_NODE_EXISTS},
	{tree.ErrBadVersion, codes.Aborted, coordpb.ErrorCode_BAD_VERSION},
	{tree.ErrNotEmpty, codes.FailedPrecondition, coordpb.ErrorCode_NOT_EMPTY},
	{tree.ErrNoChildrenForEphemerals, codes.FailedPrecondition, coordpb.ErrorCode_NO_CHILDREN_FOR_EPHEMERALS},
	{tree.ErrInvalidPath, codes.InvalidArgument, coordpb.ErrorCode_INVALID_PATH},
	{tree.ErrSessionExpired, codes.FailedPrecondition, coordpb.ErrorCode_SESSION_EXPIRED},
	{tree.ErrRootNode, codes.InvalidArgument, coordpb.ErrorCode_ROOT_NODE},
	{tree.ErrInvalidArgument, codes.InvalidArgument, coordpb.ErrorCode_INVALID_ARGUMENT},
	{ErrDataTooLarge, codes.InvalidArgument, coordpb.ErrorCode_DATA_TOO_LARGE},
	{replica.ErrNoLeader, codes.Unavailable, coordpb.ErrorCode_UNAVAILABLE},
	{replica.ErrStopped, codes.Unavailable, coordpb.ErrorCode_UNAVAILABLE},
	{replica.ErrNotLeader, codes.Unavailable, coordpb.ErrorCode_NOT_LEADER},
	{replica.ErrUnknownOutcome, codes.Unavailable, coordpb.ErrorCode_UNKNOWN_OUTCOME},
	{replica.ErrMembership, codes.FailedPrecondition, coordpb.ErrorCode_MEMBERSHIP},
	{auth.ErrTooManyLogins, codes.ResourceExhausted, coordpb.ErrorCode_UNAUTHENTICATED},
	{tree.ErrNoAuth, codes.PermissionDenied, coordpb.ErrorCode_NO_AUTH},
	{tree.ErrInvalidACL, codes.InvalidArgument, coordpb.ErrorCode_INVALID_ACL},
	{auth.ErrPermissionDenied, codes.PermissionDenied, coordpb.ErrorCode_NO_AUTH},
	{auth.ErrUnauthenticated, codes.Unauthenticated, coordpb.ErrorCode_UNAUTHENTICATED},
	{ErrOverloaded, codes.ResourceExhausted, coordpb.ErrorCode_OVERLOADED},
	{ErrWatchTooSlow, codes.ResourceExhausted, coordpb.ErrorCode_WATCH_TOO_SLOW},
}

// opError carries the index of a failed multi op and the path.
type opError struct {
	err      error
	failedOp int32
	path     string
}

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// ToStatus turns any server error into a gRPC status error with an
// ErrorDetail. Context errors pass through as their gRPC codes; anything
// unknown becomes Internal and is logged.
func ToStatus(log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isOurs(err) {
		// Already a status (e.g. from a forwarded call): keep it.
		return err
	}
	detail := &coordpb.ErrorDetail{FailedOp: -1}
	var oe *opError
	if errors.As(err, &oe) {
		detail.FailedOp = oe.failedOp
		detail.Path = oe.path
	}
	var ov *OverloadError
	if errors.As(err, &ov) {
		detail.RetryAfterMs = max(1, ov.RetryAfter.Milliseconds())
	}
	var ts *TooSlowError
	if errors.As(err, &ts) {
		detail.ResumeZxid = ts.ResumeZxid
	}
	code := codes.Internal
	detail.Code = coordpb.ErrorCode_INTERNAL
	matched := false
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			code, detail.Code, matched = row.grpc, row.coord, true
			break
		}
	}
	if !matched {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code, detail.Code = codes.DeadlineExceeded, coordpb.ErrorCode_TIMEOUT
		case errors.Is(err, context.Canceled):
			code, detail.Code = codes.Canceled, coordpb.ErrorCode_TIMEOUT
		default:
			log.Error("internal error", "err", err)
		}
	}
	st := status.New(code, err.Error())
	if withDetail, derr := st.WithDetails(detail); derr == nil {
		st = withDetail
	}
	return st.Err()
}

// isOurs reports whether err is one of our sentinels (which should be
// re-mapped even if wrapped in something status-like).
func isOurs(err error) bool {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return true
		}
	}
	return false
}

// resultError turns a non-OK ApplyResult into an error that maps back to
// the same code, keeping the failed op index.
func resultError(res *coordpb.ApplyResult, path string) error {
	if res.Code == coordpb.ErrorCode_OK {
		return nil
	}
	var err error
	switch res.Code {
	case coordpb.ErrorCode_DATA_TOO_LARGE:
		err = fmt.Errorf("%w: %s", ErrDataTooLarge, res.Message)
	default:
		err = tree.ErrorFromCode(res.Code, res.Message)
	}
	return &opError{err: err, failedOp: res.FailedOp, path: path}
}

// ErrPeerUnreachable: a peer call failed in transport (no ErrorDetail).
var ErrPeerUnreachable = errors.New("peer unreachable")

// FromStatus is the inverse of ToStatus, for peer calls: a status with an
// ErrorDetail becomes the matching sentinel (with the peer's message); a
// bare Unavailable becomes ErrPeerUnreachable; context codes become context
// errors.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		detail, ok := d.(*coordpb.ErrorDetail)
		if !ok {
			continue
		}
		for _, row := range errorTable {
			if row.coord == detail.Code {
				if row.err.Error() == st.Message() {
					return row.err
				}
				return &peerError{msg: st.Message(), err: row.err}
			}
		}
		if detail.Code == coordpb.ErrorCode_TIMEOUT {
			return fmt.Errorf("%s: %w", st.Message(), context.DeadlineExceeded)
		}
		return fmt.Errorf("peer: %s", st.Message())
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("%w: %s", ErrPeerUnreachable, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("peer: %s: %w", st.Message(), context.DeadlineExceeded)
	case codes.Canceled:
		return fmt.Errorf("peer: %s: %w", st.Message(), context.Canceled)
	}
	return fmt.Errorf("peer: %s", st.Message())
}

type peerError struct {
	msg string
	err error
}

func (e *peerError) Error() string { return e.msg }
func (e *peerError) Unwrap() error { return e.err }

// EncodeStatus marshals a status error (from ToStatus) for carrying inside
// a message, as ProposeOutcome does.
func EncodeStatus(err error) []byte {
	b, merr := proto.Marshal(status.Convert(err).Proto())
	if merr != nil {
		// A Status always marshals; keep the code and message if not.
		b, _ = proto.Marshal(status.New(codes.Internal, err.Error()).Proto())
	}
	return b
}

// DecodeStatus is EncodeStatus's inverse, returning the server error
// (through FromStatus); malformed bytes give an Internal error, never nil.
func DecodeStatus(b []byte) error { return FromStatus(DecodeStatusError(b)) }

// DecodeStatusError is DecodeStatus without FromStatus: the gRPC status
// error itself, as a unary call would have returned it to a client.
func DecodeStatusError(b []byte) error {
	var st spb.Status
	if err := proto.Unmarshal(b, &st); err != nil || st.GetCode() == int32(codes.OK) {
		return status.Errorf(codes.Internal, "malformed error status (%d bytes)", len(b))
	}
	return status.FromProto(&st).Err()
}
