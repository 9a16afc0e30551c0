package parfault

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// EIO injection for raft.db (family K). raft.db is read through bbolt's
// mmap, out of reach of par.ReadFault; instead the node's data dir is a
// FUSE loopback mount (go-fuse) over a backing dir whose reads of chosen
// byte ranges of chosen files fail with EIO — as a latent sector error
// would. The fault belongs to the file (its backing inode), not to the
// name: a raft.db moved to par-quarantine/ keeps it, a new raft.db does not.
//
// The FUSE server runs in a child process (this executable again, with
// eioEnvBack and eioEnvMnt set; see ServeEIOFSIfChild): a page fault on an
// mmap of a FUSE file blocks its thread until the daemon answers, and in
// one Go process a stop-the-world GC then waits for that thread while the
// daemon's goroutines cannot run — a deadlock.

const (
	eioEnvBack = "PARFAULT_EIOFS_BACK"
	eioEnvMnt  = "PARFAULT_EIOFS_MNT"
)

// EIOAvailable reports why family K cannot run here (nil: it can).
func EIOAvailable() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no /dev/fuse: %w", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		if _, err2 := exec.LookPath("fusermount"); err2 != nil {
			return fmt.Errorf("no fusermount3 or fusermount in PATH: %w", err)
		}
	}
	return nil
}

// ServeEIOFSIfChild runs the EIO-injecting FUSE server and exits when this
// process was started as one (by mountEIO); otherwise it returns at once.
// Call it first in main or TestMain of any binary that runs family K.
func ServeEIOFSIfChild() {
	back, mnt := os.Getenv(eioEnvBack), os.Getenv(eioEnvMnt)
	if back == "" || mnt == "" {
		return
	}
	if err := serveEIOFS(back, mnt, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "parfault eiofs:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// eioRange is one injected fault: reads of [off, off+n) of the file with
// backing inode ino fail (n < 0: to the end of the file).
type eioRange struct {
	ino    uint64
	off, n int64
}

type eioCtl struct {
	mu     sync.Mutex
	ranges []eioRange
	hits   int64
}

func (c *eioCtl) bad(ino uint64, off int64, n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.ranges {
		if r.ino == ino && off+int64(n) > r.off && (r.n < 0 || off < r.off+r.n) {
			c.hits++
			return true
		}
	}
	return false
}

type eioNode struct {
	fs.LoopbackNode
	ctl *eioCtl
}

func (n *eioNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return fh, ff, errno
	}
	return n.wrap(fh, filepath.Join(n.RootData.Path, n.Path(n.Root()))), ff, 0
}

func (n *eioNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return ch, fh, ff, errno
	}
	return ch, n.wrap(fh, filepath.Join(n.RootData.Path, n.Path(n.Root()), name)), ff, 0
}

// wrap puts the fault check in front of a loopback file handle.
func (n *eioNode) wrap(fh fs.FileHandle, backing string) fs.FileHandle {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return fh
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return fh
	}
	return &eioFile{LoopbackFile: lf, ino: st.Ino, ctl: n.ctl}
}

// eioFile is a loopback file whose reads the kernel must send to us: no
// FUSE passthrough (kernels >= 6.9 would otherwise read the backing file
// directly and never ask).
type eioFile struct {
	*fs.LoopbackFile
	ino uint64
	ctl *eioCtl
}

func (f *eioFile) PassthroughFd() (int, bool) { return 0, false }

func (f *eioFile) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if f.ctl.bad(f.ino, off, len(buf)) {
		return nil, syscall.EIO
	}
	return f.LoopbackFile.Read(ctx, buf, off)
}

// serveEIOFS mounts back at mnt and serves until in ends. Commands on in,
// one per line, each answered "ok" or "err ..." on out:
//
//	eio NAME OFF LEN   reads of [OFF, OFF+LEN) of the file now named NAME
//	                   (relative to the root) fail; LEN -1: to the end.
//	                   The kernel's cached pages of NAME are dropped, so
//	                   the next access through an mmap faults them in.
//	clear              no more faults
//	hits               how many reads failed so far
func serveEIOFS(back, mnt string, in io.Reader, out io.Writer) error {
	var st syscall.Stat_t
	if err := syscall.Stat(back, &st); err != nil {
		return err
	}
	ctl := &eioCtl{}
	root := &fs.LoopbackRoot{Path: back, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &eioNode{LoopbackNode: fs.LoopbackNode{RootData: r}, ctl: ctl}
	}
	rootNode := root.NewNode(root, nil, "", &st)
	root.RootNode = rootNode
	srv, err := fs.Mount(mnt, rootNode, &fs.Options{MountOptions: fuse.MountOptions{FsName: "parfault-eio", Name: "parfault"}})
	if err != nil {
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var reply string
		switch {
		case len(f) == 4 && f[0] == "eio":
			off, err1 := strconv.ParseInt(f[2], 10, 64)
			n, err2 := strconv.ParseInt(f[3], 10, 64)
			var fst syscall.Stat_t
			err := errors.Join(err1, err2, syscall.Stat(filepath.Join(back, f[1]), &fst))
			if err != nil {
				reply = "err " + err.Error()
				break
			}
			ctl.mu.Lock()
			ctl.ranges = append(ctl.ranges, eioRange{ino: fst.Ino, off: off, n: n})
			ctl.mu.Unlock()
			reply = "ok"
			ch := rootNode.EmbeddedInode().GetChild(f[1])
			if ch != nil {
				// Drop every cached page (mapped ones are unmapped).
				if errno := ch.NotifyContent(0, 0); errno != 0 {
					reply = "err invalidate: " + errno.Error()
				}
			}
		case len(f) == 1 && f[0] == "clear":
			ctl.mu.Lock()
			ctl.ranges = nil
			ctl.mu.Unlock()
			reply = "ok"
		case len(f) == 1 && f[0] == "hits":
			ctl.mu.Lock()
			reply = fmt.Sprintf("ok %d", ctl.hits)
			ctl.mu.Unlock()
		default:
			reply = "err unknown command"
		}
		fmt.Fprintln(out, reply)
	}
	if err := srv.Unmount(); err != nil {
		return errors.Join(err, lazyUnmount(mnt))
	}
	return nil
}

func lazyUnmount(mnt string) error {
	for _, prog := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(prog); err == nil {
			return exec.Command(p, "-u", "-z", mnt).Run()
		}
	}
	return syscall.Unmount(mnt, syscall.MNT_DETACH)
}

// eioMount is a running EIO-injecting mount (the child process).
type eioMount struct {
	mnt string
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	mu  sync.Mutex
}

// mountEIO mounts back at mnt (an empty dir) through a child process.
func mountEIO(back, mnt string) (*eioMount, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), eioEnvBack+"="+back, eioEnvMnt+"="+mnt)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &eioMount{mnt: mnt, cmd: cmd, in: in, out: bufio.NewScanner(outp)}
	if line, err := m.readLine(10 * time.Second); err != nil || line != "ready" {
		m.close()
		return nil, fmt.Errorf("eio mount %s: %q %v", mnt, line, err)
	}
	return m, nil
}

func (m *eioMount) readLine(timeout time.Duration) (string, error) {
	type res struct {
		s  string
		ok bool
	}
	ch := make(chan res, 1)
	go func() { ok := m.out.Scan(); ch <- res{m.out.Text(), ok} }()
	select {
	case r := <-ch:
		if !r.ok {
			return "", errors.Join(io.ErrUnexpectedEOF, m.out.Err())
		}
		return r.s, nil
	case <-time.After(timeout):
		return "", errors.New("eio mount: no answer")
	}
}

// do sends one command and returns the answer after "ok".
func (m *eioMount) do(cmd string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := fmt.Fprintln(m.in, cmd); err != nil {
		return "", err
	}
	line, err := m.readLine(10 * time.Second)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "ok") {
		return "", fmt.Errorf("eio mount: %s: %s", cmd, line)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "ok")), nil
}

// arm makes reads of [off, off+n) of name fail with EIO (n < 0: to the end).
func (m *eioMount) arm(name string, off, n int64) error {
	_, err := m.do(fmt.Sprintf("eio %s %d %d", name, off, n))
	return err
}

// hits reports how many reads failed.
func (m *eioMount) hits() int64 {
	s, err := m.do("hits")
	if err != nil {
		return -1
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// close unmounts (every file on the mount must be closed) and reaps the
// child; a child that does not exit in time is killed and the mount
// detached.
func (m *eioMount) close() error {
	m.in.Close()
	done := make(chan error, 1)
	go func() { done <- m.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-done
		return errors.Join(errors.New("eio mount: child did not exit"), lazyUnmount(m.mnt))
	}
}
