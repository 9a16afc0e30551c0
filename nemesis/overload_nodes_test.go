package nemesis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"coord/client"
)

const metricsPage = `# HELP coord_grpc_request_seconds gRPC request latency by method.
# TYPE coord_grpc_request_seconds histogram
coord_grpc_request_seconds_bucket{method="/coord.v1.Coord/Get",le="0.001"} %d
coord_grpc_request_seconds_bucket{method="/coord.v1.Coord/Get",le="0.01"} %d
coord_grpc_request_seconds_bucket{method="/coord.v1.Coord/Get",le="0.1"} %d
coord_grpc_request_seconds_bucket{method="/coord.v1.Coord/Get",le="+Inf"} %d
coord_grpc_request_seconds_sum{method="/coord.v1.Coord/Get"} %g
coord_grpc_request_seconds_count{method="/coord.v1.Coord/Get"} %d
coord_grpc_requests_total{code="OK",method="/coord.v1.Coord/Get"} %d
coord_grpc_requests_total{code="ResourceExhausted",method="/coord.v1.Coord/Get"} %d
coord_admission_shed_total{class="linearizable_read",reason="full"} %d
coord_admission_queue_seconds_sum{class="write"} %g
coord_admission_queue_seconds_count{class="write"} %d
coord_raft_applied_index %d
coord_raft_commit_index %d
coord_raft_is_leader %d
process_cpu_seconds_total %g
go_memstats_heap_alloc_bytes 1.048576e+07
go_gc_duration_seconds{quantile="0.5"} 0.0001
go_gc_duration_seconds_sum %g
go_gc_duration_seconds_count %d
go_goroutines 42
coord_znodes 300
`

func page(t *testing.T, getBuckets [4]int, getSum float64, ok, shed, applied, commit, leader int, cpu, gcSum float64, gcN int) map[string]float64 {
	t.Helper()
	// Admission waits: 1 ms per request so far (the Get count).
	s := fmt.Sprintf(metricsPage, getBuckets[0], getBuckets[1], getBuckets[2], getBuckets[3], getSum, getBuckets[3], ok, shed, shed,
		float64(getBuckets[3])/1000, getBuckets[3], applied, commit, leader, cpu, gcSum, gcN)
	m, err := parseMetrics(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseMetricsKeepsOnlyScrapedFamilies(t *testing.T) {
	m := page(t, [4]int{1, 2, 3, 4}, 0.5, 3, 1, 10, 12, 1, 2.5, 0.01, 3)
	if _, ok := m["coord_znodes"]; ok {
		t.Error("coord_znodes kept: not a scraped family")
	}
	if _, ok := m[`go_gc_duration_seconds{quantile="0.5"}`]; ok {
		t.Error("the GC summary's quantiles kept")
	}
	if v := m[`coord_grpc_request_seconds_bucket{method="/coord.v1.Coord/Get",le="+Inf"}`]; v != 4 {
		t.Errorf("+Inf bucket = %v, want 4", v)
	}
	if v := m["process_cpu_seconds_total"]; v != 2.5 {
		t.Errorf("cpu = %v, want 2.5", v)
	}
	if _, err := parseMetrics(strings.NewReader("coord_raft_is_leader\n")); err == nil {
		t.Error("a kept line without a value parsed")
	}
	if _, err := parseMetrics(strings.NewReader("coord_raft_is_leader x\n")); err == nil {
		t.Error("a kept line with a bad value parsed")
	}
}

func TestNodeSpan(t *testing.T) {
	// Two scrapes 2 s apart: 1000 Gets (910 OK, 90 with another code) and
	// 90 admission sheds (counted apart), 900 under 1 ms,
	// 80 more under 10 ms, 15 under 100 ms, 5 over; 2 s of latency in all.
	a := page(t, [4]int{100, 100, 100, 100}, 1, 90, 10, 500, 500, 0, 10, 0.010, 5)
	b := page(t, [4]int{1000, 1080, 1095, 1100}, 3, 1000, 100, 900, 1000, 0, 11.8, 0.016, 9)
	c := page(t, [4]int{0, 0, 0, 0}, 0, 0, 0, 1100, 1100, 1, 0, 0, 0) // another node, leading, commit 1100
	s := &nodeScraper{names: []string{"n1", "n2"}, samples: [][]nodeSample{
		{{at: 0, m: a, db: 1 << 20}, {at: 2 * time.Second, m: b, db: 3 << 20}},
		{{at: 0, m: c}, {at: 2 * time.Second, m: c}},
	}}
	ns, ok := s.span(0, 0, 2*time.Second)
	if !ok {
		t.Fatal("no span")
	}
	if ns.Leader {
		t.Error("n1 reported as leader")
	}
	if ns.CPU < 0.899 || ns.CPU > 0.901 {
		t.Errorf("cpu = %v cores, want 0.9", ns.CPU)
	}
	if ns.Lag != 200 {
		t.Errorf("lag = %d, want 200 (commit 1100 on n2, applied 900)", ns.Lag)
	}
	if ns.GetRate != 500 {
		t.Errorf("get rate = %v, want 500/s", ns.GetRate)
	}
	if ns.GetMean != 2*time.Millisecond {
		t.Errorf("get mean = %v, want 2ms (2 s over 1000)", ns.GetMean)
	}
	// 99% of 1000 = 990 observations: the 0.1 s bucket (995) holds it.
	if ns.GetP99 != 100*time.Millisecond {
		t.Errorf("get p99 = %v, want 100ms", ns.GetP99)
	}
	if ns.OKRate != 455 || ns.ShedRate != 45 {
		t.Errorf("ok %v/s shed %v/s, want 455 and 45", ns.OKRate, ns.ShedRate)
	}
	if ns.Queue != time.Millisecond {
		t.Errorf("queue = %v, want 1ms", ns.Queue)
	}
	if ns.GCRate != 2 || ns.GCPause != 3*time.Millisecond {
		t.Errorf("gc %v/s %v/s, want 2/s and 3ms/s", ns.GCRate, ns.GCPause)
	}
	if ns.DBMiB != 3 || ns.HeapMiB != 10 || ns.Goroutines != 42 {
		t.Errorf("db %v MiB heap %v MiB goroutines %d", ns.DBMiB, ns.HeapMiB, ns.Goroutines)
	}
	if ln, ok := s.span(1, 0, 2*time.Second); !ok || !ln.Leader || ln.Lag != 0 {
		t.Errorf("n2: %+v %v, want the leader with no lag", ln, ok)
	}
	if _, ok := s.span(0, time.Second, time.Second); ok {
		t.Error("a span within one sample gave stats")
	}
}

func TestBucketQuantileInf(t *testing.T) {
	a := map[string]float64{}
	b := map[string]float64{
		`h_bucket{m="x",le="0.5"}`:  1,
		`h_bucket{m="x",le="1"}`:    1,
		`h_bucket{m="x",le="+Inf"}`: 100,
	}
	// Everything above the largest bound: the largest finite bound.
	if q := bucketQuantile(a, b, "h", `m="x"`, 0.99); q != time.Second {
		t.Errorf("p99 = %v, want 1s", q)
	}
	if q := bucketQuantile(a, a, "h", `m="x"`, 0.99); q != 0 {
		t.Errorf("p99 of nothing = %v", q)
	}
}

// The client's own throttle is counted apart from a server's shed.
func TestClassifyOutcomeThrottled(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, outOK},
		{fmt.Errorf("set: %w", client.ErrThrottled), outThrottled},
		{fmt.Errorf("set: %w", client.ErrOverloaded), outShed},
		{context.DeadlineExceeded, outTimeout},
		{errors.New("other"), outOther},
	} {
		if got := classifyOutcome(c.err); got != c.want {
			t.Errorf("classifyOutcome(%v) = %s, want %s", c.err, outcomeNames[got], outcomeNames[c.want])
		}
	}
}
