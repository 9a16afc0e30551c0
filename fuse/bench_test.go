package fuse

import (
	"context"
	"os"
	"os/exec"
	"testing"
)

// Latency of a read (cat) and an overwrite (echo >) of a small znode on a
// 1-node in-process cluster: through the mount with syscalls
// (os.ReadFile, os.WriteFile: open+read/write+close, as cat and echo do),
// through the mount with the real commands (fork+exec included), and with
// the gRPC client directly. Run:
//
//	go test -run '^$' -bench . -benchtime 200x ./fuse
func BenchmarkCat(b *testing.B) {
	cl := newCluster(b, 1)
	m := mountAt(b, cl.Addrs(), nil)
	c := newClient(b, cl.Addrs())
	ctx := context.Background()
	if _, _, err := c.Create(ctx, "/bench", []byte("hello world\n"), nil); err != nil {
		b.Fatal(err)
	}
	f := m.Dir() + "/bench"
	b.Run("mount-syscalls", func(b *testing.B) {
		for b.Loop() {
			if data, err := os.ReadFile(f); err != nil || len(data) != 12 {
				b.Fatalf("%q %v", data, err)
			}
		}
	})
	b.Run("mount-cat-process", func(b *testing.B) {
		for b.Loop() {
			if out, err := exec.Command("cat", f).Output(); err != nil || len(out) != 12 {
				b.Fatalf("%q %v", out, err)
			}
		}
	})
	b.Run("grpc-client-get", func(b *testing.B) {
		for b.Loop() {
			if data, _, err := c.Get(ctx, "/bench", nil); err != nil || len(data) != 12 {
				b.Fatalf("%q %v", data, err)
			}
		}
	})
}

func BenchmarkEcho(b *testing.B) {
	cl := newCluster(b, 1)
	m := mountAt(b, cl.Addrs(), nil)
	c := newClient(b, cl.Addrs())
	ctx := context.Background()
	if _, _, err := c.Create(ctx, "/bench", nil, nil); err != nil {
		b.Fatal(err)
	}
	f := m.Dir() + "/bench"
	data := []byte("hello world\n")
	b.Run("mount-syscalls", func(b *testing.B) {
		for b.Loop() {
			if err := os.WriteFile(f, data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mount-sh-echo-process", func(b *testing.B) {
		for b.Loop() {
			if out, err := exec.Command("sh", "-c", "echo hello world > "+f).CombinedOutput(); err != nil {
				b.Fatalf("%q %v", out, err)
			}
		}
	})
	b.Run("grpc-client-set", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Set(ctx, "/bench", data, -1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
