package fuse

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"coord/client"
	"coord/coord"
	"coord/coord/coordtest"
	"coord/session"
)

// requireFUSE skips when this machine cannot mount (CI installs fuse3, so
// CI never skips).
func requireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("skipping: no /dev/fuse (%v); install fuse3 and run where /dev/fuse exists", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skip("skipping: fusermount3 not found; apt-get install fuse3")
	}
}

// newCluster starts n in-process nodes with short session timeouts.
func newCluster(t testing.TB, n int) *coordtest.Cluster {
	return coordtest.NewCluster(t, n, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.Sessions = session.Limits{Min: 500 * time.Millisecond, Max: 10 * time.Second, Default: 2 * time.Second}
	}})
}

// mountAt mounts the cluster at a fresh directory; unmounted by
// t.Cleanup, lazily with fusermount3 -u -z if a test left it busy.
func mountAt(t testing.TB, addrs []string, edit func(*Config)) *Mount {
	t.Helper()
	requireFUSE(t)
	dir := t.TempDir()
	cfg := Config{Client: client.Config{Endpoints: addrs, SessionTimeout: 2 * time.Second}, Debug: os.Getenv("FUSE_DEBUG") != ""}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := New(ctx, dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("close mount: %v", err)
			_ = exec.Command("fusermount3", "-u", "-z", dir).Run()
		}
	})
	return m
}

// newClient is a plain gRPC client of the cluster.
func newClient(t testing.TB, addrs []string) *client.Client {
	t.Helper()
	c, err := client.New(context.Background(), client.Config{Endpoints: addrs, SessionTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// sh runs script with sh -c in dir and returns its combined output,
// failing the test on a non-zero exit.
func sh(t testing.TB, dir, script string) string {
	t.Helper()
	out, err := shErr(dir, script)
	if err != nil {
		t.Fatalf("sh -c %q: %v\n%s", script, err, out)
	}
	return out
}

func shErr(dir, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// cd inside the shell, never cmd.Dir: Go starts children with vfork,
	// and a vfork child that blocks in this process's own mount (chdir)
	// holds a P in a raw syscall; two of them on GOMAXPROCS=2 leave no P
	// to serve the FUSE request: a deadlock of the test, not the mount.
	cmd := exec.CommandContext(ctx, "sh", "-c", "cd '"+dir+"' && "+script)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func ctxT(t testing.TB, d time.Duration) context.Context { return coordtest.Ctx(t, d) }

func join(parts ...string) string { return filepath.Join(parts...) }

func lines(s string) []string { return strings.Fields(s) }
