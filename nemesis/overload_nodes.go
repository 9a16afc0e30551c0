package nemesis

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"coord/client"
)

// Where the time goes in an overload run (docs/RELIABILITY.md, "24 Nov:
// after the overload"): the harness reads every node's /metrics once a
// second during the open loop and the load clients' overload counters, and
// reports per phase and per 2 s window each node's role, CPU, replication
// lag, raft log appends, server-side latency and sheds, Go heap and GC,
// and raft.db size, so a slow after phase can be told apart: a follower
// catching up, a busy leader, the client throttle, GC, the log store.

// nodeScrapeEvery is the /metrics polling interval; nodeWindow the
// windows the node table reports.
const (
	nodeScrapeEvery = time.Second
	nodeWindow      = 2 * time.Second
)

// scrapedFamilies are the metric names kept from a /metrics page (a
// series is kept when its name, before any '{', is one of these).
var scrapedFamilies = map[string]bool{
	"coord_grpc_request_seconds_sum":      true,
	"coord_grpc_request_seconds_count":    true,
	"coord_grpc_request_seconds_bucket":   true,
	"coord_grpc_requests_total":           true,
	"coord_admission_shed_total":          true,
	"coord_admission_queue_seconds_sum":   true,
	"coord_admission_queue_seconds_count": true,
	"coord_raft_commit_index":             true,
	"coord_raft_applied_index":            true,
	"coord_raft_is_leader":                true,
	"coord_raft_log_appends_total":        true,
	"coord_raft_log_entries_total":        true,
	"process_cpu_seconds_total":           true,
	"go_memstats_heap_alloc_bytes":        true,
	"go_gc_duration_seconds_sum":          true,
	"go_gc_duration_seconds_count":        true,
	"go_goroutines":                       true,
	// Snapshot and compaction markers (coordd since 24 Nov): which
	// window a node snapshotted in and how long its compaction ran.
	"coord_raft_snapshots_total":                true,
	"coord_raft_snapshot_persist_seconds_total": true,
	"par_compactions_total":                     true,
	"par_compaction_busy_seconds_total":         true,
	"par_compaction_paused_seconds_total":       true,
}

// parseMetrics reads the Prometheus text format and returns the kept
// series (full series text, e.g. `m{a="b"}`, → value).
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if !scrapedFamilies[name] {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("metrics line without a value: %q", line)
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out[line[:sp]] = v
	}
	return out, sc.Err()
}

// sumSeries adds the series of family name whose labels contain every
// one of the label pairs (`method="/coord.v1.Coord/Get"`).
func sumSeries(m map[string]float64, name string, labels ...string) float64 {
	var s float64
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		keep := true
		for _, l := range labels {
			if !strings.Contains(k, l) {
				keep = false
				break
			}
		}
		if keep {
			s += v
		}
	}
	return s
}

// bucketQuantile estimates quantile q of a histogram's observations
// between two scrapes from the difference of its cumulative buckets: the
// upper bound of the first bucket holding the q-th observation (+Inf:
// the largest finite bound). 0 when nothing was observed.
func bucketQuantile(a, b map[string]float64, name, label string, q float64) time.Duration {
	type bk struct {
		le float64
		n  float64
	}
	var bs []bk
	for k, v := range b {
		if !strings.HasPrefix(k, name+"_bucket{") || !strings.Contains(k, label) {
			continue
		}
		i := strings.Index(k, `le="`)
		if i < 0 {
			continue
		}
		j := strings.IndexByte(k[i+4:], '"')
		if j < 0 {
			continue
		}
		le, err := strconv.ParseFloat(k[i+4:i+4+j], 64)
		if err != nil {
			continue
		}
		bs = append(bs, bk{le, v - a[k]})
	}
	if len(bs) == 0 {
		return 0
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	total := bs[len(bs)-1].n
	if total <= 0 {
		return 0
	}
	want := q * total
	for i, x := range bs {
		if x.n >= want {
			le := x.le
			if math.IsInf(le, 1) && i > 0 {
				le = bs[i-1].le
			}
			return time.Duration(le * float64(time.Second))
		}
	}
	return 0
}

// nodeSample is one scrape of one node.
type nodeSample struct {
	at time.Duration // since the open loop began
	m  map[string]float64
	db int64 // raft.db size (bytes)
}

// clientSample is the load clients' summed overload counters.
type clientSample struct {
	at time.Duration
	st client.OverloadStats
}

// nodeScraper polls the nodes and the load clients (owner: RunOverload,
// stopped by stop).
type nodeScraper struct {
	names   []string
	urls    []string // http://host:port/metrics
	dbs     []string // raft.db paths
	loads   []*client.Client
	start   time.Time
	http    *http.Client
	mu      sync.Mutex
	samples [][]nodeSample // per node
	clients []clientSample
	cancel  context.CancelFunc
	done    chan struct{}
}

func startNodeScraper(ctx context.Context, cl *Cluster, loads []*client.Client, start time.Time) *nodeScraper {
	s := &nodeScraper{loads: loads, start: start, http: &http.Client{Timeout: 800 * time.Millisecond}, done: make(chan struct{})}
	for _, n := range cl.Nodes {
		s.names = append(s.names, n.Name)
		s.urls = append(s.urls, "http://"+n.HTTP+"/metrics")
		s.dbs = append(s.dbs, filepath.Join(n.data, "raft.db"))
	}
	s.samples = make([][]nodeSample, len(cl.Nodes))
	ctx, s.cancel = context.WithCancel(ctx)
	go func() {
		defer close(s.done)
		t := time.NewTicker(nodeScrapeEvery)
		defer t.Stop()
		for {
			s.scrape(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *nodeScraper) stop() {
	s.cancel()
	<-s.done
}

func (s *nodeScraper) scrape(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range s.urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := time.Since(s.start)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.urls[i], nil)
			if err != nil {
				return
			}
			resp, err := s.http.Do(req)
			if err != nil {
				return
			}
			m, err := parseMetrics(resp.Body)
			resp.Body.Close()
			if err != nil {
				return
			}
			var db int64
			if fi, err := os.Stat(s.dbs[i]); err == nil {
				db = fi.Size()
			}
			s.mu.Lock()
			s.samples[i] = append(s.samples[i], nodeSample{at: at, m: m, db: db})
			s.mu.Unlock()
		}()
	}
	var cs client.OverloadStats
	for _, c := range s.loads {
		st := c.OverloadStats()
		cs.Shed += st.Shed
		cs.Throttled += st.Throttled
		cs.Retried += st.Retried
	}
	at := time.Since(s.start)
	wg.Wait()
	s.mu.Lock()
	s.clients = append(s.clients, clientSample{at: at, st: cs})
	s.mu.Unlock()
}

// leader returns the node that said it leads in its latest sample (-1).
func (s *nodeScraper) leader() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, at := -1, time.Duration(math.MinInt64)
	for i, ss := range s.samples {
		if len(ss) > 0 && ss[len(ss)-1].m["coord_raft_is_leader"] == 1 && ss[len(ss)-1].at > at {
			best, at = i, ss[len(ss)-1].at
		}
	}
	return best
}

// NodeStats is one node over one span of the open loop (a phase or a
// 2 s window), from its /metrics.
type NodeStats struct {
	// Start: the span's nominal start (since the loop began); End: the
	// time of the last sample used (samples are nodeScrapeEvery apart, so
	// a span's rates are over the samples nearest its bounds).
	Start, End time.Duration
	Phase      string
	Node       string
	Leader     bool    // at the span's end
	CPU        float64 // cores
	// Lag: the highest commit index any node reported at the span's end
	// minus this node's applied index then.
	Lag uint64
	// Appends: durable raft log appends a second; PerAppend entries each.
	Appends, PerAppend float64
	// Get and Set requests that admission let run, a second, and their
	// server-side latency, mean and p99 (histogram buckets: an upper
	// bound). coord's metrics interceptor runs inside admission, so a
	// request's queue wait and shed requests are not in these.
	GetRate, SetRate float64
	GetMean, GetP99  time.Duration
	SetMean, SetP99  time.Duration
	OKRate, ShedRate float64 // Get and Set answered OK, and requests shed by admission, a second
	// Queue: the mean time an admitted data request waited in admission
	// (0 when it found a free slot).
	Queue      time.Duration
	HeapMiB    float64 // at the span's end
	GCRate     float64 // collections a second
	GCPause    time.Duration
	Goroutines int
	DBMiB      float64
	// Snapshots: FSM snapshots the node took in the span and Persist, the
	// time writing them took; CompactBusy and CompactPaused: the log
	// compactions' time in chunk transactions and in pauses (PAR).
	Snapshots                           int
	Persist, CompactBusy, CompactPaused time.Duration
}

// ClientStats are the load clients' overload counters over one span.
type ClientStats struct {
	Start, End               time.Duration
	Phase                    string
	Shed, Throttled, Retried float64 // a second
}

// sampleAt returns the index of the last sample at or before t (or the
// first sample when none is).
func sampleAt(ss []nodeSample, t time.Duration) int {
	i := sort.Search(len(ss), func(i int) bool { return ss[i].at > t })
	return max(0, i-1)
}

const (
	getMethod = `method="/coord.v1.Coord/Get"`
	setMethod = `method="/coord.v1.Coord/Set"`
)

// span computes node i's stats between the samples at from and to.
func (s *nodeScraper) span(i int, from, to time.Duration) (NodeStats, bool) {
	ss := s.samples[i]
	if len(ss) < 2 {
		return NodeStats{}, false
	}
	a, b := ss[sampleAt(ss, from)], ss[sampleAt(ss, to)]
	el := (b.at - a.at).Seconds()
	if el <= 0 {
		return NodeStats{}, false
	}
	d := func(name string, labels ...string) float64 {
		return sumSeries(b.m, name, labels...) - sumSeries(a.m, name, labels...)
	}
	mean := func(label string) time.Duration {
		n := d("coord_grpc_request_seconds_count", label)
		if n <= 0 {
			return 0
		}
		return time.Duration(d("coord_grpc_request_seconds_sum", label) / n * float64(time.Second))
	}
	ns := NodeStats{Start: a.at, End: b.at, Node: s.names[i], Leader: b.m["coord_raft_is_leader"] == 1}
	ns.CPU = d("process_cpu_seconds_total") / el
	if ap := d("coord_raft_log_appends_total"); ap > 0 {
		ns.Appends = ap / el
		ns.PerAppend = d("coord_raft_log_entries_total") / ap
	}
	var commit float64
	for j := range s.samples {
		if len(s.samples[j]) > 0 {
			commit = max(commit, s.samples[j][sampleAt(s.samples[j], to)].m["coord_raft_commit_index"])
		}
	}
	if ap := b.m["coord_raft_applied_index"]; commit > ap {
		ns.Lag = uint64(commit - ap)
	}
	ns.GetRate = d("coord_grpc_request_seconds_count", getMethod) / el
	ns.SetRate = d("coord_grpc_request_seconds_count", setMethod) / el
	ns.GetMean, ns.SetMean = mean(getMethod), mean(setMethod)
	ns.GetP99 = bucketQuantile(a.m, b.m, "coord_grpc_request_seconds", getMethod, 0.99)
	ns.SetP99 = bucketQuantile(a.m, b.m, "coord_grpc_request_seconds", setMethod, 0.99)
	ns.OKRate = (d("coord_grpc_requests_total", `code="OK"`, getMethod) + d("coord_grpc_requests_total", `code="OK"`, setMethod)) / el
	ns.ShedRate = d("coord_admission_shed_total") / el
	if n := d("coord_admission_queue_seconds_count"); n > 0 {
		ns.Queue = time.Duration(d("coord_admission_queue_seconds_sum") / n * float64(time.Second))
	}
	ns.HeapMiB = b.m["go_memstats_heap_alloc_bytes"] / (1 << 20)
	if n := d("go_gc_duration_seconds_count"); n > 0 {
		ns.GCRate = n / el
		ns.GCPause = time.Duration(d("go_gc_duration_seconds_sum") / el * float64(time.Second))
	}
	ns.Goroutines = int(b.m["go_goroutines"])
	ns.DBMiB = float64(b.db) / (1 << 20)
	sec := func(name string) time.Duration { return time.Duration(d(name) * float64(time.Second)) }
	ns.Snapshots = int(d("coord_raft_snapshots_total"))
	ns.Persist = sec("coord_raft_snapshot_persist_seconds_total")
	ns.CompactBusy = sec("par_compaction_busy_seconds_total")
	ns.CompactPaused = sec("par_compaction_paused_seconds_total")
	return ns, true
}

// clientSpan computes the clients' counters between from and to.
func (s *nodeScraper) clientSpan(from, to time.Duration) (ClientStats, bool) {
	cs := s.clients
	if len(cs) < 2 {
		return ClientStats{}, false
	}
	at := func(t time.Duration) int {
		i := sort.Search(len(cs), func(i int) bool { return cs[i].at > t })
		return max(0, i-1)
	}
	a, b := cs[at(from)], cs[at(to)]
	el := (b.at - a.at).Seconds()
	if el <= 0 {
		return ClientStats{}, false
	}
	return ClientStats{Start: a.at, End: b.at,
		Shed:      float64(b.st.Shed-a.st.Shed) / el,
		Throttled: float64(b.st.Throttled-a.st.Throttled) / el,
		Retried:   float64(b.st.Retried-a.st.Retried) / el}, true
}

// report fills the result's node and client tables: per phase (spans
// given as [from, to) since the loop began) and per nodeWindow.
func (s *nodeScraper) report(res *OverloadResult, spans []phaseSpan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range spans {
		for i := range s.samples {
			if ns, ok := s.span(i, p.from, p.to); ok {
				ns.Phase, ns.Start = p.name, p.from
				res.NodePhases = append(res.NodePhases, ns)
			}
		}
		if cs, ok := s.clientSpan(p.from, p.to); ok {
			cs.Phase, cs.Start = p.name, p.from
			res.ClientPhases = append(res.ClientPhases, cs)
		}
	}
	if len(spans) == 0 {
		return
	}
	end := spans[len(spans)-1].to
	for t := spans[0].from; t+nodeWindow <= end+nodeWindow/2; t += nodeWindow {
		ph := ""
		for _, p := range spans {
			if t >= p.from && t < p.to {
				ph = p.name
			}
		}
		for i := range s.samples {
			if ns, ok := s.span(i, t, t+nodeWindow); ok {
				ns.Phase, ns.Start = ph, t
				res.NodeWindows = append(res.NodeWindows, ns)
			}
		}
		if cs, ok := s.clientSpan(t, t+nodeWindow); ok {
			cs.Phase, cs.Start = ph, t
			res.ClientWindows = append(res.ClientWindows, cs)
		}
	}
}

type phaseSpan struct {
	name     string
	from, to time.Duration
}

// nodeHeader and nodeLine format the node table.
func nodeHeader() string {
	return fmt.Sprintf("%7s %-8s %-4s %5s %6s %6s %5s %6s %8s %8s %8s %8s %6s %6s %7s %5s %5s %7s %6s %9s %11s\n",
		"t", "phase", "node", "cpu", "lag", "app/s", "e/app", "get/s", "get mean", "get p99", "set mean", "set p99", "ok/s", "shed/s", "queue", "heap", "gc/s", "gc ms/s", "db MiB", "snap", "compact ms")
}

func nodeLine(ns NodeStats) string {
	role := ns.Node
	if ns.Leader {
		role += "*"
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
	// snap: snapshots taken in the span/their persist ms; compact ms: the
	// compaction's transactions+pauses ("-": none).
	snap, compact := "-", "-"
	if ns.Snapshots > 0 || ns.Persist > 0 {
		snap = fmt.Sprintf("%d/%.0f", ns.Snapshots, float64(ns.Persist)/float64(time.Millisecond))
	}
	if ns.CompactBusy > 0 || ns.CompactPaused > 0 {
		compact = fmt.Sprintf("%.0f+%.0f", float64(ns.CompactBusy)/float64(time.Millisecond), float64(ns.CompactPaused)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%7s %-8s %-4s %5.2f %6d %6.0f %5.1f %6.0f %8s %8s %8s %8s %6.0f %6.0f %7s %5.0f %5.1f %7.2f %6.1f %9s %11s\n",
		ns.Start.Round(100*time.Millisecond), ns.Phase, role, ns.CPU, ns.Lag, ns.Appends, ns.PerAppend, ns.GetRate,
		ms(ns.GetMean), ms(ns.GetP99), ms(ns.SetMean), ms(ns.SetP99), ns.OKRate, ns.ShedRate, ms(ns.Queue), ns.HeapMiB, ns.GCRate,
		float64(ns.GCPause)/float64(time.Millisecond), ns.DBMiB, snap, compact)
}

func clientLine(cs ClientStats) string {
	return fmt.Sprintf("%7s %-8s clients: server sheds %6.0f/s, throttled locally %6.0f/s, retries after a shed %6.0f/s\n",
		cs.Start.Round(100*time.Millisecond), cs.Phase, cs.Shed, cs.Throttled, cs.Retried)
}

// NodeSummary prints the per-phase node and client tables.
func (r OverloadResult) NodeSummary() string {
	if len(r.NodePhases) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("  nodes per phase (* leader; lag: entries behind the highest commit index; latency server-side, of the requests admission let run; shed/s: admission sheds; queue: mean admission wait of the admitted; snap: FSM snapshots taken/their persist ms; compact ms: log compaction in transactions+pauses):\n")
	b.WriteString(nodeHeader())
	for _, ns := range r.NodePhases {
		b.WriteString(nodeLine(ns))
	}
	for _, cs := range r.ClientPhases {
		b.WriteString(clientLine(cs))
	}
	return b.String()
}

// NodeTimeline prints the node table per 2 s window.
func (r OverloadResult) NodeTimeline() string {
	if len(r.NodeWindows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("nodes per 2 s window:\n")
	b.WriteString(nodeHeader())
	ci := 0
	for i, ns := range r.NodeWindows {
		b.WriteString(nodeLine(ns))
		if i < len(r.NodeWindows)-1 && r.NodeWindows[i+1].Start == ns.Start {
			continue
		}
		for ci < len(r.ClientWindows) && r.ClientWindows[ci].Start <= ns.Start {
			if r.ClientWindows[ci].Start == ns.Start {
				b.WriteString(clientLine(r.ClientWindows[ci]))
			}
			ci++
		}
	}
	return b.String()
}

// fetchProfile saves a profile from a node's /debug/pprof/ (coordd
// --enable-pprof) into path: a CPU profile of secs seconds, or with secs
// 0 the heap profile.
func fetchProfile(ctx context.Context, httpAddr string, secs int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+10)*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", httpAddr, secs)
	if secs == 0 {
		url = fmt.Sprintf("http://%s/debug/pprof/heap", httpAddr)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", httpAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", httpAddr, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", httpAddr, err)
	}
	return f.Close()
}
