//go:build linux

package par

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data (not its timestamps).
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
