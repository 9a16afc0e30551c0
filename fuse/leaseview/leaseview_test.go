package leaseview

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"coord/lease"
)

// group starts n in-process Flease members on 127.0.0.1 with short
// leases and returns them once their restart wait is over.
func group(t *testing.T, n int) []*lease.Node {
	t.Helper()
	var lns []net.Listener
	var members []lease.Member
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		members = append(members, lease.Member{ID: lease.NodeID(fmt.Sprint("m", i)), Addr: ln.Addr().String()})
	}
	var nodes []*lease.Node
	clock := lease.UncheckedClock(nil)
	for i := 0; i < n; i++ {
		cfg := lease.DefaultConfig()
		cfg.LeaseDuration, cfg.MaxClockError, cfg.RoundTimeout = 600*time.Millisecond, 10*time.Millisecond, 60*time.Millisecond
		cfg.ID, cfg.Group, cfg.Version, cfg.Members, cfg.Clock = members[i].ID, "g", 1, members, clock
		node, err := lease.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		node.Register(s)
		go s.Serve(lns[i])
		t.Cleanup(func() { s.Stop(); node.Close() })
		nodes = append(nodes, node)
	}
	for _, node := range nodes {
		time.Sleep(time.Until(node.RecoveringUntil()) + 5*time.Millisecond)
	}
	return nodes
}

func mount(t *testing.T, n Leases) string {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("skipping: no /dev/fuse (%v)", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skip("skipping: fusermount3 not found; apt-get install fuse3")
	}
	dir := t.TempDir()
	v, err := Mount(dir, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("unmount: %v", err)
			exec.Command("fusermount3", "-u", "-z", dir).Run()
		}
	})
	return dir
}

func run(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", script).CombinedOutput()
	return string(out), err
}

// TestLeaseView_FlockHoldsTheLease: flock on member 0's view holds the
// Flease lease while the command runs (member 1's view shows the holder
// and flock -n fails there); after it ends, member 1 can take it.
func TestLeaseView_FlockHoldsTheLease(t *testing.T) {
	nodes := group(t, 3)
	a, b := mount(t, nodes[0]), mount(t, nodes[1])
	if out, err := run("cat " + a + "/job"); err != nil || !strings.Contains(out, "state free") {
		t.Fatalf("free resource reads %q %v", out, err)
	}
	hold := exec.Command("flock", a+"/job", "-c", "cat "+a+"/job; sleep 1.5")
	var holdOut strings.Builder
	hold.Stdout = &holdOut
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	var seen string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if seen, _ = run("cat " + b + "/job"); strings.Contains(seen, "holder m0") && strings.Contains(seen, "state held") {
			break
		}
	}
	if !strings.Contains(seen, "holder m0") {
		t.Fatalf("member 1 never saw m0 hold the lease: %q", seen)
	}
	if out, err := run("flock -n " + b + "/job -c true"); err == nil {
		t.Fatalf("flock -n on member 1 succeeded while m0 holds: %q", out)
	}
	if err := hold.Wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(holdOut.String(), "holder m0") {
		t.Fatalf("holder's own read: %q", holdOut.String())
	}
	// Released at the end of the command: member 1 gets it (the release
	// is a Flease round of its own, so allow it a moment on a busy host).
	var out string
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err = run("flock -n " + b + "/job -c 'cat " + b + "/job'")
		if (err == nil && strings.Contains(out, "holder m1")) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !strings.Contains(out, "holder m1") {
		t.Fatalf("member 1 after release: %q %v", out, err)
	}
	if out, err := run("ls " + a); err != nil || !strings.Contains(out, "job") {
		t.Fatalf("ls view: %q %v", out, err)
	}
}
