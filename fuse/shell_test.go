package fuse

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShell_Basics drives the everyday commands through a real mount and
// checks each against the tree read with the gRPC client.
func TestShell_Basics(t *testing.T) {
	cl := newCluster(t, 1)
	m := mountAt(t, cl.Addrs(), func(c *Config) { c.Debug = os.Getenv("FUSE_DEBUG") != "" })
	c := newClient(t, cl.Addrs())
	ctx := ctxT(t, 30*time.Second)
	d := m.Dir()

	sh(t, d, "echo hello > a")
	if data, _, err := c.Get(ctx, "/a", nil); err != nil || string(data) != "hello\n" {
		t.Fatalf("after echo >: %q %v", data, err)
	}
	sh(t, d, "echo world >> a")
	if got := sh(t, d, "cat a"); got != "hello\nworld\n" {
		t.Fatalf("cat after >>: %q", got)
	}
	sh(t, d, "echo bye > a")
	if got := sh(t, d, "cat a"); got != "bye\n" {
		t.Fatalf("cat after overwrite: %q", got)
	}
	// mkdir -p, nested files, a directory's own data via .data.
	sh(t, d, "mkdir -p x/y/z && echo deep > x/y/z/f && echo dirdata > x/.data && cp a x/y/copy")
	if st, err := c.Exists(ctx, "/x/y/z", nil); err != nil || st == nil || !st.Directory {
		t.Fatalf("mkdir -p: %+v %v", st, err)
	}
	if data, _, _ := c.Get(ctx, "/x", nil); string(data) != "dirdata\n" {
		t.Fatalf(".data write: %q", data)
	}
	if got := sh(t, d, "cat x/y/copy"); got != "bye\n" {
		t.Fatalf("cp: %q", got)
	}
	if got := sh(t, d, "ls x"); strings.Join(lines(got), " ") != "y" {
		t.Fatalf("ls x: %q", got)
	}
	if got := sh(t, d, "ls -a x"); !strings.Contains(got, ".data") {
		t.Fatalf("ls -a x lacks .data: %q", got)
	}
	if got := sh(t, d, "find . | sort"); strings.Join(lines(got), " ") != ". ./a ./x ./x/.data ./x/y ./x/y/copy ./x/y/z ./x/y/z/f" {
		t.Fatalf("find: %q", got)
	}
	if got := sh(t, d, "grep -r deep . "); strings.TrimSpace(got) != "./x/y/z/f:deep" {
		t.Fatalf("grep -r: %q", got)
	}
	// stat: type, size, mode, links, mtime near now.
	if got := sh(t, d, "stat -c '%F %s %a %h' a x"); got != "regular file 4 644 1\ndirectory 8 755 2\n" {
		t.Fatalf("stat: %q", got)
	}
	fi, err := os.Stat(join(d, "a"))
	if err != nil || time.Since(fi.ModTime()) > time.Minute || fi.ModTime().After(time.Now().Add(time.Minute)) {
		t.Fatalf("mtime %v: %v", fi.ModTime(), err)
	}
	// ls -l shows sizes; touch makes an empty file and keeps existing ones.
	sh(t, d, "touch new a")
	if data, st, err := c.Get(ctx, "/new", nil); err != nil || len(data) != 0 || st.Version != 0 {
		t.Fatalf("touch new: %q %+v %v", data, st, err)
	}
	if got := sh(t, d, "cat a"); got != "bye\n" {
		t.Fatalf("touch changed a: %q", got)
	}
	// Errors a shell user understands.
	if out, err := shErr(d, "cat nosuch"); err == nil || !strings.Contains(out, "No such file") {
		t.Fatalf("cat nosuch: %v %q", err, out)
	}
	if out, err := shErr(d, "mkdir x"); err == nil || !strings.Contains(out, "File exists") {
		t.Fatalf("mkdir existing: %v %q", err, out)
	}
	if out, err := shErr(d, "rmdir x"); err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("rmdir non-empty: %v %q", err, out)
	}
	// rename of a leaf is atomic; of a directory, mv copies (EXDEV).
	sh(t, d, "mv new renamed && mv x/y/z/f x/f2")
	if st, _ := c.Exists(ctx, "/new", nil); st != nil {
		t.Fatal("mv left the source")
	}
	if got := sh(t, d, "cat x/f2"); got != "deep\n" {
		t.Fatalf("mv leaf: %q", got)
	}
	if err := syscall.Rename(join(d, "x", "y"), join(d, "moved")); err != syscall.EXDEV {
		t.Fatalf("rename dir: %v, want EXDEV", err)
	}
	// rm, rm -r (clears .data first), rmdir.
	sh(t, d, "rm renamed && rm -r x && mkdir e && rmdir e")
	for _, p := range []string{"/renamed", "/x", "/e"} {
		if st, err := c.Exists(ctx, p, nil); err != nil || st != nil {
			t.Fatalf("%s still there: %+v %v", p, st, err)
		}
	}
	if got := sh(t, d, "ls"); strings.Join(lines(got), " ") != "a" {
		t.Fatalf("ls at end: %q", got)
	}
}

// TestShell_XattrsAndVersions: stat details as extended attributes.
func TestShell_Xattrs(t *testing.T) {
	cl := newCluster(t, 1)
	m := mountAt(t, cl.Addrs(), nil)
	c := newClient(t, cl.Addrs())
	ctx := ctxT(t, 30*time.Second)
	sh(t, m.Dir(), "echo 1 > v && echo 2 > v")
	_, st, err := c.Get(ctx, "/v", nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) string {
		buf := make([]byte, 256)
		n, err := syscall.Getxattr(join(m.Dir(), "v"), "user.coord."+name, buf)
		if err != nil {
			t.Fatalf("getxattr %s: %v", name, err)
		}
		return string(buf[:n])
	}
	if get("version") != "2" || get("mode") != "persistent" || get("ephemeral_owner") != "0x0" {
		t.Fatalf("xattrs: version %s mode %s owner %s", get("version"), get("mode"), get("ephemeral_owner"))
	}
	if get("czxid") != itoa(st.Czxid) || get("mzxid") != itoa(st.Mzxid) || get("data") != "2\n" {
		t.Fatalf("zxids: %s %s, want %d %d", get("czxid"), get("mzxid"), st.Czxid, st.Mzxid)
	}
	buf := make([]byte, 1024)
	n, err := syscall.Listxattr(join(m.Dir(), "v"), buf)
	if err != nil || !strings.Contains(string(buf[:n]), "user.coord.pzxid") {
		t.Fatalf("listxattr: %q %v", buf[:n], err)
	}
	if _, err := syscall.Getxattr(join(m.Dir(), "v"), "user.coord.lock_token", buf); err != syscall.ENODATA {
		t.Fatalf("lock_token unlocked: %v, want ENODATA", err)
	}
}
