package nemesis

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// Servers first on the CPU (OverloadConfig.ServerNice). In production the
// load comes from other machines; on the proof's one host the open-loop
// generator (this process: one goroutine per request, the biggest CPU
// user at 2x) competes with the coordd processes for the same cores, and
// at a high peak it took the CPU the servers needed (seed 18 on 23 Nov:
// 8% of the peak, the nodes down from 1.29 to 0.86 cores). The proof
// models a generator on other hosts by giving the coordd processes, and
// the session holder (the live clients, also "elsewhere"), a higher
// scheduling priority than the generator: the kernel runs them first
// whenever they are runnable, and the generator gets what is left.
//
// Linux keeps the nice value per thread: setpriority(PRIO_PROCESS, pid)
// changes only the thread whose id is pid. reniceAll therefore sets every
// thread in /proc/PID/task, repeating until a pass finds no thread it has
// not set (a thread created meanwhile inherits its creator's value, so
// once every thread is set, every later one is too).

// reniceAll sets the nice value of every thread of pid; it returns how
// many threads it set.
func reniceAll(pid, nice int) (int, error) {
	return eachThread(pid, "renice", func(tid int) error {
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			return fmt.Errorf("to %d: %w", nice, err)
		}
		return nil
	})
}

// eachThread runs set on every thread of pid, passing over
// /proc/PID/task until a pass finds no thread it has not set (at most 10
// passes): a thread created meanwhile inherits its creator's setting, so
// once every thread is set, every later one is too. A thread that ended
// meanwhile (ESRCH) is skipped. It returns how many threads it set.
func eachThread(pid int, what string, set func(tid int) error) (int, error) {
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		if err != nil {
			return len(done), fmt.Errorf("%s %d: %w", what, pid, err)
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := set(tid); err != nil {
				if errors.Is(err, syscall.ESRCH) {
					continue // the thread ended meanwhile
				}
				return len(done), fmt.Errorf("%s %d (thread %d): %w", what, pid, tid, err)
			}
			done[tid] = true
			fresh++
		}
		if fresh == 0 {
			break
		}
	}
	return len(done), nil
}

// niceOf reads a thread's nice value (taskNice, nemesis/sessions.go).
func niceOf(pid, tid int) (int, error) {
	return taskNice(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(tid), "stat"))
}

// threadNices returns the distinct nice values of pid's threads (for the
// summary: what the run really had).
func threadNices(pid int) (map[int]int, error) {
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		return nil, err
	}
	out := map[int]int{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if n, err := niceOf(pid, tid); err == nil {
			out[n]++
		}
	}
	return out, nil
}

// Servers on their own cores (OverloadConfig.ServerCPUs). A priority
// alone is not enough on 2 cores: the generator needs about half a core
// per peak's worth of requests a second (23 Nov, seed 17: 11,217 ops/s
// with the nodes on 1.28 cores and the generator on the rest), so at 2x
// a generator that only gets what the prioritised servers leave falls
// behind its own schedule and its requests time out inside it (21:12,
// seed 17, nice -10 only: peak 15,664 ops/s with the nodes on 1.41
// cores; in the overload the generator's requests started 1.3 s late on
// average, the nodes got 0.99 cores, and both the protected and the
// unprotected run "collapsed" to 5-7% — the generator's collapse, not the
// cluster's). Pinning the servers to some cores (with their priority
// there) and leaving the generator free models a generator on other
// hosts: the servers' capacity is what their cores give, and the
// generator has the other cores to offer 2x of it.

// pinAll sets the CPU affinity of every thread of pid to cpus (as
// reniceAll: every thread, until a pass finds no new one).
func pinAll(pid int, cpus []int) (int, error) {
	var set [16]uint64 // 1024 CPUs, as glibc's cpu_set_t
	for _, c := range cpus {
		if c < 0 || c >= 1024 {
			return 0, fmt.Errorf("pin %d: cpu %d out of range", pid, c)
		}
		set[c/64] |= 1 << (c % 64)
	}
	return eachThread(pid, "pin", func(tid int) error {
		_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), uintptr(len(set)*8), uintptr(unsafe.Pointer(&set[0])))
		if errno != 0 {
			return fmt.Errorf("to cpus %v: %w", cpus, errno)
		}
		return nil
	})
}

// cpusAllowed reads a thread's Cpus_allowed_list from /proc (for the
// summary and the test).
func cpusAllowed(pid, tid int) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(tid), "status"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("status of %d/%d: no Cpus_allowed_list", pid, tid)
}

// ParseCPUList parses "1", "2-3" or "0,2-3" into CPU numbers.
func ParseCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
		}
		if a < 0 || b < a {
			return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cpu list %q: empty", s)
	}
	return out, nil
}

// serversFirst gives every thread of pid (a coordd or the session
// holder) the run's ServerNice and ServerCPUs, where set.
func (c *OverloadConfig) serversFirst(pid int) error {
	if c.ServerNice != 0 {
		if _, err := reniceAll(pid, c.ServerNice); err != nil {
			return fmt.Errorf("servers first: %w", err)
		}
	}
	if len(c.ServerCPUs) > 0 {
		if _, err := pinAll(pid, c.ServerCPUs); err != nil {
			return fmt.Errorf("servers on their cores: %w", err)
		}
	}
	return nil
}
