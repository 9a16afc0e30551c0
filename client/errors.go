package client

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/coordpb"
)

// Errors returned by the client. Test with errors.Is; the error's text is
// the server's message, which may add detail ("version mismatch: expected
// 3, current 5").
var (
	ErrNoNode                  = errors.New("node does not exist")
	ErrNodeExists              = errors.New("node already exists")
	ErrBadVersion              = errors.New("version mismatch")
	ErrNotEmpty                = errors.New("node has children")
	ErrNoChildrenForEphemerals = errors.New("ephemeral nodes may not have children")
	ErrInvalidPath             = errors.New("invalid path")
	ErrDataTooLarge            = errors.New("data too large")
	// ErrSessionExpired is fatal for the session: its ephemerals are gone.
	ErrSessionExpired  = errors.New("session does not exist or has expired")
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: no leader (election, or no quorum); nothing was
	// applied, and the client already retried until the deadline.
	ErrUnavailable = errors.New("cluster unavailable")
	// ErrConnectionLoss: the connection broke while a write was in flight;
	// it may or may not have been applied. Retryable by the caller once it
	// has checked.
	ErrConnectionLoss = errors.New("connection lost; the request may or may not have been applied")
	ErrCompacted      = errors.New("history compacted")
	ErrRootNode       = errors.New("the root node cannot be changed this way")
	ErrMembership     = errors.New("membership change refused")
	ErrTimeout        = errors.New("timed out")
	ErrInternal       = errors.New("internal server error")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client closed")
)

var codeSentinels = map[coordpb.ErrorCode]error{
	coordpb.ErrorCode_NO_NODE:                    ErrNoNode,
	coordpb.ErrorCode_NODE_EXISTS:                ErrNodeExists,
	coordpb.ErrorCode_BAD_VERSION:                ErrBadVersion,
	coordpb.ErrorCode_NOT_EMPTY:                  ErrNotEmpty,
	coordpb.ErrorCode_NO_CHILDREN_FOR_EPHEMERALS: ErrNoChildrenForEphemerals,
	coordpb.ErrorCode_INVALID_PATH:               ErrInvalidPath,
	coordpb.ErrorCode_DATA_TOO_LARGE:             ErrDataTooLarge,
	coordpb.ErrorCode_SESSION_EXPIRED:            ErrSessionExpired,
	coordpb.ErrorCode_INVALID_ARGUMENT:           ErrInvalidArgument,
	coordpb.ErrorCode_UNAVAILABLE:                ErrUnavailable,
	coordpb.ErrorCode_NOT_LEADER:                 ErrUnavailable,
	coordpb.ErrorCode_COMPACTED:                  ErrCompacted,
	coordpb.ErrorCode_INTERNAL:                   ErrInternal,
	coordpb.ErrorCode_ROOT_NODE:                  ErrRootNode,
	coordpb.ErrorCode_MEMBERSHIP:                 ErrMembership,
	coordpb.ErrorCode_TIMEOUT:                    ErrTimeout,
	coordpb.ErrorCode_UNKNOWN_OUTCOME:            ErrConnectionLoss,
}

// Error is a server-reported error: errors.Is matches its sentinel.
type Error struct {
	Code    coordpb.ErrorCode
	Message string
	// Path the error is about, when the server named one.
	Path string
	err  error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.err }

// MultiError reports which op of a Multi failed.
type MultiError struct {
	Index int
	Err   error
}

func (e *MultiError) Error() string { return e.Err.Error() }
func (e *MultiError) Unwrap() error { return e.Err }

// fromStatus maps a gRPC error to the client's errors. transport reports
// whether the failure was in transport (no server verdict).
func fromStatus(err error) (out error, transport bool) {
	if err == nil {
		return nil, false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err, false
	}
	st, ok := status.FromError(err)
	if !ok {
		return err, true
	}
	for _, d := range st.Details() {
		detail, ok := d.(*coordpb.ErrorDetail)
		if !ok {
			continue
		}
		sentinel, ok := codeSentinels[detail.Code]
		if !ok {
			sentinel = ErrInternal
		}
		e := &Error{Code: detail.Code, Message: st.Message(), Path: detail.Path, err: sentinel}
		if detail.Code == coordpb.ErrorCode_TIMEOUT && st.Code() == codes.DeadlineExceeded {
			return fmt.Errorf("%s: %w", st.Message(), context.DeadlineExceeded), false
		}
		if detail.FailedOp >= 0 && detail.Code != coordpb.ErrorCode_OK {
			return &MultiError{Index: int(detail.FailedOp), Err: e}, false
		}
		return e, false
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", st.Message(), context.DeadlineExceeded), false
	case codes.Canceled:
		return fmt.Errorf("%s: %w", st.Message(), context.Canceled), false
	case codes.Unavailable:
		return fmt.Errorf("%w: %s", ErrConnectionLoss, st.Message()), true
	case codes.ResourceExhausted:
		return &Error{Code: coordpb.ErrorCode_INVALID_ARGUMENT, Message: st.Message(), err: ErrInvalidArgument}, false
	}
	return &Error{Code: coordpb.ErrorCode_INTERNAL, Message: st.Message(), err: ErrInternal}, false
}
