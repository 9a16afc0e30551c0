package fuse

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKill9_FreesEphemeralsAndLocks runs `coordctl mount` as a separate
// process, makes an ephemeral and takes a flock through it, kills it with
// SIGKILL, and checks that both go after the session timeout (2 s) and
// that fusermount3 -u cleans up the dead mountpoint.
func TestKill9_FreesEphemeralsAndLocks(t *testing.T) {
	requireFUSE(t)
	cl := newCluster(t, 1)
	c := newClient(t, cl.Addrs())
	ctx := ctxT(t, 60*time.Second)

	bin := filepath.Join(t.TempDir(), "coordctl")
	build := exec.Command("go", "build", "-o", bin, "coord/cmd/coordctl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build coordctl: %v\n%s", err, out)
	}
	dir := t.TempDir()
	mnt := exec.Command(bin, "--endpoints", strings.Join(cl.Addrs(), ","), "--session-timeout", "2s", "mount", dir)
	stdout, _ := mnt.StdoutPipe()
	mnt.Stderr = os.Stderr
	if err := mnt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mnt.Process.Kill()
		mnt.Wait()
		_ = exec.Command("fusermount3", "-u", "-z", dir).Run()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "mounted ") {
		t.Fatalf("coordctl mount said %q: %v", line, err)
	}
	p := strings.TrimSpace(sh(t, dir, `mkdir locks && touch locks/job && exec 3<>.coord/ctl; echo 'create -e /eph here' >&3; read -r p <&3; echo $p`))
	if p != "/eph" {
		t.Fatalf("ctl create: %q", p)
	}
	// A flock held by a process on the doomed mount.
	holder := exec.Command("flock", dir+"/locks/job", "-c", "sleep 60")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill flock and its sleep together
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	killHolder := func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() }
	t.Cleanup(killHolder)
	lockDirPath := lockDir("/locks/job")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		kids, _, _ := c.Children(ctx, lockDirPath, nil)
		if len(kids) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder's lock node never appeared")
		}
	}
	if st, err := c.Exists(ctx, "/eph", nil); err != nil || st == nil {
		t.Fatalf("ephemeral missing before the kill: %v", err)
	}

	if err := mnt.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	mnt.Wait()
	for {
		st, err := c.Exists(ctx, "/eph", nil)
		kids, _, _ := c.Children(ctx, lockDirPath, nil)
		if err == nil && st == nil && len(kids) == 0 {
			break
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("after kill -9: ephemeral %v, lock queue %v still there", st != nil, kids)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if gone := time.Since(killed); gone < time.Second {
		t.Fatalf("ephemeral went after %v: before the 2 s session timeout?", gone)
	}
	// The dead mountpoint: the kernel reports it, fusermount3 -u cleans it
	// once the processes with files open on it are gone.
	killHolder()
	if _, err := os.Stat(filepath.Join(dir, "eph")); err == nil {
		t.Fatal("stat on a dead mount succeeded")
	}
	if out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u on the dead mount: %v %s", err, out)
	}
}
