package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"coord/coord/par/parfault"
)

// dGapOnly (--gap-only) keeps only the family D cases that need a gap
// filled from a peer's log.
var dGapOnly bool

// runD runs family D (snapshots), which has its own base state (a
// multi-chunk snapshot at the same index on every node) and harness.
func runD(ctx context.Context, dir, mode string, seed uint64, count, one int, verbose bool, parallel int, recoverTimeout time.Duration) error {
	var ds []*parfault.DHarness
	for k := 0; k < max(1, parallel); k++ {
		d, err := parfault.NewD(ctx, parfault.Options{Dir: filepath.Join(dir, fmt.Sprint("d", k)), Plain: mode == "plain",
			RecoverTimeout: recoverTimeout, Avail: 6 * time.Second})
		if err != nil {
			return fmt.Errorf("%s D: %w", mode, err)
		}
		ds = append(ds, d)
	}
	cases := parfault.DCases(seed, count)
	if dGapOnly {
		var keep []parfault.DCase
		for _, c := range cases {
			if c.GapNeedsEntries() {
				keep = append(keep, c)
			}
		}
		cases = keep
	}
	if one >= 0 {
		c, ok := parfault.DCaseByID(one)
		if !ok {
			return fmt.Errorf("no family D case %d", one)
		}
		cases = []parfault.DCase{c}
	}
	start := time.Now()
	t, results := parfault.RunParallelD(ctx, ds, cases)
	gapEntries := 0
	for _, r := range results {
		if r.Recoverable && r.Outcome == parfault.Unavailable && r.Case.GapNeedsEntries() {
			gapEntries++
		}
		if verbose {
			fmt.Printf("case %-52s recoverable=%-5v %-11s %6dms chunk=%d whole=%d meta=%d quarantined=%d entries=%d gapfill=%d bytes=%d %s\n",
				r.Case, r.Recoverable, r.Outcome, r.Took.Milliseconds(), r.ChunkRepairs, r.WholeRepairs, r.MetaRepaired,
				r.Quarantined, r.EntryRepairs, r.GapFilled, r.SnapshotBytes, r.Detail)
		}
	}
	fmt.Printf("%-6s %-6s %6d %8d %12d %7d %28d %22d   (%s; %d of the unavailable-but-recoverable need log entries to close a gap)\n",
		mode, "D", t.Total, t.Correct, t.Unavailable, t.Unsafe, t.UnavailableRecoverable, t.UnavailableByDesign, time.Since(start).Round(time.Second), gapEntries)
	return nil
}
