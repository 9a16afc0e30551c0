// Package e2e drives the built binaries as a user would: three coordd
// processes on loopback and coordctl against them.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coord-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := exec.Command("go", "build", "-o", dir+"/", "coord/cmd/coordd", "coord/cmd/coordctl")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type node struct {
	name, addr, http, dir string
	cmd                   *exec.Cmd
	log                   *bytes.Buffer
}

type cluster struct {
	t       *testing.T
	nodes   []*node
	initial string
}

func startCluster(t *testing.T, n int) *cluster {
	c := &cluster{t: t}
	base := t.TempDir()
	var parts []string
	for i := 0; i < n; i++ {
		nd := &node{name: fmt.Sprintf("n%d", i+1), addr: freePort(t), http: freePort(t), dir: filepath.Join(base, fmt.Sprintf("n%d", i+1))}
		c.nodes = append(c.nodes, nd)
		parts = append(parts, nd.name+"="+nd.addr)
	}
	c.initial = strings.Join(parts, ",")
	for i := range c.nodes {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.kill(i)
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				t.Logf("--- %s log ---\n%s", nd.name, nd.log)
			}
		}
	})
	c.waitReady()
	return c
}

func (c *cluster) start(i int) {
	nd := c.nodes[i]
	nd.log = new(bytes.Buffer)
	nd.cmd = exec.Command(filepath.Join(binDir, "coordd"), "--name", nd.name, "--data-dir", nd.dir,
		"--listen", nd.addr, "--http", nd.http, "--initial-cluster", c.initial,
		"--heartbeat-timeout", "500ms", "--election-timeout", "500ms", "--leader-lease", "250ms")
	nd.cmd.Stdout, nd.cmd.Stderr = nd.log, nd.log
	if err := nd.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
}

// kill sends SIGKILL: no clean shutdown.
func (c *cluster) kill(i int) {
	nd := c.nodes[i]
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	nd.cmd.Process.Signal(syscall.SIGKILL)
	nd.cmd.Wait()
	nd.cmd = nil
}

func (c *cluster) endpoints() string {
	var a []string
	for _, nd := range c.nodes {
		a = append(a, nd.addr)
	}
	return strings.Join(a, ",")
}

func (c *cluster) waitReady() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, nd := range c.nodes {
		if nd.cmd == nil {
			continue
		}
		for {
			resp, err := http.Get("http://" + nd.http + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("%s not ready: %v\n%s", nd.name, err, nd.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// ctl runs coordctl; it returns stdout, stderr and the exit code.
func (c *cluster) ctl(stdin string, args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "coordctl"), args...)
	cmd.Env = append(os.Environ(), "COORD_ENDPOINTS="+c.endpoints())
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// must runs coordctl and fails the test unless it exits 0.
func (c *cluster) must(args ...string) string {
	c.t.Helper()
	out, errs, code := c.ctl("", args...)
	if code != 0 {
		c.t.Fatalf("coordctl %v: exit %d: %s", args, code, errs)
	}
	return out
}

func TestE2E_UserSession(t *testing.T) {
	c := startCluster(t, 3)

	if out := c.must("create", "/app", "hello"); strings.TrimSpace(out) != "/app" {
		t.Fatalf("create printed %q", out)
	}
	if out := c.must("get", "/app"); out != "hello" {
		t.Fatalf("get = %q", out)
	}
	c.must("create", "/app/b", "2")
	c.must("create", "/app/a", "1")
	if out := c.must("ls", "/app"); out != "a\nb\n" {
		t.Fatalf("ls = %q", out)
	}
	seq := strings.TrimSpace(c.must("create", "-s", "/app/job-", ""))
	if seq != "/app/job-0000000000" {
		t.Fatalf("sequential create printed %q", seq)
	}
	c.must("set", "--version", "0", "/app", "v2")
	_, errs, code := c.ctl("", "set", "--version", "0", "/app", "v3")
	if code == 0 || !strings.Contains(errs, "coordctl: set /app:") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("stale set: exit %d, stderr %q", code, errs)
	}
	_, errs, code = c.ctl("", "get", "/nope/x")
	if code == 0 || strings.TrimSpace(errs) != "coordctl: get /nope/x: node does not exist" {
		t.Fatalf("get missing: exit %d, stderr %q", code, errs)
	}
	_, errs, code = c.ctl("", "create", "/bad//path")
	if code == 0 || !strings.Contains(errs, "coordctl: create /bad//path:") {
		t.Fatalf("bad path: exit %d, stderr %q", code, errs)
	}

	var st map[string]any
	if err := json.Unmarshal([]byte(c.must("stat", "-o", "json", "/app")), &st); err != nil {
		t.Fatalf("stat -o json: %v", err)
	}
	if fmt.Sprint(st["version"]) != "1" {
		t.Fatalf("stat version = %v (%v)", st["version"], st)
	}

	// DATA "-" reads stdin.
	out, errs, code := c.ctl("from stdin", "create", "/stdin", "-")
	if code != 0 {
		t.Fatalf("create from stdin: %s", errs)
	}
	_ = out
	if got := c.must("get", "/stdin"); got != "from stdin" {
		t.Fatalf("stdin data = %q", got)
	}

	// A txn that fails changes nothing and says which op failed.
	_, errs, code = c.ctl("create /t1 x\nset --version 7 /app y\n", "txn")
	if code == 0 || !strings.Contains(errs, "op 1") {
		t.Fatalf("failing txn: exit %d, stderr %q", code, errs)
	}
	if _, _, code := c.ctl("", "get", "/t1"); code == 0 {
		t.Fatal("failed txn left /t1 behind")
	}
	if _, errs, code = c.ctl("create /t1 x\ncreate /t2 y\n", "txn"); code != 0 {
		t.Fatalf("txn: %s", errs)
	}

	c.must("delete", "-r", "/app")
	if _, _, code := c.ctl("", "get", "/app/a"); code == 0 {
		t.Fatal("recursive delete left /app/a")
	}

	if out := c.must("members"); strings.Count(out, "n") < 3 {
		t.Fatalf("members = %q", out)
	}
	if out := c.must("status"); !strings.Contains(out, "leader") {
		t.Fatalf("status = %q", out)
	}
	snap := filepath.Join(t.TempDir(), "snap.bin")
	c.must("snapshot", "save", snap)
	if fi, err := os.Stat(snap); err != nil || fi.Size() < 16 {
		t.Fatalf("snapshot file: %v", err)
	}
}

func TestE2E_KillLeaderNothingLost(t *testing.T) {
	c := startCluster(t, 3)
	for i := 0; i < 20; i++ {
		c.must("create", fmt.Sprintf("/k%02d", i), fmt.Sprint(i))
	}
	// Find and kill -9 the leader.
	leader := -1
	for i, nd := range c.nodes {
		resp, err := http.Get("http://" + nd.http + "/metrics")
		if err != nil {
			continue
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if strings.Contains(buf.String(), "\ncoord_raft_is_leader 1\n") {
			leader = i
			// raft's own timings reach /metrics (coordd --raft-metrics, on
			// by default): the leader committed the 20 creates.
			for _, name := range []string{"raft_commitTime_count", "raft_leader_dispatchLog_count"} {
				if !strings.Contains(buf.String(), "\n"+name+" ") {
					t.Errorf("leader /metrics lacks %s", name)
				}
			}
		}
	}
	if leader < 0 {
		t.Fatal("no leader in metrics")
	}
	c.kill(leader)
	// Writes continue through the survivors (the client fails over).
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errs, code := c.ctl("", "create", "/after", "x")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted after killing the leader: %s", errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		if got := c.must("get", fmt.Sprintf("/k%02d", i)); got != fmt.Sprint(i) {
			t.Fatalf("/k%02d = %q after leader kill", i, got)
		}
	}
	// Restart the whole cluster: all data is still there.
	for i := range c.nodes {
		c.kill(i)
	}
	for i := range c.nodes {
		c.start(i)
	}
	c.waitReady()
	if got := c.must("ls", "/"); strings.Count(got, "\n") != 21 {
		t.Fatalf("after full restart ls / = %q", got)
	}
}
