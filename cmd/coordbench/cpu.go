package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU accounting: on a shared 2-core machine throughput swings with the
// neighbours' load, but the CPU each operation costs (user + system time
// of the servers and of this process, divided by the operations in the
// window) is a steadier figure, and it is what caps throughput once the
// cores are full. The servers are named by pid (--server-pids), so the
// same accounting works for coordd, ZooKeeper and etcd processes alike.

// clockTick is USER_HZ, the unit of utime/stime in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clockTick = 100

// cpuSample is CPU time consumed so far.
type cpuSample struct {
	self    time.Duration // this process (servers included with --start)
	servers time.Duration // the --server-pids processes
}

func takeCPU(pids []int) (cpuSample, error) {
	var s cpuSample
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("getrusage: %w", err)
	}
	s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, pid := range pids {
		d, err := procCPU(pid)
		if err != nil {
			return s, err
		}
		s.servers += d
	}
	return s, nil
}

// procCPU reads utime + stime of pid from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server pid %d: %w", pid, err)
	}
	return parseProcStat(string(b))
}

// parseProcStat extracts utime + stime (fields 14 and 15) from a
// /proc/PID/stat line. The command name (field 2) is in parentheses and
// may hold spaces, so fields are counted after its closing parenthesis.
func parseProcStat(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command name in %q", line)
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTick, nil
}

// parsePIDs parses a comma-separated pid list ("" is none).
func parsePIDs(s string) ([]int, error) {
	var pids []int
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--server-pids: %q is not a pid", p)
		}
		if _, err := procCPU(n); err != nil {
			return nil, fmt.Errorf("--server-pids: %w", err)
		}
		pids = append(pids, n)
	}
	return pids, nil
}
