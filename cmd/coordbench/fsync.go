package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"
)

// FsyncResult is one probe of the disk's durable-write rate.
type FsyncResult struct {
	Probe   string  `json:"probe"`
	Ops     int     `json:"ops"`
	OpsPerS float64 `json:"ops_per_sec"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

// runFsync measures the physical floor under every coord write: how many
// small durable writes per second this disk takes. A raft log append is
// one bbolt commit (two fdatasyncs); dividing coord's writes/s by this
// rate shows how many writes group commit puts behind each fsync.
func runFsync(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coordbench fsync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory on the disk to measure (a temporary file is made and removed there)")
	dur := fs.Duration("duration", 3*time.Second, "time per probe")
	size := fs.Int("size", 4096, "bytes per write")
	asJSON := fs.Bool("json", false, "print results as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dur <= 0 || *size <= 0 || *size > 1<<20 {
		fmt.Fprintln(stderr, "coordbench fsync: --duration must be > 0 and --size in 1..1048576")
		return 2
	}
	probes := []struct {
		name string
		run  func(f *os.File, buf []byte, i int) error
		prep func(f *os.File) error
	}{
		{"append + fdatasync (growing file)", func(f *os.File, buf []byte, i int) error {
			if _, err := f.Write(buf); err != nil {
				return err
			}
			return syscall.Fdatasync(int(f.Fd()))
		}, nil},
		{"append + fsync (growing file)", func(f *os.File, buf []byte, i int) error {
			if _, err := f.Write(buf); err != nil {
				return err
			}
			return f.Sync()
		}, nil},
		{"overwrite + fdatasync (preallocated file)", func(f *os.File, buf []byte, i int) error {
			if _, err := f.WriteAt(buf, int64(i%16384)*int64(len(buf))); err != nil {
				return err
			}
			return syscall.Fdatasync(int(f.Fd()))
		}, func(f *os.File) error {
			if err := syscall.Fallocate(int(f.Fd()), 0, 0, 16384*int64(*size)); err != nil {
				return err
			}
			return f.Sync()
		}},
	}
	buf := make([]byte, *size)
	for i := range buf {
		buf[i] = byte(i)
	}
	var results []FsyncResult
	for _, p := range probes {
		f, err := os.CreateTemp(*dir, "coordbench-fsync-*")
		if err != nil {
			fmt.Fprintf(stderr, "coordbench fsync: %v\n", err)
			return 1
		}
		name := f.Name()
		r, err := fsyncProbe(f, buf, *dur, p.prep, p.run)
		f.Close()
		os.Remove(name)
		if err != nil {
			fmt.Fprintf(stderr, "coordbench fsync: %s in %s: %v\n", p.name, filepath.Dir(name), err)
			return 1
		}
		r.Probe = p.name
		results = append(results, r)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(results)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "probe\tops\tops/s\tp50 ms\tp99 ms\tmax ms\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t\n", r.Probe, r.Ops, r.OpsPerS, r.P50ms, r.P99ms, r.MaxMs)
	}
	tw.Flush()
	return 0
}

func fsyncProbe(f *os.File, buf []byte, dur time.Duration, prep func(*os.File) error, op func(*os.File, []byte, int) error) (FsyncResult, error) {
	if prep != nil {
		if err := prep(f); err != nil {
			return FsyncResult{}, err
		}
	}
	var lat []time.Duration
	start := time.Now()
	for i := 0; time.Since(start) < dur; i++ {
		t := time.Now()
		if err := op(f, buf, i); err != nil {
			return FsyncResult{}, err
		}
		lat = append(lat, time.Since(t))
	}
	el := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return FsyncResult{
		Ops:     len(lat),
		OpsPerS: float64(len(lat)) / el.Seconds(),
		P50ms:   ms(lat[len(lat)/2]),
		P99ms:   ms(lat[len(lat)*99/100]),
		MaxMs:   ms(lat[len(lat)-1]),
	}, nil
}
