package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"

	"coord/coord/rpc"
	"coord/proto/coordpb"
)

// Admission control (issue 10): each class of client request has a bound
// on how many run at once and on how long one may wait for a slot; past
// either it is shed at once with rpc.OverloadError (ResourceExhausted,
// ErrorCode OVERLOADED and a retry-after hint) before it does anything.
// Bounded queues keep latency bounded: a node at capacity answers "come
// back later" in microseconds instead of letting every request wait behind
// a queue that only grows.
//
// The wait for a slot follows the CoDel rule as "Fail at Scale" (Facebook,
// ACM Queue 2015) applies it to server queues: while the queue has been
// empty within the last Interval, a request may wait up to Interval (a
// burst is absorbed); once it has stayed non-empty for a whole Interval
// (a standing queue: sustained overload), a request waits at most Target.
//
// Deadline-aware: a request carries its caller's deadline (gRPC's
// grpc-timeout, or a Call stream request's timeout_ms). Each class keeps
// a moving average of how long an admitted request holds its slot (its
// service time). A request that finds no free slot waits at most its
// remaining time minus that service time (less than the CoDel wait when
// that is shorter), and is shed at once — before it takes a queue place —
// when the remaining time is already shorter than the service time: it
// would reach a slot too late to be answered before its caller gives up.
// Queued until its deadline, it would only have been a timeout that held
// a queue place; shed early, it is a cheap OVERLOADED with a retry-after
// the client can act on. (Motivated by the overload proof, seed 17 on 23
// Nov: 1,500 requests/s timing out at the client's 1 s deadline, not
// shed; docs/RELIABILITY.md, Overload, says what the later runs showed.)
// A request that finds a free slot runs, whatever its deadline: the node
// is not overloaded then, and the estimate is an average.
//
// Classes: writes (proposals in flight to raft, forwarded or local),
// linearizable reads and syncs (waiting for a read index), local reads.
// Session traffic (OpenSession, KeepAlive, CloseSession), peer and raft
// traffic, membership, status and auth calls are never classed, never
// queued and never shed: overload of data traffic cannot expire a session.
// Watch streams have their own bound (admission_watch.go).

// Admission defaults.
const (
	DefaultMaxWrites      = 64
	DefaultMaxLinearReads = 128
	DefaultMaxLocalReads  = 256
	// DefaultAdmissionTarget is the longest a request waits for a slot
	// under a standing queue.
	DefaultAdmissionTarget = 5 * time.Millisecond
	// DefaultAdmissionInterval is the longest a request waits for a slot
	// when the queue has recently been empty (a burst).
	DefaultAdmissionInterval = 500 * time.Millisecond
	// DefaultQueueFactor sizes each class's queue from its in-flight bound.
	DefaultQueueFactor = 8
	// DefaultRetryAfter is the retry-after hint sent with a shed request.
	DefaultRetryAfter = 50 * time.Millisecond
)

// AdmissionConfig bounds each class of client request.
type AdmissionConfig struct {
	// Disabled turns admission control off (coordd --no-admission): every
	// request runs at once however many are running; the overload proof's
	// teeth run.
	Disabled bool
	// MaxWrites bounds the writes this node has in flight to raft
	// (0: DefaultMaxWrites).
	MaxWrites int
	// MaxLinearReads bounds linearizable reads and syncs in flight
	// (0: DefaultMaxLinearReads).
	MaxLinearReads int
	// MaxLocalReads bounds local reads in flight (0: DefaultMaxLocalReads).
	MaxLocalReads int
	// MaxQueue bounds the requests of one class waiting for a slot
	// (0: DefaultQueueFactor × the class's in-flight bound). The CoDel
	// timeouts bound how long they wait; this bounds how many.
	MaxQueue int
	// Target and Interval: the CoDel queue timeouts (see above;
	// 0: DefaultAdmissionTarget, DefaultAdmissionInterval).
	Target   time.Duration
	Interval time.Duration
	// RetryAfter is the hint sent with a shed request (0: DefaultRetryAfter).
	RetryAfter time.Duration
}

// withDefaults fills zero fields.
func (c AdmissionConfig) withDefaults() AdmissionConfig {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxWrites, DefaultMaxWrites)
	def(&c.MaxLinearReads, DefaultMaxLinearReads)
	def(&c.MaxLocalReads, DefaultMaxLocalReads)
	if c.Target == 0 {
		c.Target = DefaultAdmissionTarget
	}
	if c.Interval == 0 {
		c.Interval = DefaultAdmissionInterval
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	return c
}

// Validate reports every problem at once.
func (c AdmissionConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{{"max writes", c.MaxWrites}, {"max linearizable reads", c.MaxLinearReads}, {"max local reads", c.MaxLocalReads}, {"max queue", c.MaxQueue}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("admission: %s %d must not be negative", f.name, f.v))
		}
	}
	if c.Target < 0 || c.Interval < 0 || c.RetryAfter < 0 {
		errs = append(errs, errors.New("admission: target, interval and retry-after must not be negative"))
	}
	if c.Target > 0 && c.Interval > 0 && c.Target > c.Interval {
		errs = append(errs, fmt.Errorf("admission: target %v must not exceed interval %v", c.Target, c.Interval))
	}
	return errors.Join(errs...)
}

// Admission classes (also the metrics' class label).
const (
	classWrite      = "write"
	classLinearRead = "linearizable_read"
	classLocalRead  = "local_read"
)

// admission holds one limiter per class.
type admission struct {
	cfg     AdmissionConfig
	log     *slog.Logger
	classes map[string]*limiter
	now     func() time.Time

	admitted *prometheus.CounterVec
	shed     *prometheus.CounterVec
	delay    *prometheus.HistogramVec

	// For AdmissionStats: totals, and the data requests in the server
	// now (holding a slot or a place in a queue; with admission disabled,
	// every one running) with their high-water mark.
	nAdmitted, nShed     atomic.Int64
	inServer, maxInServe atomic.Int64
}

// AdmissionStats is a snapshot of a node's admission control.
type AdmissionStats struct {
	// Admitted and Shed count client data requests since start (all
	// classes; both 0 with admission disabled).
	Admitted, Shed int64
	// InServer is the number of data requests in the server now,
	// holding a slot or waiting in a queue for one (a request shed at
	// once is not counted); MaxInServer is the most there were at once
	// since start. With admission enabled they never exceed the sum of
	// the classes' slots and queues. With it disabled every running
	// request counts: they show the queue admission bounds.
	InServer, MaxInServer int64
}

// AdmissionStats reports this node's admission counters.
func (s *Server) AdmissionStats() AdmissionStats {
	a := s.admit
	return AdmissionStats{Admitted: a.nAdmitted.Load(), Shed: a.nShed.Load(), InServer: a.inServer.Load(), MaxInServer: a.maxInServe.Load()}
}

func newAdmission(cfg AdmissionConfig, reg prometheus.Registerer, log *slog.Logger) *admission {
	cfg = cfg.withDefaults()
	a := &admission{cfg: cfg, log: log, classes: map[string]*limiter{}, now: time.Now}
	a.admitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coord_admission_admitted_total", Help: "Client requests admitted, by class.",
	}, []string{"class"})
	a.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coord_admission_shed_total", Help: "Client requests shed with OVERLOADED, by class and reason.",
	}, []string{"class", "reason"})
	a.delay = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "coord_admission_queue_seconds", Help: "Time an admitted request waited for a slot, by class.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 12),
	}, []string{"class"})
	for class, n := range map[string]int{classWrite: cfg.MaxWrites, classLinearRead: cfg.MaxLinearReads, classLocalRead: cfg.MaxLocalReads} {
		q := cfg.MaxQueue
		if q == 0 {
			q = DefaultQueueFactor * n
		}
		l := &limiter{class: class, sem: semaphore.NewWeighted(int64(n)), maxQueue: int64(q)}
		l.lastEmpty.Store(a.now().UnixNano())
		a.classes[class] = l
	}
	if reg != nil {
		inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "coord_admission_waiting", Help: "Client requests waiting for an admission slot (all classes).",
		}, func() float64 {
			var n int64
			for _, l := range a.classes {
				n += l.waiting.Load()
			}
			return float64(n)
		})
		reg.MustRegister(a.admitted, a.shed, a.delay, inflight)
	}
	return a
}

// limiter is one class's slots and queue.
type limiter struct {
	class     string
	sem       *semaphore.Weighted
	maxQueue  int64
	waiting   atomic.Int64
	lastEmpty atomic.Int64 // unix nanos when the queue was last seen empty
	// service is the moving average (weight 1/serviceWeight per request)
	// of how long an admitted request held its slot, in nanoseconds; 0
	// until the first one finished.
	service atomic.Int64
}

// serviceWeight: each finished request moves the service-time average by
// 1/serviceWeight of its difference (about the last 16 requests count).
const serviceWeight = 16

// observe folds one request's slot time into the average.
func (l *limiter) observe(d time.Duration) {
	for {
		old := l.service.Load()
		v := int64(d)
		if old != 0 {
			v = old + (int64(d)-old)/serviceWeight
		}
		if v <= 0 {
			v = 1 // 0 means "no estimate yet"
		}
		if l.service.CompareAndSwap(old, v) {
			return
		}
	}
}

// serviceEstimate is the class's current service-time average (0: none yet).
func (l *limiter) serviceEstimate() time.Duration { return time.Duration(l.service.Load()) }

// acquire takes a slot for one request or sheds it; release gives the
// slot back.
func (a *admission) acquire(ctx context.Context, l *limiter) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err // the caller has given up already: nothing to run
	}
	// enter/leave keep the in-server count to requests holding a slot or
	// a place in the queue; leave runs before the slot or place is given
	// back, so the high-water mark never exceeds the bounds.
	admitted := func() func() {
		at := a.now()
		return func() {
			l.observe(a.now().Sub(at))
			a.leave()
			l.sem.Release(1)
		}
	}
	if l.sem.TryAcquire(1) {
		a.enter()
		l.lastEmpty.Store(a.now().UnixNano())
		a.nAdmitted.Add(1)
		a.admitted.WithLabelValues(l.class).Inc()
		a.delay.WithLabelValues(l.class).Observe(0)
		return admitted(), nil
	}
	start := a.now()
	wait, reason := a.cfg.Interval, "queued too long"
	if start.UnixNano()-l.lastEmpty.Load() > int64(a.cfg.Interval) {
		wait = a.cfg.Target // a standing queue: do not let it grow
	}
	if dl, ok := ctx.Deadline(); ok {
		// The longest wait after which the request can still be served
		// before its caller's deadline.
		budget := dl.Sub(start) - l.serviceEstimate()
		if budget <= 0 {
			return nil, a.shedErr(l, "deadline")
		}
		if budget < wait {
			wait, reason = budget, "deadline"
		}
	}
	if l.waiting.Add(1) > l.maxQueue {
		l.waiting.Add(-1)
		return nil, a.shedErr(l, "queue full")
	}
	a.enter()
	wctx, cancel := context.WithTimeout(ctx, wait)
	err = l.sem.Acquire(wctx, 1)
	cancel()
	if err != nil {
		a.leave()
	}
	if l.waiting.Add(-1) == 0 {
		l.lastEmpty.Store(a.now().UnixNano())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // the caller gave up: not an overload verdict
		}
		return nil, a.shedErr(l, reason)
	}
	a.nAdmitted.Add(1)
	a.admitted.WithLabelValues(l.class).Inc()
	a.delay.WithLabelValues(l.class).Observe(a.now().Sub(start).Seconds())
	return admitted(), nil
}

// enter counts a data request into the server (and its high-water mark);
// leave counts it out.
func (a *admission) enter() {
	n := a.inServer.Add(1)
	for m := a.maxInServe.Load(); n > m && !a.maxInServe.CompareAndSwap(m, n); m = a.maxInServe.Load() {
	}
}

func (a *admission) leave() { a.inServer.Add(-1) }

func (a *admission) shedErr(l *limiter, reason string) error {
	a.nShed.Add(1)
	a.shed.WithLabelValues(l.class, reason).Inc()
	return &rpc.OverloadError{Class: l.class, RetryAfter: a.cfg.RetryAfter, Reason: reason}
}

// readRequest is what every read request has.
type readRequest interface{ GetRead() *coordpb.ReadOptions }

// classify names the class of a Coord method's request ("" for traffic
// that is never shed).
func classify(method string, req any) string {
	switch method {
	case coordpb.Coord_Create_FullMethodName, coordpb.Coord_Set_FullMethodName, coordpb.Coord_Delete_FullMethodName,
		coordpb.Coord_Multi_FullMethodName, coordpb.Coord_SetACL_FullMethodName:
		return classWrite
	case coordpb.Coord_Sync_FullMethodName:
		return classLinearRead
	case coordpb.Coord_Get_FullMethodName, coordpb.Coord_Exists_FullMethodName,
		coordpb.Coord_Children_FullMethodName, coordpb.Coord_GetACL_FullMethodName:
		if r, ok := req.(readRequest); ok && r.GetRead().GetConsistency() == coordpb.Consistency_LOCAL {
			return classLocalRead
		}
		return classLinearRead
	}
	return ""
}

// unary is the admission interceptor: it runs for unary calls and for
// every request on a Call stream (per request, not per stream).
func (a *admission) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if a == nil {
		return h(ctx, req)
	}
	class := classify(info.FullMethod, req)
	if class == "" {
		return h(ctx, req)
	}
	if a.cfg.Disabled {
		a.enter()
		defer a.leave()
		return h(ctx, req)
	}
	l := a.classes[class]
	release, err := a.acquire(ctx, l)
	if err != nil {
		return nil, rpc.ToStatus(a.log, err)
	}
	defer release()
	return h(ctx, req)
}
