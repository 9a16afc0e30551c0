package nemesis

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"coord/client"
)

// Sessions for the failover run: each one is a client.Client (its own
// connections, its own jittered keepalives, one ephemeral). A client keeps
// a connection to every endpoint it has used, so 10,000 of them need more
// open files than one process may hold here (20,000, hard; at 10,000
// sessions the harness ran out 3 s after the kill, clients could not dial
// the survivors and their sessions expired, the harness's failure). With
// FailoverConfig.Workers the sessions live in that many child processes
// (this same executable, started with SessionWorkerEnv set), each with its
// own limit.

// SessionWorkerEnv, set in a process's environment, makes
// MaybeSessionWorker run the session worker it describes (JSON
// workerSpec) instead of returning.
const SessionWorkerEnv = "NEMESIS_SESSION_WORKER"

type workerSpec struct {
	Endpoints      []string
	First, Count   int
	SessionTimeout time.Duration
	Parallel       int
}

// sessionPath is session k's ephemeral.
func sessionPath(k int) string { return fmt.Sprintf("%s/e/s%05d", failoverDir, k) }

// openSessions opens count sessions, k = first..first+count-1, client k
// starting on endpoint k mod n, and creates each one's ephemeral. It
// returns the clients made so far also on error (the caller closes them).
func openSessions(ctx context.Context, endpoints []string, first, count int, timeout time.Duration, parallel int) ([]*client.Client, error) {
	clients := make([]*client.Client, 0, count)
	var openErr atomic.Pointer[error]
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(parallel, 1))
	for k := first; k < first+count && ctx.Err() == nil && openErr.Load() == nil; k++ {
		eps := make([]string, len(endpoints))
		for j := range endpoints {
			eps[j] = endpoints[(k+j)%len(endpoints)]
		}
		c, err := client.New(ctx, client.Config{Endpoints: eps, DialTimeout: time.Second, SessionTimeout: timeout})
		if err != nil {
			wg.Wait()
			return clients, err
		}
		clients = append(clients, c)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := createRetry(ctx, c, sessionPath(k), &client.CreateOptions{Ephemeral: true}, time.Minute); err != nil {
				openErr.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if p := openErr.Load(); p != nil {
		return clients, *p
	}
	return clients, ctx.Err()
}

// closeSessions closes every client, 512 at a time.
func closeSessions(clients []*client.Client) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 512)
	for _, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			_ = c.Close(cctx)
			cancel()
			<-sem
		}()
	}
	wg.Wait()
}

// expiredSessions returns the indexes (first + position) of the clients
// told that their session expired.
func expiredSessions(clients []*client.Client, first int) []int {
	var out []int
	for i, c := range clients {
		select {
		case <-c.SessionDone():
			if errors.Is(c.SessionErr(), client.ErrSessionExpired) {
				out = append(out, first+i)
			}
		default:
		}
	}
	return out
}

// MaybeSessionWorker returns at once unless SessionWorkerEnv is set; then
// it runs the session worker and exits. Call it first in the main (or
// TestMain) of any program that runs RunFailover with Workers > 0.
//
// The worker opens its sessions, writes "open" (or "error <text>") on
// stdout, keeps them alive until its stdin closes (the parent is done, or
// died), writes "stalled <µs> <unix ms>" (its longest wake-up delay and
// when it ended: stall.go) and "expired <n> <k>..." and exits after
// closing them.
func MaybeSessionWorker() {
	v := os.Getenv(SessionWorkerEnv)
	if v == "" {
		return
	}
	var spec workerSpec
	if err := json.Unmarshal([]byte(v), &spec); err != nil {
		fmt.Printf("error %s: %v\n", SessionWorkerEnv, err)
		os.Exit(2)
	}
	os.Exit(runSessionWorker(spec, os.Stdin, os.Stdout))
}

func runSessionWorker(spec workerSpec, in io.Reader, out io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients, err := openSessions(ctx, spec.Endpoints, spec.First, spec.Count, spec.SessionTimeout, spec.Parallel)
	defer closeSessions(clients)
	if err != nil {
		fmt.Fprintf(out, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	fmt.Fprintln(out, "open")
	// Whether this process could run at all (stall.go): a starved worker
	// sends no keepalives, and its sessions expire with it.
	meter := newStallMeter()
	go meter.run(ctx)
	// Every 2 s, the sessions by client state on stderr (diagnostics:
	// which share of the clients' keepalives are failing, and when), and
	// how well this process was scheduled.
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				var conn, disc, exp int
				for _, c := range clients {
					switch c.SessionState() {
					case client.StateConnected:
						conn++
					case client.StateDisconnected:
						disc++
					case client.StateExpired:
						exp++
					}
				}
				fmt.Fprintf(os.Stderr, "%s worker %d-%d: connected %d disconnected %d expired %d; printed %v late, %s\n",
					now.UTC().Format("15:04:05.000"), spec.First, spec.First+spec.Count-1, conn, disc, exp,
					time.Since(now).Round(time.Millisecond), meter.report())
			}
		}
	}()
	_, _ = io.Copy(io.Discard, in)
	cancel()
	exp := expiredSessions(clients, spec.First)
	late, at := meter.longest()
	fmt.Fprintf(out, "stalled %d %d\n", late.Microseconds(), at.UnixMilli())
	var line strings.Builder
	fmt.Fprintf(&line, "expired %d", len(exp))
	for _, k := range exp {
		fmt.Fprintf(&line, " %d", k)
	}
	fmt.Fprintln(out, line.String())
	return 0
}

// sessionWorker is a child process holding some of the sessions.
type sessionWorker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner

	waitOnce sync.Once
	waitErr  error
	reaped   func() // after Wait: releases the thread that forked it

	// stall and stallEnd: the worker's longest wake-up delay and when it
	// ended (its "stalled" line, read by finish).
	stall    time.Duration
	stallEnd time.Time
}

// wait reaps the process once (stop and finish may both ask).
func (w *sessionWorker) wait() error {
	w.waitOnce.Do(func() {
		w.waitErr = w.cmd.Wait()
		w.reaped()
	})
	return w.waitErr
}

// startWorkers starts one child per share of the sessions (this same
// executable; its main must call MaybeSessionWorker) and waits until each
// has opened its sessions. On error the started ones are stopped.
func startWorkers(ctx context.Context, workers, sessions int, endpoints []string, timeout time.Duration, nice int, stderr io.Writer) ([]*sessionWorker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("session workers: %w", err)
	}
	var ws []*sessionWorker
	stopAll := func() {
		for _, w := range ws {
			w.stop()
		}
	}
	for i := 0; i < workers; i++ {
		first := sessions * i / workers
		spec := workerSpec{Endpoints: endpoints, First: first, Count: sessions*(i+1)/workers - first,
			SessionTimeout: timeout, Parallel: max(32/workers, 8)}
		js, _ := json.Marshal(spec)
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), SessionWorkerEnv+"="+string(js))
		cmd.Stderr = stderr
		// A worker outliving the harness (killed -9) would keep its
		// sessions: it dies with its parent.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		w := &sessionWorker{cmd: cmd}
		if w.stdin, err = cmd.StdinPipe(); err != nil {
			stopAll()
			return nil, fmt.Errorf("session worker %d: %w", i, err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("session worker %d: %w", i, err)
		}
		if w.reaped, err = startNiced(cmd, nice); err != nil {
			stopAll()
			return nil, fmt.Errorf("session worker %d: %w", i, err)
		}
		ws = append(ws, w)
		if nice != 0 {
			// Every thread must carry it (Linux's nice is per thread).
			if got, threads, err := processNice(cmd.Process.Pid); err != nil || got != nice {
				stopAll()
				return nil, fmt.Errorf("session worker %d: nice %d not applied (threads %d at %d): %v", i, nice, threads, got, err)
			}
		}
		w.lines = bufio.NewScanner(stdout)
		w.lines.Buffer(make([]byte, 64<<10), 4<<20)
	}
	// Wait for every "open" line (ctx bounds it: a worker killed by it
	// closes its stdout).
	stopCtx := context.AfterFunc(ctx, stopAll)
	defer stopCtx()
	for i, w := range ws {
		line, err := w.line()
		if err == nil && line != "open" {
			err = errors.New(strings.TrimPrefix(line, "error "))
		}
		if err != nil {
			stopAll()
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("session worker %d: %w", i, err)
		}
	}
	return ws, nil
}

func (w *sessionWorker) line() (string, error) {
	if w.lines.Scan() {
		return w.lines.Text(), nil
	}
	if err := w.lines.Err(); err != nil {
		return "", err
	}
	return "", io.ErrUnexpectedEOF
}

// finish closes the worker's stdin (if the caller has not) and returns
// the sessions it saw expire; the worker then closes them and exits.
func (w *sessionWorker) finish() ([]int, error) {
	_ = w.stdin.Close()
	line, err := w.line()
	if err != nil {
		w.stop()
		return nil, err
	}
	if f := strings.Fields(line); len(f) == 3 && f[0] == "stalled" {
		us, err1 := strconv.ParseInt(f[1], 10, 64)
		at, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			w.stop()
			return nil, fmt.Errorf("session worker: %q: %w", line, err)
		}
		w.stall, w.stallEnd = time.Duration(us)*time.Microsecond, time.UnixMilli(at)
		if line, err = w.line(); err != nil {
			w.stop()
			return nil, err
		}
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "expired" {
		w.stop()
		return nil, fmt.Errorf("session worker: unexpected %q", line)
	}
	var ks []int
	for _, s := range f[2:] {
		k, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("session worker: %q: %w", line, err)
		}
		ks = append(ks, k)
	}
	if err := w.wait(); err != nil {
		return ks, fmt.Errorf("session worker: %w", err)
	}
	return ks, nil
}

// stop kills the worker (its sessions then expire on the servers).
func (w *sessionWorker) stop() {
	_ = w.cmd.Process.Kill()
	_ = w.wait()
}

// startNiced starts cmd with the CPU priority nice (0: the caller's) and
// returns a function to call once the child has been reaped.
//
// Linux keeps a nice value per thread, and a Go process has several
// threads by the time setpriority(PRIO_PROCESS, pid) could reach it from
// outside (that call changes the main thread only; `ps -o ni` shows that
// one, so it would look applied). So the child is forked from a thread of
// this process that carries the value: every thread the child makes
// inherits it. That thread is locked to a goroutine that stays until
// reaped is called, for two reasons: no other goroutine of the harness
// runs at that priority (the goroutine never unlocks it; the runtime ends
// a locked thread with its goroutine, and the value is set back first in
// case it is the main thread, which the runtime parks instead), and the
// child's Pdeathsig fires when the thread that forked it ends, not the
// process.
func startNiced(cmd *exec.Cmd, nice int) (reaped func(), err error) {
	if nice == 0 {
		return func() {}, cmd.Start()
	}
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // no Unlock: the thread ends with the goroutine
		tid := syscall.Gettid()
		was, err := taskNice(fmt.Sprintf("/proc/self/task/%d/stat", tid))
		if err == nil {
			err = syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
		}
		if err != nil {
			errc <- fmt.Errorf("setpriority %d: %w", nice, err)
			return
		}
		errc <- cmd.Start()
		<-done
		// Back to the harness's priority (the runtime does not end a
		// locked main thread, it parks it).
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, was)
	}()
	if err := <-errc; err != nil {
		close(done)
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }, nil
}

// processNice returns the nice value every thread of process pid has
// (/proc/PID/task/*/stat), and how many threads it has; an error if they
// differ.
func processNice(pid int) (nice, threads int, err error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	first := true
	for _, e := range ents {
		n, err := taskNice(dir + "/" + e.Name() + "/stat")
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended meanwhile
		}
		if err != nil {
			return 0, threads, err
		}
		threads++
		if first {
			nice, first = n, false
		} else if n != nice {
			return nice, threads, fmt.Errorf("thread %s has nice %d, another %d", e.Name(), n, nice)
		}
	}
	if first {
		return 0, 0, fmt.Errorf("%s: no threads", dir)
	}
	return nice, threads, nil
}

// taskNice reads the nice value of one thread from its stat file.
func taskNice(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// Fields after the command (in parentheses, may hold spaces): state
	// is field 3, nice field 19.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 17 {
		return 0, fmt.Errorf("%s: %q", path, s)
	}
	n, err := strconv.Atoi(f[16])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}
