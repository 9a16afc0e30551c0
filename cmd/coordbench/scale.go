package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"coord/client"
)

// ScaleResult is what `coordbench scale` measured.
type ScaleResult struct {
	Znodes         int     `json:"znodes"`
	ValueBytes     int     `json:"value_bytes"`
	PopulateS      float64 `json:"populate_s"`
	ListChildren   int     `json:"list_children"`
	ListS          float64 `json:"list_s"`
	SnapshotBytes  int64   `json:"snapshot_bytes"`
	SnapshotS      float64 `json:"snapshot_s"`
	ServerRSSBytes int64   `json:"server_rss_bytes,omitempty"`
}

// runScale fills a running cluster with many znodes (multis of 1000
// creates from several goroutines; one parent holds --big of them), then
// times a listing of that parent and a snapshot stream. The server's RSS
// is read from --pid's /proc status when given (a local coordd).
func runScale(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coordbench scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	eps := fs.String("endpoints", "127.0.0.1:4180", "servers to drive")
	n := fs.Int("znodes", 1_000_000, "znodes to create")
	big := fs.Int("big", 100_000, "of which under one parent (/scale/big), listed at the end")
	size := fs.Int("value-size", 100, "bytes per znode")
	workers := fs.Int("workers", 8, "concurrent writers")
	pid := fs.Int("pid", 0, "a local coordd's pid, to report its RSS")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *n < 1 || *big < 0 || *big > *n || *size < 0 || *workers < 1 {
		fmt.Fprintln(stderr, "coordbench scale: want --znodes >= 1, 0 <= --big <= --znodes, --value-size >= 0, --workers >= 1")
		return 2
	}
	ctx := context.Background()
	cfg := client.DefaultConfig()
	cfg.Endpoints = strings.Split(*eps, ",")
	cfg.RequestTimeout = time.Minute
	c, err := client.New(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "coordbench scale: %v\n", err)
		return 1
	}
	defer c.Close(ctx)
	for _, p := range []string{"/scale", "/scale/big", "/scale/rest"} {
		if _, _, err := c.Create(ctx, p, nil, nil); err != nil {
			fmt.Fprintf(stderr, "coordbench scale: create %s: %v (start from an empty cluster)\n", p, err)
			return 1
		}
	}
	value := make([]byte, *size)
	var next atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	const batch = 1000
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := int(next.Add(batch)) - batch
				if from >= *n || firstErr.Load() != nil {
					return
				}
				var ops []client.Op
				for i := from; i < min(from+batch, *n); i++ {
					dir := "/scale/rest"
					if i < *big {
						dir = "/scale/big"
					}
					ops = append(ops, client.CreateOp(fmt.Sprintf("%s/n%07d", dir, i), value, nil))
				}
				if _, err := c.Multi(ctx, ops...); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		fmt.Fprintf(stderr, "coordbench scale: populate: %v\n", err)
		return 1
	}
	r := ScaleResult{Znodes: *n, ValueBytes: *size, PopulateS: time.Since(start).Seconds()}
	t := time.Now()
	names, _, err := c.Children(ctx, "/scale/big", nil)
	if err != nil {
		fmt.Fprintf(stderr, "coordbench scale: list: %v\n", err)
		return 1
	}
	r.ListChildren, r.ListS = len(names), time.Since(t).Seconds()
	t = time.Now()
	if r.SnapshotBytes, err = c.Snapshot(ctx, io.Discard); err != nil {
		fmt.Fprintf(stderr, "coordbench scale: snapshot: %v\n", err)
		return 1
	}
	r.SnapshotS = time.Since(t).Seconds()
	if *pid > 0 {
		r.ServerRSSBytes = rssOf(*pid)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "populate %d znodes of %d B\t%.1f s\n", r.Znodes, r.ValueBytes, r.PopulateS)
	fmt.Fprintf(tw, "list %d children\t%.2f s\n", r.ListChildren, r.ListS)
	fmt.Fprintf(tw, "snapshot stream (%d MB)\t%.2f s\n", r.SnapshotBytes>>20, r.SnapshotS)
	if r.ServerRSSBytes > 0 {
		fmt.Fprintf(tw, "server RSS\t%d MB (%d B per znode)\n", r.ServerRSSBytes>>20, r.ServerRSSBytes/int64(r.Znodes))
	}
	tw.Flush()
	return 0
}

// rssOf reads VmRSS of a local process (0 when unknown).
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
