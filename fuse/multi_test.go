package fuse

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestTwoMounts_WritesAndFlock: two mounts of one cluster see each
// other's writes at once (watch events invalidate the kernel cache, so
// this holds with an hour-long cache timeout), and flock excludes across
// them, with fencing tokens that increase.
func TestTwoMounts_WritesAndFlock(t *testing.T) {
	cl := newCluster(t, 3)
	hour := func(c *Config) { c.CacheTimeout = time.Hour }
	fol := cl.Follower()
	a := mountAt(t, cl.Addrs(), hour)
	b := mountAt(t, []string{cl.Addrs()[fol]}, hour) // served by a follower

	sh(t, a.Dir(), "mkdir -p conf && echo v1 > conf/db")
	if got := sh(t, b.Dir(), "cat conf/db && ls conf"); got != "v1\ndb\n" {
		t.Fatalf("b sees %q", got)
	}
	// b has conf/db cached now (entry, attributes, pages, for an hour).
	sh(t, a.Dir(), "echo version-two > conf/db && echo n > conf/new")
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, _ := shErr(b.Dir(), "cat conf/db; ls conf")
		if got == "version-two\ndb\nnew\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b still sees %q after a's write: cache not invalidated", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sh(t, a.Dir(), "rm conf/new")
	if out, err := shErr(b.Dir(), "sleep 0.3; cat conf/new"); err == nil {
		t.Fatalf("b still reads a deleted file: %q", out)
	}

	// flock: mutual exclusion across mounts.
	sh(t, a.Dir(), "mkdir locks && touch locks/job")
	var mu sync.Mutex
	inside, overlaps := 0, 0
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		dir := a.Dir()
		if i%2 == 1 {
			dir = b.Dir()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("flock", dir+"/locks/job", "-c", "echo in; sleep 0.15; echo out")
			pr, _ := cmd.StdoutPipe()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, 3)
			if _, err := pr.Read(buf); err != nil {
				errs <- fmt.Errorf("flock: %v (%v) %s", err, cmd.Wait(), stderr.String())
				return
			}
			mu.Lock()
			inside++
			if inside > 1 {
				overlaps++
			}
			mu.Unlock()
			rest := make([]byte, 16)
			pr.Read(rest) // "out": the holder is about to leave
			mu.Lock()
			inside--
			mu.Unlock()
			errs <- cmd.Wait()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if overlaps != 0 {
		t.Fatalf("%d overlapping critical sections across two mounts", overlaps)
	}
	// flock -n fails while the other mount holds the lock; the holder
	// sees its fencing token; a later holder gets a larger one.
	hold := exec.Command("flock", a.Dir()+"/locks/job", "-c", "sleep 1.5")
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	var tok1 uint64
	for deadline := time.Now().Add(5 * time.Second); tok1 == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		tok1 = token(a.Dir() + "/locks/job")
	}
	if tok1 == 0 {
		t.Fatal("holder's mount shows no lock_token")
	}
	if out, err := shErr(b.Dir(), "flock -n locks/job -c true"); err == nil {
		t.Fatalf("flock -n succeeded while the other mount holds the lock: %q", out)
	}
	if err := hold.Wait(); err != nil {
		t.Fatal(err)
	}
	var tok2 uint64
	f, err := os.Open(b.Dir() + "/locks/job")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("flock after release: %v", err)
	}
	tok2 = token(b.Dir() + "/locks/job")
	f.Close()
	if tok2 <= tok1 {
		t.Fatalf("fencing token did not increase: %d then %d", tok1, tok2)
	}
}

func token(p string) uint64 {
	buf := make([]byte, 32)
	n, err := syscall.Getxattr(p, "user.coord.lock_token", buf)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(string(buf[:n]), 10, 64)
	return v
}

// TestWatchFile: a read of .coord/watch/P blocks until P changes; a
// directory's view wakes on a new child; O_NONBLOCK gives EAGAIN;
// timeout interrupts; unmount releases a blocked reader.
func TestWatchFile(t *testing.T) {
	cl := newCluster(t, 1)
	m := mountAt(t, cl.Addrs(), nil)
	d := m.Dir()
	sh(t, d, "echo 1 > w && mkdir dir")

	type res struct {
		out string
		err error
	}
	start := func(script string) chan res {
		ch := make(chan res, 1)
		go func() { o, err := shErr(d, script); ch <- res{o, err} }()
		return ch
	}
	wait := start("cat .coord/watch/w")
	dirWait := start("cat .coord/watch/dir/.watch")
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-wait:
		t.Fatalf("watch read returned before any change: %+v", r)
	default:
	}
	sh(t, d, "echo 2 > w && touch dir/kid")
	for _, ch := range []chan res{wait, dirWait} {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("watch read: %v %q", r.err, r.out)
			}
			f := strings.Fields(r.out)
			if len(f) != 3 {
				t.Fatalf("event line %q", r.out)
			}
			if r.out != fmt.Sprintf("changed /w %s\n", f[2]) && r.out != fmt.Sprintf("children /dir %s\n", f[2]) {
				t.Fatalf("event line %q", r.out)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("watch read did not wake on a change")
		}
	}
	// O_NONBLOCK: EAGAIN, not a hang.
	f, err := os.OpenFile(d+"/.coord/watch/w", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := syscall.Read(int(f.Fd()), make([]byte, 64)); err != syscall.EAGAIN {
		t.Fatalf("nonblocking read: %v, want EAGAIN", err)
	}
	f.Close()
	// timeout interrupts the read (EINTR inside, exit 124 outside).
	if _, err := shErr(d, "timeout 0.3 cat .coord/watch/w"); err == nil {
		t.Fatal("timeout cat returned 0")
	}
	// A reader still blocked at unmount is released (no EBUSY).
	blocked := start("cat .coord/watch/w")
	time.Sleep(200 * time.Millisecond)
	if err := m.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("unmount with a blocked watch reader: %v", err)
	}
	select {
	case <-blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("blocked reader not released by unmount")
	}
}
