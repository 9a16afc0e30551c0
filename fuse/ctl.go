package fuse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gf "github.com/hanwen/go-fuse/v2/fuse"

	"coord/client"
)

// The control namespace, MOUNT/.coord (Plan 9 style):
//
//	.coord/ctl      write a command, read its answer on the same open file
//	.coord/status   session id, timeout, endpoint, last zxid seen
//	.coord/watch/P  reading blocks until znode P changes (watch.go)

// ctlLookup returns the .coord directory, made on first use.
func (m *Mount) ctlLookup(out *gf.EntryOut) *fs.Inode {
	m.ctlMu.Lock()
	defer m.ctlMu.Unlock()
	out.Attr.Mode = syscall.S_IFDIR | 0o755
	out.Attr.Nlink = 2
	if m.ctl != nil {
		return m.ctl
	}
	ctx := context.Background()
	r := &m.root.Inode
	d := r.NewPersistentInode(ctx, &fs.Inode{}, fs.StableAttr{Mode: syscall.S_IFDIR})
	d.AddChild("ctl", r.NewPersistentInode(ctx, &ctlFile{m: m}, fs.StableAttr{Mode: syscall.S_IFREG}), false)
	d.AddChild("status", r.NewPersistentInode(ctx, &statusFile{m: m}, fs.StableAttr{Mode: syscall.S_IFREG}), false)
	d.AddChild("watch", r.NewPersistentInode(ctx, &watchDir{m: m, path: "/"}, fs.StableAttr{Mode: syscall.S_IFDIR}), false)
	m.ctl = d
	return d
}

// ctlFile is .coord/ctl.
type ctlFile struct {
	fs.Inode
	m *Mount
}

var (
	_ fs.NodeOpener    = (*ctlFile)(nil)
	_ fs.NodeGetattrer = (*ctlFile)(nil)
	_ fs.NodeSetattrer = (*ctlFile)(nil)
)

func (f *ctlFile) Getattr(ctx context.Context, fh fs.FileHandle, out *gf.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	out.Nlink = 1
	return 0
}

// Setattr accepts the truncate of `echo cmd > ctl`.
func (f *ctlFile) Setattr(ctx context.Context, fh fs.FileHandle, in *gf.SetAttrIn, out *gf.AttrOut) syscall.Errno {
	return f.Getattr(ctx, fh, out)
}

func (f *ctlFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &ctlHandle{m: f.m}, gf.FOPEN_DIRECT_IO | gf.FOPEN_NONSEEKABLE, 0
}

// ctlHandle runs each written line as a command; a read returns (and
// consumes) the answers not yet read.
type ctlHandle struct {
	m   *Mount
	mu  sync.Mutex
	out []byte
}

var (
	_ fs.FileReader = (*ctlHandle)(nil)
	_ fs.FileWriter = (*ctlHandle)(nil)
)

func (h *ctlHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		res, err := h.m.command(ctx, line)
		if err != nil {
			h.out = append(h.out, "error: "+oneLine(err.Error())+"\n"...)
			return 0, h.m.errno("ctl", line, err)
		}
		h.out = append(h.out, res...)
	}
	return uint32(len(data)), 0
}

func (h *ctlHandle) Read(ctx context.Context, dest []byte, off int64) (gf.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := copy(dest, h.out)
	h.out = h.out[n:]
	return gf.ReadResultData(dest[:n]), 0
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// errUsage: a ctl command the mount does not understand.
var errUsage = errors.New("usage: create [-e] [-s] [-d] PATH [DATA...] | sync [PATH] | help")

// command runs one ctl command and returns its answer line(s).
func (m *Mount) command(ctx context.Context, line string) (string, error) {
	f := strings.Fields(line)
	switch f[0] {
	case "help":
		return errUsage.Error()[len("usage: "):] + "\n", nil
	case "sync":
		p := "/"
		if len(f) > 1 {
			p = f[1]
		}
		if err := m.cli().Sync(ctx, p); err != nil {
			return "", err
		}
		return "ok\n", nil
	case "create":
		var opts client.CreateOptions
		i := 1
		for ; i < len(f) && strings.HasPrefix(f[i], "-"); i++ {
			for _, c := range f[i][1:] {
				switch c {
				case 'e':
					opts.Ephemeral = true
				case 's':
					opts.Sequential = true
				case 'd':
					opts.Directory = true
				default:
					return "", fmt.Errorf("%w: create: unknown flag -%c (%w)", syscall.EINVAL, c, errUsage)
				}
			}
		}
		if i >= len(f) {
			return "", fmt.Errorf("%w: create: no path (%w)", syscall.EINVAL, errUsage)
		}
		var data []byte
		if i+1 < len(f) {
			data = []byte(strings.Join(f[i+1:], " "))
		}
		p, _, err := m.cli().Create(ctx, f[i], data, &opts)
		if err != nil {
			return "", err
		}
		return p + "\n", nil
	}
	return "", fmt.Errorf("%w: unknown command %q (%w)", syscall.EINVAL, f[0], errUsage)
}

// statusFile is .coord/status, made at open.
type statusFile struct {
	fs.Inode
	m *Mount
}

var (
	_ fs.NodeOpener    = (*statusFile)(nil)
	_ fs.NodeGetattrer = (*statusFile)(nil)
)

func (f *statusFile) Getattr(ctx context.Context, fh fs.FileHandle, out *gf.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Nlink = 1
	return 0
}

func (f *statusFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	c := f.m.cli()
	state := "live"
	select {
	case <-c.SessionDone():
		state = "ended: " + oneLine(fmt.Sprint(c.SessionErr()))
	default:
	}
	s := fmt.Sprintf("session %#x\nsession_state %s\nsession_timeout %s\nendpoint %s\nlast_zxid %d\n",
		c.SessionID(), state, c.SessionTimeout(), c.Endpoint(), c.LastZxid())
	return &bytesHandle{data: []byte(s)}, gf.FOPEN_DIRECT_IO, 0
}

// bytesHandle reads a fixed buffer.
type bytesHandle struct{ data []byte }

var _ fs.FileReader = (*bytesHandle)(nil)

func (h *bytesHandle) Read(ctx context.Context, dest []byte, off int64) (gf.ReadResult, syscall.Errno) {
	if off >= int64(len(h.data)) {
		return gf.ReadResultData(nil), 0
	}
	return gf.ReadResultData(h.data[off:min(off+int64(len(dest)), int64(len(h.data)))]), 0
}
