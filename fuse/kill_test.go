package fuse

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

	dir, mnt := startCoordctlMount(t, cl.Addrs())
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
	// The holder's process group may still be exiting (Wait covers only
	// its leader): retry while the mount is busy.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput()
		if err == nil {
			break
		}
		if !strings.Contains(string(out), "busy") || time.Now().After(deadline) {
			t.Fatalf("fusermount3 -u on the dead mount: %v %s", err, out)
		}
	}
}

var coordctlBin struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// coordctl builds cmd/coordctl once per test binary run.
func coordctl(t *testing.T) string {
	t.Helper()
	b := &coordctlBin
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "coordctl")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "coordctl")
		b.out, b.err = exec.Command("go", "build", "-o", b.path, "coord/cmd/coordctl").CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build coordctl: %v\n%s", b.err, b.out)
	}
	return b.path
}

// startCoordctlMount runs `coordctl mount` as a child process and waits
// until it says it is mounted.
func startCoordctlMount(t *testing.T, addrs []string) (string, *exec.Cmd) {
	t.Helper()
	dir := t.TempDir()
	mnt := exec.Command(coordctl(t), "--endpoints", strings.Join(addrs, ","), "--session-timeout", "2s", "mount", dir)
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
	return dir, mnt
}

// TestCoordctlMount_Unmount: `coordctl mount` exits 0 and leaves no mount
// both when unmounted from outside (fusermount3 -u) and on SIGINT.
func TestCoordctlMount_Unmount(t *testing.T) {
	requireFUSE(t)
	cl := newCluster(t, 1)
	for _, how := range []string{"fusermount3", "sigint"} {
		dir, mnt := startCoordctlMount(t, cl.Addrs())
		sh(t, dir, "echo hi > f-"+how)
		if how == "fusermount3" {
			if out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput(); err != nil {
				t.Fatalf("fusermount3 -u: %v %s", err, out)
			}
		} else {
			mnt.Process.Signal(os.Interrupt)
		}
		done := make(chan error, 1)
		go func() { done <- mnt.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: coordctl mount exited with %v", how, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: coordctl mount did not exit", how)
		}
		mounts, _ := os.ReadFile("/proc/mounts")
		if strings.Contains(string(mounts), dir) {
			t.Fatalf("%s: %s still mounted", how, dir)
		}
	}
}
