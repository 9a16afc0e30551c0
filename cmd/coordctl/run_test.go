package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"coord/coord/coordtest"
)

// ctl runs one coordctl invocation in-process.
func ctl(stdin string, args ...string) (stdout, stderr string, code int) {
	var out, errb strings.Builder
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Usage errors exit 2 with one stderr line, before any server is asked.
func TestRun_UsageErrors(t *testing.T) {
	dead := deadAddr(t)
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string // stderr, exactly
	}{
		{[]string{"get"}, "", "coordctl: get: accepts 1 arg(s), received 0 (usage: coordctl get PATH [flags])"},
		{[]string{"frob"}, "", `coordctl: unknown command "frob" for "coordctl"`},
		{[]string{"get", "-o", "yaml", "/a"}, "", `coordctl: -o "yaml": want text or json`},
		{[]string{"set", "--version", "x", "/a", "b"}, "", `coordctl: set: invalid argument "x" for "--version" flag: strconv.ParseInt: parsing "x": invalid syntax`},
		{[]string{"create", "--hold", "/a"}, "", "coordctl: create: --hold needs -e"},
		{[]string{"create", "/a", "b", "c"}, "", "coordctl: create: accepts between 1 and 2 arg(s), received 3 (usage: coordctl create [-e] [-s] [--container] [--ttl D] [--hold] PATH [DATA] [flags])"},
		{[]string{"txn"}, "", "coordctl: txn: no ops on stdin"},
		{[]string{"txn"}, "create /a\nset /a\n", "coordctl: txn: line 2: usage: set [--version N] PATH DATA"},
		{[]string{"--endpoints", " , ", "get", "/a"}, "", "coordctl: --endpoints: no address given"},
		{[]string{"--endpoints", "nohost", "get", "/a"}, "", `coordctl: --endpoints: endpoint "nohost": want host:port`},
		{[]string{"--timeout", "0s", "get", "/a"}, "", "coordctl: --timeout 0s: want a positive duration"},
		{[]string{"delete", "-x", "/a"}, "", "coordctl: delete: unknown shorthand flag: 'x' in -x"},
		{[]string{"members", "add", "n4"}, "", "coordctl: members add: accepts 2 arg(s), received 1 (usage: coordctl members add [--non-voter] NAME ADDR [flags])"},
	} {
		out, errs, code := ctl(tc.stdin, append([]string{"--endpoints", dead}, tc.args...)...)
		if code != 2 || errs != tc.want+"\n" || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2, stderr %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// A server that cannot be reached is a one-line error naming it, exit 1;
// COORD_ENDPOINTS sets the default endpoints.
func TestRun_ServerDownIsOneLineError(t *testing.T) {
	dead := deadAddr(t)
	t.Setenv("COORD_ENDPOINTS", dead)
	_, errs, code := ctl("", "--timeout", "300ms", "get", "/a")
	if code != 1 || !strings.HasPrefix(errs, "coordctl: get /a: no server reachable: ") || !strings.Contains(errs, dead) || strings.Count(errs, "\n") != 1 {
		t.Fatalf("exit %d stderr %q", code, errs)
	}
}

// Every command against a real in-process single-node server.
func TestRun_Commands(t *testing.T) {
	cl := coordtest.NewCluster(t, 1, coordtest.Options{})
	ep := cl.Addrs()[0]
	c := func(stdin string, args ...string) (string, string, int) {
		return ctl(stdin, append([]string{"--endpoints", deadAddr(t) + "," + ep}, args...)...)
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, errs, code := c(stdin, args...)
		if code != 0 {
			t.Fatalf("coordctl %v: exit %d: %s", args, code, errs)
		}
		return out
	}
	if out := must("", "create", "/app", "hello"); out != "/app\n" {
		t.Fatalf("create printed %q", out)
	}
	if out := must("", "get", "/app"); out != "hello" {
		t.Fatalf("get = %q (no newline added)", out)
	}
	must("raw\nbytes", "create", "/app/b", "-")
	if out := must("", "get", "/app/b"); out != "raw\nbytes" {
		t.Fatalf("data from stdin = %q", out)
	}
	must("", "create", "/app/a")
	must("", "create", "/app/a/x", "1")
	if out := must("", "create", "-s", "/app/job-"); out != "/app/job-0000000000\n" {
		t.Fatalf("sequential create printed %q", out)
	}
	if out := must("", "ls", "/app"); out != "a\nb\njob-0000000000\n" {
		t.Fatalf("ls = %q", out)
	}
	if out := must("", "ls", "-R", "/app"); out != "/app/a\n/app/a/x\n/app/b\n/app/job-0000000000\n" {
		t.Fatalf("ls -R = %q", out)
	}
	var names []string
	if err := json.Unmarshal([]byte(must("", "ls", "-o", "json", "/app/a")), &names); err != nil || len(names) != 1 || names[0] != "x" {
		t.Fatalf("ls -o json = %v %v", names, err)
	}
	must("", "set", "--version", "0", "/app", "v2")
	_, errs, code := c("", "set", "--version", "0", "/app", "v3")
	if code != 1 || !strings.HasPrefix(errs, "coordctl: set /app: version mismatch") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("stale set: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := c("", "get", "/a/b"); code != 1 || errs != "coordctl: get /a/b: node does not exist\n" {
		t.Fatalf("get missing: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := c("", "stat", "/a/b"); code != 1 || errs != "coordctl: stat /a/b: node does not exist\n" {
		t.Fatalf("stat missing: exit %d, stderr %q", code, errs)
	}
	if out := must("", "stat", "/app"); !strings.Contains(out, "dataVersion = 1\n") || !strings.Contains(out, "numChildren = 3\n") {
		t.Fatalf("stat = %q", out)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(must("", "stat", "-o", "json", "/app")), &st); err != nil || st["version"] != 1.0 {
		t.Fatalf("stat -o json = %v %v", st, err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(must("", "get", "-o", "json", "/app")), &got); err != nil || got["data"] != "v2" {
		t.Fatalf("get -o json = %v %v", got, err)
	}
	must("", "sync", "/app")

	// txn: all or nothing, one line per op, the failed op named.
	_, errs, code = c("create /t1 x\nset --version 7 /app y\n", "txn")
	if code != 1 || !strings.HasPrefix(errs, "coordctl: txn: ") || !strings.Contains(errs, "op 1") || !strings.Contains(errs, "line 2") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("failing txn: exit %d, stderr %q", code, errs)
	}
	if _, _, code := c("", "get", "/t1"); code != 1 {
		t.Fatal("failed txn left /t1 behind")
	}
	out := must("# two creates, a set, a check, a delete\ncreate /t1 'a b'\ncreate -s /t2-\nset --version 1 /app v3\ncheck /app 2\ndelete /app/b\n", "txn")
	if out != "created /t1\ncreated /t2-0000000000\nset /app version=2\nchecked /app version=2\ndeleted /app/b\n" {
		t.Fatalf("txn output = %q", out)
	}

	// Ephemeral: gone when the command's session closes.
	must("", "create", "-e", "/eph", "x")
	if _, _, code := c("", "get", "/eph"); code != 1 {
		t.Fatal("ephemeral outlived its command")
	}

	if _, errs, code := c("", "delete", "/app"); code != 1 || !strings.Contains(errs, "coordctl: delete /app: ") {
		t.Fatalf("delete non-empty: exit %d, stderr %q", code, errs)
	}
	must("", "delete", "-r", "/app")
	if _, _, code := c("", "get", "/app/a/x"); code != 1 {
		t.Fatal("recursive delete left /app/a/x")
	}

	if out := must("", "members"); !strings.Contains(out, ep) || !strings.Contains(out, "leader") {
		t.Fatalf("members = %q", out)
	}
	if out := must("", "status"); !strings.Contains(out, "state: Leader") || !strings.Contains(out, "applied index: ") {
		t.Fatalf("status = %q", out)
	}
	var status map[string]any
	if err := json.Unmarshal([]byte(must("", "status", "-o", "json")), &status); err != nil || status["state"] != "Leader" {
		t.Fatalf("status -o json = %v %v", status, err)
	}

	snap := filepath.Join(t.TempDir(), "snap.bin")
	if out := must("", "snapshot", "save", snap); !strings.HasPrefix(out, "saved ") {
		t.Fatalf("snapshot save printed %q", out)
	}
	if fi, err := os.Stat(snap); err != nil || fi.Size() < 16 {
		t.Fatalf("snapshot file: %v", err)
	}
	if _, err := os.Stat(snap + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("snapshot left %s.tmp behind: %v", snap, err)
	}
}
