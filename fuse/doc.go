// Package fuse mounts the coord tree as a filesystem (hanwen/go-fuse/v2),
// so shell tools work on it: cat, echo >, >>, cp, ls, find, grep -r,
// mkdir -p, rm -r, rmdir, stat, touch, mv of a file, flock. The mount is
// just another coord client: it imports coord/client and
// coord/client/recipe, never the server packages. docs/FUSE.md is the
// user's guide; ../shared/design/fuse.md the design it follows.
//
// # Usage
//
//  1. m, err := fuse.New(ctx, dir, fuse.Config{Client: client.Config{...}})
//     makes a client, opens its one session and mounts dir.
//  2. m.Wait() returns when the filesystem is unmounted (by Close or by
//     fusermount3 -u from outside).
//  3. m.Close(ctx) wakes blocked watch reads, unmounts (lazily if busy),
//     stops the goroutines, and closes the client and so the session: the
//     mount's ephemerals and locks go at once. A killed mount process
//     loses them after the session timeout instead.
//
// # Mapping
//
// A znode is a directory when it was made by mkdir or has had a child
// (Stat.Directory), else a regular file whose content is its data.
// DIR/.data is a directory's own data; DIR/.lock the file to flock for the
// directory (the kernel does not send flock on a directory to the
// filesystem). MOUNT/.coord is the control namespace: ctl (commands such
// as "create -e -s /q/job-" answered on the same open file), status, and
// watch/PATH (a read blocks until PATH changes). Lock queues live in the
// hidden znode /.fuse-locks. Inode numbers come from the czxid.
//
// Files are read whole at open and written whole at flush (close) as one
// set, with the version read at open as the expected version (ESTALE on a
// concurrent change), except that O_TRUNC handles overwrite
// unconditionally and O_APPEND handles re-apply their appended bytes on
// top of a concurrent change. While the open file holds a flock the set is
// fenced with the lock (Lock.Guard).
//
// flock(2) and fcntl locks map to the recipe's write lock (LOCK_EX,
// F_WRLCK) and read lock (LOCK_SH, F_RDLCK) on the znode; -n forms to
// TryLock (EAGAIN); a blocked wait returns EINTR when the kernel
// interrupts it. A lock belongs to the open file and is dropped on unlock
// or at RELEASE (last close). user.coord.lock_token is its fencing token.
//
// # Goroutines
//
//   - invalidator (invalidate.go): started by New; owns one recursive
//     watch on "/" and turns each event into kernel cache invalidations
//     (NotifyContent, NotifyEntry). Stops when Close cancels the mount's
//     ctx.
//   - sessionWatcher (mount.go): started by New; when the session ends
//     under the mount it logs loudly, opens a new client and session and
//     makes it current (files opened under the old one then fail with
//     EIO; the invalidator re-arms its watch on the new client). Stops at
//     Close.
//   - one goroutine waiting on the go-fuse server (mount.go), closing
//     Mount.unmounted when the kernel mount goes (Close, or fusermount3 -u
//     from outside, which Close then does not treat as an error).
//   - go-fuse's request loops: started by fs.Mount, ended by the unmount.
//     Handlers block at most for a client call (bounded by the client's
//     RequestTimeout), a lock wait (ends on EINTR or Close) or a watch
//     read (ends on an event, EINTR or Close).
//
// # Errors
//
// ToErrno (errno.go) is the one mapping from client errors to errno: no
// node ENOENT, exists EEXIST, not empty ENOTEMPTY, version conflict
// ESTALE, bad path EINVAL, too large EFBIG, lock held EAGAIN, interrupted
// EINTR, and EIO for no quorum, timeouts, lost connection and an expired
// session (each EIO is logged with its cause).
//
// # Decisions
//
//   - Whole-file buffered writes with a version check, not last writer
//     wins: nothing is silently overwritten, except by O_TRUNC (echo >),
//     which means "replace".
//   - An O_TRUNC handle with no write yet is written at release, not at
//     flush: sh dups and closes the fd before writing, and a flush there
//     would publish an empty intermediate value.
//   - Renaming a directory answers EXDEV (mv copies and deletes); a leaf
//     is renamed atomically with one multi (a new znode: new czxid, new
//     inode number).
//   - chmod, chown and utimes are accepted and ignored: mode is 0644 for
//     files and 0755 for directories, mtime the time of the last write.
//   - An expired session is replaced by a new one (the client library
//     never replaces its own session, so the mount swaps clients); the
//     old session's ephemerals and locks are gone.
package fuse
