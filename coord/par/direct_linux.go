//go:build linux

package par

import (
	"os"
	"syscall"
)

// openDirect opens path for O_DIRECT writes (nil when the file system
// refuses O_DIRECT, e.g. tmpfs).
func openDirect(path string) *os.File {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}

// sameDevice reports whether a and b live on one block device.
func sameDevice(a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}
