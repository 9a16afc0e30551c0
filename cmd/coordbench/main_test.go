package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestRun_SmallWorkloads runs every workload briefly on a 1-node cluster
// the tool starts itself, and checks the report.
func TestRun_SmallWorkloads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	var out, errb bytes.Buffer
	code := run([]string{"--start", "1", "--workload", "create,set,get,get-local,mixed,txn,lock,locks,session,watch,lease",
		"--clients", "2", "--ops", "20", "--warmup", "0s", "--keys", "10", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res []Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	if len(res) != 11 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		if r.Ops < 20 || r.Errors != 0 || r.OpsPerS <= 0 || r.P50ms <= 0 || r.P99ms < r.P50ms {
			t.Errorf("%s: %+v", r.Workload, r)
		}
		// Every workload writes something (setup or the op itself); an
		// append carries at least one entry.
		if r.EntriesPerAppend < 1 {
			t.Errorf("%s: entries per append %.2f", r.Workload, r.EntriesPerAppend)
		}
		if r.ClientCPUus <= 0 {
			t.Errorf("%s: this process's CPU per op %.1f us", r.Workload, r.ClientCPUus)
		}
	}
}

func TestRun_Fsync(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"fsync", "--dir", t.TempDir(), "--duration", "100ms", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res []FsyncResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	if len(res) != 3 {
		t.Fatalf("%d probes", len(res))
	}
	for _, r := range res {
		if r.Ops < 1 || r.OpsPerS <= 0 || r.P50ms <= 0 || r.MaxMs < r.P99ms || r.P99ms < r.P50ms {
			t.Errorf("%s: %+v", r.Probe, r)
		}
	}
	if code := run([]string{"fsync", "--dir", "/nonexistent/dir"}, &out, &errb); code != 1 {
		t.Errorf("bad dir: exit %d", code)
	}
}

func TestRun_BadFlags(t *testing.T) {
	for _, args := range [][]string{{"--start", "2"}, {"--clients", "0"}, {"--read-ratio", "2"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 || !strings.HasPrefix(errb.String(), "coordbench: ") {
			t.Errorf("%v: exit %d, %q", args, code, errb.String())
		}
	}
}

func TestRun_Scale(t *testing.T) {
	// scale drives a running server: start one with --start's helper.
	addrs, _, cleanup, err := startCluster(1, false, false, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	var out, errb bytes.Buffer
	code := run([]string{"scale", "--endpoints", addrs[0], "--znodes", "2500", "--big", "1200", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var r ScaleResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	if r.Znodes != 2500 || r.ListChildren != 1200 || r.SnapshotBytes < 2500*100 || r.PopulateS <= 0 {
		t.Fatalf("result %+v", r)
	}
	// A second run on the same cluster refuses (its parents exist).
	if code := run([]string{"scale", "--endpoints", addrs[0], "--znodes", "10", "--big", "0"}, &out, &errb); code != 1 {
		t.Fatalf("second run: exit %d", code)
	}
}
