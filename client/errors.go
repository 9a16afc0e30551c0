package client

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/coordpb"
)

// Errors returned by the client. Test them with errors.Is; an error's text
// is the server's own message, which may carry detail ("version mismatch:
// expected 3, current 5").
var (
	// ErrNoNode: the node does not exist.
	ErrNoNode = errors.New("node does not exist")
	// ErrNodeExists: create of a node that already exists.
	ErrNodeExists = errors.New("node already exists")
	// ErrBadVersion: the expected version did not match.
	ErrBadVersion = errors.New("version mismatch")
	// ErrNotEmpty: delete of a node that has children (use DeleteAll).
	ErrNotEmpty = errors.New("node has children")
	// ErrNoChildrenForEphemerals: create under an ephemeral node.
	ErrNoChildrenForEphemerals = errors.New("ephemeral nodes may not have children")
	// ErrInvalidPath: the path breaks a path rule; the message names it.
	ErrInvalidPath = errors.New("invalid path")
	// ErrDataTooLarge: data above the server's limit.
	ErrDataTooLarge = errors.New("data too large")
	// ErrSessionExpired is fatal for the session: its ephemerals are gone
	// and SessionDone is closed. The client does not open another one.
	ErrSessionExpired = errors.New("session does not exist or has expired")
	// ErrInvalidArgument: any other malformed request.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: no leader (election, or no quorum) or no server
	// reachable; nothing was applied. The client has already retried until
	// the ctx deadline.
	ErrUnavailable = errors.New("cluster unavailable")
	// ErrConnectionLoss: the connection broke while a write was in flight,
	// or leadership was lost under it: it may or may not have been applied.
	// Check (read) before retrying.
	ErrConnectionLoss = errors.New("connection lost; the request may or may not have been applied")
	// ErrCompacted: watch history no longer reaches back far enough.
	ErrCompacted = errors.New("history compacted")
	// ErrRootNode: the root cannot be deleted or replaced.
	ErrRootNode = errors.New("the root node cannot be changed this way")
	// ErrMembership: a membership change was refused.
	ErrMembership = errors.New("membership change refused")
	// ErrTimeout: the server could not reach the wanted state in time.
	ErrTimeout = errors.New("timed out")
	// ErrInternal: a server bug (logged there) or an unexpected reply.
	ErrInternal = errors.New("internal server error")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client closed")
	// ErrNoAuth: the caller lacks the permission (a znode ACL, or a
	// superuser-only call).
	ErrNoAuth = errors.New("permission denied")
	// ErrUnauthenticated: the call needs an identity (a client certificate
	// or a password login) and the caller has none.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrInvalidACL: a malformed ACL entry.
	ErrInvalidACL = errors.New("invalid ACL")
	// ErrOverloaded: the server shed the request before doing anything
	// (admission control): nothing was applied. The client retries it
	// after the server's retry-after hint (with jitter) while its retry
	// budget lasts; Error.RetryAfter carries the hint.
	ErrOverloaded = errors.New("server overloaded")
	// ErrThrottled: the client's own adaptive throttle rejected the
	// request without sending it, because the servers shed this client's
	// recent requests (retry.go). Such an error is also ErrOverloaded;
	// ErrThrottled tells it from a server's shed (which has
	// Error.RetryAfter set).
	ErrThrottled = errors.New("rejected by the client's adaptive throttle")
	// ErrWatchTooSlow: the server ended a watch stream whose consumer fell
	// too far behind. A Watch resumes by itself after the last event it
	// received; the error is seen only by raw stream users.
	ErrWatchTooSlow = errors.New("watch consumer too slow")
)

// codeSentinels maps the server's machine-readable reason to a sentinel.
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
	coordpb.ErrorCode_NO_AUTH:                    ErrNoAuth,
	coordpb.ErrorCode_UNAUTHENTICATED:            ErrUnauthenticated,
	coordpb.ErrorCode_INVALID_ACL:                ErrInvalidACL,
	coordpb.ErrorCode_OVERLOADED:                 ErrOverloaded,
	coordpb.ErrorCode_WATCH_TOO_SLOW:             ErrWatchTooSlow,
}

// Error is an error reported by the server or the transport. Its text is
// the server's message; errors.Is matches its sentinel.
type Error struct {
	// Message is the server's message (or a transport description).
	Message string
	// Path the error is about, when the server named one.
	Path string
	// RetryAfter is the server's hint for ErrOverloaded (0 otherwise).
	RetryAfter time.Duration
	// ResumeZxid, for ErrWatchTooSlow: every event up to it was sent.
	ResumeZxid uint64

	failedOp int // index of the failed multi op, -1 if none
	err      error
}

func (e *Error) Error() string { return e.Message }

// throttledError is the sentinel of a local rejection: both ErrThrottled
// and ErrOverloaded.
type throttledError struct{}

func (throttledError) Error() string { return ErrThrottled.Error() }

func (throttledError) Is(target error) bool { return target == ErrThrottled || target == ErrOverloaded }
func (e *Error) Unwrap() error              { return e.err }

// MultiError reports which op of a Multi failed; it unwraps to the
// op's error, so errors.Is(err, ErrBadVersion) works on it.
type MultiError struct {
	// Index of the failed op in the ops passed to Multi.
	Index int
	// Err is the op's error.
	Err error
}

func (e *MultiError) Error() string { return e.Err.Error() }
func (e *MultiError) Unwrap() error { return e.Err }

// unavailableError ends a call that was retried until ctx ran out: it is
// ErrUnavailable, the ctx error, and the last attempt's error.
type unavailableError struct {
	last, ctx error
}

func (e *unavailableError) Error() string {
	if errors.Is(e.last, ErrUnavailable) {
		return e.last.Error() // the server's "no leader ..." says it all
	}
	return "no server reachable: " + strings.TrimPrefix(e.last.Error(), "connection lost: ")
}

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.ctx, e.last} }

// budgetError: a retry was due but the client's retry budget is spent
// (retry.go); the call returns its last error without retrying.
type budgetError struct{ last error }

func (e *budgetError) Error() string {
	return "not retried (the client's retry budget is spent: retries are capped at a share of requests): " + e.last.Error()
}

func (e *budgetError) Unwrap() []error { return []error{ErrUnavailable, e.last} }

// mapError is THE function turning a gRPC error into the client's errors.
// transport reports a failure with no server verdict (codes.Unavailable
// without an ErrorDetail): the connection is down or broke mid-call.
// Errors that are not gRPC statuses (local I/O) pass through unchanged.
func mapError(err error) (out error, transport bool) {
	if err == nil {
		return nil, false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err, false
	}
	st, ok := status.FromError(err)
	if !ok {
		return err, false
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		return &Error{Message: st.Message(), failedOp: -1, err: context.DeadlineExceeded}, false
	case codes.Canceled:
		return &Error{Message: st.Message(), failedOp: -1, err: context.Canceled}, false
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
		return &Error{Message: st.Message(), Path: detail.Path, failedOp: int(detail.FailedOp), err: sentinel,
			RetryAfter: time.Duration(detail.RetryAfterMs) * time.Millisecond, ResumeZxid: detail.ResumeZxid}, false
	}
	// No detail: not from a coord handler.
	switch st.Code() {
	case codes.Unavailable:
		return &Error{Message: "connection lost: " + tidyTransport(st.Message()), failedOp: -1, err: ErrConnectionLoss}, true
	case codes.NotFound:
		return &Error{Message: st.Message(), failedOp: -1, err: ErrNoNode}, false
	case codes.AlreadyExists:
		return &Error{Message: st.Message(), failedOp: -1, err: ErrNodeExists}, false
	case codes.Aborted:
		return &Error{Message: st.Message(), failedOp: -1, err: ErrBadVersion}, false
	case codes.InvalidArgument, codes.ResourceExhausted, codes.OutOfRange:
		// ResourceExhausted: a message above gRPC's size limit.
		return &Error{Message: st.Message(), failedOp: -1, err: ErrInvalidArgument}, false
	}
	return &Error{Message: st.Code().String() + ": " + st.Message(), failedOp: -1, err: ErrInternal}, false
}

// tidyTransport shortens gRPC's nested transport messages to the part a
// person reads ("dial tcp 127.0.0.1:1: connect: connection refused").
func tidyTransport(msg string) string {
	if i := strings.Index(msg, "dial tcp "); i >= 0 {
		return strings.TrimRight(msg[i:], `"`)
	}
	msg = strings.TrimPrefix(msg, "connection error: desc = ")
	msg = strings.TrimPrefix(msg, `"transport: `)
	return strings.Trim(msg, `"`)
}

// neverSent reports a transport failure that happened before the request
// could reach a server (dialing failed), so even a write may go elsewhere.
func neverSent(err error) bool {
	var nc *notConnectedError
	if errors.As(err, &nc) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"Error while dialing", "connection refused", "no such host", "produced zero addresses"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
