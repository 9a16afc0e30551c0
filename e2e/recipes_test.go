package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// spawn runs coordctl in the background with stdout piped.
func (c *cluster) spawn(args ...string) (*exec.Cmd, *bufio.Scanner) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "coordctl"), args...)
	cmd.Env = append(os.Environ(), "COORD_ENDPOINTS="+c.endpoints())
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

// TestE2E_LockProcessesAcrossLeaderKill: 8 coordctl processes at a time
// run a critical section under `coordctl lock`, while the leader coordd is
// killed -9. The log the sections write shows no overlap and strictly
// increasing fencing tokens.
func TestE2E_LockProcessesAcrossLeaderKill(t *testing.T) {
	c := startCluster(t, 3)
	logf := filepath.Join(t.TempDir(), "sections.log")
	script := `echo "start $COORD_FENCING_TOKEN" >> ` + logf + `; sleep 0.02; echo "end $COORD_FENCING_TOKEN" >> ` + logf
	const procs, rounds = 8, 3
	var wg sync.WaitGroup
	errs := make(chan string, procs*rounds)
	for p := 0; p < procs; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				_, stderr, code := c.ctl("", "--session-timeout", "2s", "--timeout", "30s", "lock", "/locks/e2e", "--", "sh", "-c", script)
				if code != 0 {
					errs <- fmt.Sprintf("lock process: exit %d: %s", code, stderr)
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	c.kill(c.leaderIndex())
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	b, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2*procs*rounds {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), 2*procs*rounds, b)
	}
	var last uint64
	for i := 0; i < len(lines); i += 2 {
		var s, e uint64
		if _, err := fmt.Sscanf(lines[i], "start %d", &s); err != nil {
			t.Fatalf("line %d %q: sections overlap", i, lines[i])
		}
		if _, err := fmt.Sscanf(lines[i+1], "end %d", &e); err != nil || e != s {
			t.Fatalf("lines %d-%d %q %q: sections overlap", i, i+1, lines[i], lines[i+1])
		}
		if s <= last {
			t.Fatalf("fencing token %d after %d", s, last)
		}
		last = s
	}
}

// leaderIndex finds the leader from /metrics.
func (c *cluster) leaderIndex() int {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, nd := range c.nodes {
			if nd.cmd == nil {
				continue
			}
			if m := c.metrics(i); strings.Contains(m, "\ncoord_raft_is_leader 1\n") {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatal("no leader")
	return -1
}

// TestE2E_KilledClientsEphemeralExpires: kill -9 a coordctl holding an
// ephemeral; the node goes after the session timeout, not before.
func TestE2E_KilledClientsEphemeralExpires(t *testing.T) {
	c := startCluster(t, 3)
	cmd, out := c.spawn("--session-timeout", "2s", "create", "-e", "--hold", "/held", "x")
	if !out.Scan() || out.Text() != "/held" {
		t.Fatalf("create --hold printed %q", out.Text())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	for {
		_, _, code := c.ctl("", "stat", "/held")
		if code != 0 {
			break
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatal("ephemeral of a killed client still there after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	gone := time.Since(killed)
	// The last keepalive went out at most timeout/3 before the kill.
	if gone < 2*time.Second*2/3-100*time.Millisecond {
		t.Fatalf("ephemeral gone %v after the kill: before the 2s session timeout", gone)
	}
	t.Logf("ephemeral of the killed client removed %v after kill -9 (timeout 2s)", gone)
}

// TestE2E_ElectionHandsOverWhenLeaderKilled: two coordctl elect
// processes; killing the elected one hands over within the session
// timeout plus slack, with a higher term token.
func TestE2E_ElectionHandsOverWhenLeaderKilled(t *testing.T) {
	c := startCluster(t, 3)
	a, aout := c.spawn("--session-timeout", "2s", "elect", "/el", "alpha")
	if !aout.Scan() {
		t.Fatal("alpha printed nothing")
	}
	re := regexp.MustCompile(`^elected (\w+) token=(\d+)$`)
	m := re.FindStringSubmatch(aout.Text())
	if m == nil || m[1] != "alpha" {
		t.Fatalf("alpha: %q", aout.Text())
	}
	tokA, _ := strconv.ParseUint(m[2], 10, 64)
	_, bout := c.spawn("--session-timeout", "2s", "elect", "/el", "beta")
	lines := make(chan string, 1)
	go func() {
		if bout.Scan() {
			lines <- bout.Text()
		}

	}()
	select {
	case l := <-lines:
		t.Fatalf("beta elected while alpha leads: %q", l)
	case <-time.After(500 * time.Millisecond):
	}
	a.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	select {
	case l := <-lines:
		m := re.FindStringSubmatch(l)
		if m == nil || m[1] != "beta" {
			t.Fatalf("beta: %q", l)
		}
		tokB, _ := strconv.ParseUint(m[2], 10, 64)
		if tokB <= tokA {
			t.Fatalf("term tokens %d then %d", tokA, tokB)
		}
		t.Logf("beta elected %v after alpha was killed", time.Since(killed))
	case <-time.After(10 * time.Second):
		t.Fatal("beta not elected within 10s of alpha's kill")
	}

}

func (c *cluster) metrics(i int) string {
	resp, err := http.Get("http://" + c.nodes[i].http + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
