package tree

import (
	"errors"

	"coord/proto/coordpb"
)

// Errors of the tree. Apply reports them as ApplyResult codes; reads return
// them wrapped with detail. Test with errors.Is.
var (
	// ErrNoNode: the node (or, for a create, its parent) does not exist.
	ErrNoNode = errors.New("node does not exist")
	// ErrNodeExists: a create names an existing node.
	ErrNodeExists = errors.New("node already exists")
	// ErrBadVersion: the expected version does not match.
	ErrBadVersion = errors.New("version mismatch")
	// ErrNotEmpty: a non-recursive delete of a node with children.
	ErrNotEmpty = errors.New("node has children")
	// ErrNoChildrenForEphemerals: a create under an ephemeral node.
	ErrNoChildrenForEphemerals = errors.New("ephemeral nodes may not have children")
	// ErrInvalidPath: the path breaks a path rule (the message names it).
	ErrInvalidPath = errors.New("invalid path")
	// ErrSessionExpired: the session does not exist (never opened, closed
	// or expired).
	ErrSessionExpired = errors.New("session does not exist or has expired")
	// ErrInvalidArgument: any other malformed command.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrRootNode: the root cannot be deleted.
	ErrRootNode = errors.New("the root node cannot be changed this way")
	// ErrNoAuth: the caller lacks the permission the ACL asks for.
	ErrNoAuth = errors.New("permission denied")
	// ErrInvalidACL: a malformed ACL entry.
	ErrInvalidACL = errors.New("invalid ACL")
	// ErrCorruptSnapshot: a snapshot failed verification.
	ErrCorruptSnapshot = errors.New("corrupt snapshot")
)

var codeTable = []struct {
	err  error
	code coordpb.ErrorCode
}{
	{ErrNoNode, coordpb.ErrorCode_NO_NODE},
	{ErrNodeExists, coordpb.ErrorCode_NODE_EXISTS},
	{ErrBadVersion, coordpb.ErrorCode_BAD_VERSION},
	{ErrNotEmpty, coordpb.ErrorCode_NOT_EMPTY},
	{ErrNoChildrenForEphemerals, coordpb.ErrorCode_NO_CHILDREN_FOR_EPHEMERALS},
	{ErrInvalidPath, coordpb.ErrorCode_INVALID_PATH},
	{ErrSessionExpired, coordpb.ErrorCode_SESSION_EXPIRED},
	{ErrInvalidArgument, coordpb.ErrorCode_INVALID_ARGUMENT},
	{ErrRootNode, coordpb.ErrorCode_ROOT_NODE},
	{ErrNoAuth, coordpb.ErrorCode_NO_AUTH},
	{ErrInvalidACL, coordpb.ErrorCode_INVALID_ACL},
}

// ErrorCode maps a tree error to its wire code (nil → OK, unknown →
// INTERNAL).
func ErrorCode(err error) coordpb.ErrorCode {
	if err == nil {
		return coordpb.ErrorCode_OK
	}
	for _, row := range codeTable {
		if errors.Is(err, row.err) {
			return row.code
		}
	}
	return coordpb.ErrorCode_INTERNAL
}

// codedError carries a message and the sentinel it stands for.
type codedError struct {
	msg string
	err error
}

func (e *codedError) Error() string { return e.msg }
func (e *codedError) Unwrap() error { return e.err }

// ErrorFromCode is the inverse of ErrorCode: an error that errors.Is the
// code's sentinel and reads msg (or the sentinel's text when msg is "").
func ErrorFromCode(code coordpb.ErrorCode, msg string) error {
	if code == coordpb.ErrorCode_OK {
		return nil
	}
	for _, row := range codeTable {
		if row.code == code {
			if msg == "" || msg == row.err.Error() {
				return row.err
			}
			return &codedError{msg: msg, err: row.err}
		}
	}
	if msg == "" {
		msg = code.String()
	}
	return errors.New(msg)
}

// errorf wraps a sentinel with a message that replaces its text.
func errorf(sentinel error, msg string) error { return &codedError{msg: msg, err: sentinel} }
