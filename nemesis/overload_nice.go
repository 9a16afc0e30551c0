package nemesis

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		if err != nil {
			return len(done), fmt.Errorf("renice %d: %w", pid, err)
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
				if errors.Is(err, syscall.ESRCH) {
					continue // the thread ended meanwhile
				}
				return len(done), fmt.Errorf("renice %d (thread %d) to %d: %w", pid, tid, nice, err)
			}
			done[tid] = true
			fresh++
		}
		if fresh == 0 {
			return len(done), nil
		}
	}
	return len(done), nil
}

// niceOf reads a thread's nice value (field 19 of /proc/PID/task/TID/stat).
func niceOf(pid, tid int) (int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(tid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields after its ')'.
	s := string(b)
	i := len(s) - 1
	for i >= 0 && s[i] != ')' {
		i--
	}
	if i < 0 {
		return 0, fmt.Errorf("stat of %d/%d: no ')'", pid, tid)
	}
	f := strings.Fields(s[i+1:])
	// s[i+1:] starts at field 3 (state): nice is field 19 → index 16.
	if len(f) < 17 {
		return 0, fmt.Errorf("stat of %d/%d: %d fields", pid, tid, len(f))
	}
	return strconv.Atoi(f[16])
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
