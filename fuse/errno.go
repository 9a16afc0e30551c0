package fuse

import (
	"context"
	"errors"
	"syscall"

	"coord/client"
	"coord/client/recipe"
)

// ToErrno maps an error from the client (or the lock recipe) to the errno
// a shell user understands. It is the one place this mapping lives (as
// go-fuse's fs.ToErrno). A syscall.Errno passes through; nil is 0;
// anything unknown is EIO.
func ToErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, client.ErrNoNode):
		return syscall.ENOENT
	case errors.Is(err, client.ErrNodeExists):
		return syscall.EEXIST
	case errors.Is(err, client.ErrNotEmpty):
		return syscall.ENOTEMPTY
	case errors.Is(err, client.ErrBadVersion):
		return syscall.ESTALE
	case errors.Is(err, client.ErrNoChildrenForEphemerals):
		return syscall.EPERM
	case errors.Is(err, client.ErrRootNode):
		return syscall.EPERM
	case errors.Is(err, client.ErrInvalidPath), errors.Is(err, client.ErrInvalidArgument):
		return syscall.EINVAL
	case errors.Is(err, client.ErrDataTooLarge):
		return syscall.EFBIG
	case errors.Is(err, client.ErrNoAuth), errors.Is(err, client.ErrUnauthenticated):
		// A znode ACL (or a cluster rule) refused the mount's identity.
		return syscall.EACCES
	case errors.Is(err, client.ErrInvalidACL):
		return syscall.EINVAL
	case errors.Is(err, recipe.ErrLocked):
		return syscall.EAGAIN
	case errors.Is(err, context.Canceled):
		// The kernel interrupted the call (a signal to the caller).
		return syscall.EINTR
	}
	// ErrUnavailable, ErrTimeout, ErrConnectionLoss, ErrSessionExpired,
	// ErrClosed, recipe.ErrLost, deadlines and the unknown: EIO (logged by
	// the caller, see Mount.errno).
	return syscall.EIO
}
