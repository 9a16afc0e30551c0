package fuse

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"

	"coord/client"
	"coord/client/recipe"
)

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }

func TestToErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{client.ErrNoNode, syscall.ENOENT},
		{fmt.Errorf("get /a: %w", client.ErrNoNode), syscall.ENOENT},
		{client.ErrNodeExists, syscall.EEXIST},
		{client.ErrNotEmpty, syscall.ENOTEMPTY},
		{client.ErrBadVersion, syscall.ESTALE},
		{client.ErrInvalidPath, syscall.EINVAL},
		{client.ErrDataTooLarge, syscall.EFBIG},
		{client.ErrNoAuth, syscall.EACCES},
		{client.ErrUnauthenticated, syscall.EACCES},
		{client.ErrInvalidACL, syscall.EINVAL},
		{client.ErrUnavailable, syscall.EIO},
		{client.ErrSessionExpired, syscall.EIO},
		{client.ErrConnectionLoss, syscall.EIO},
		{recipe.ErrLocked, syscall.EAGAIN},
		{recipe.ErrLost, syscall.EIO},
		{context.Canceled, syscall.EINTR},
		{context.DeadlineExceeded, syscall.EIO},
		{fmt.Errorf("x: %w", syscall.ENOTDIR), syscall.ENOTDIR},
	} {
		if got := ToErrno(tc.err); got != tc.want {
			t.Errorf("ToErrno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
