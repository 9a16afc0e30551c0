//go:build !linux

package par

import "os"

func fdatasync(f *os.File) error { return f.Sync() }
