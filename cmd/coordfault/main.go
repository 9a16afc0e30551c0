// Command coordfault runs the PAR fault-injection matrix (design par.md §5)
// on in-process 3-node clusters over real loopback TCP, once with PAR and
// once with plain raft-boltdb, and prints per family Total / Correct /
// Unavailable / Unsafe / Unavailable-but-recoverable.
//
//	coordfault --family A --count 200 --seed 1
//	coordfault --family A --case 1234 -v     # one case, reproducible
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"coord/coord/par/parfault"
)

func main() {
	parfault.ServeEIOFSIfChild() // family K's FUSE server runs as a child of this binary
	families := flag.String("family", "A,B,C,D,E,F,G,H,I,J,K", "families to run (A: targeted entries, B: random blocks, C: uncommitted tails, D: snapshots, E: term/vote copies, F: file-system faults, G: crash states, H: runtime latent faults, I: bbolt structural pages, J: lost node, K: EIO on raft.db, needs FUSE)")
	seed := flag.Uint64("seed", 1, "seed for sampling cases")
	count := flag.Int("count", 100, "cases per family (0: the whole family)")
	one := flag.Int("case", -1, "run only this case id (with one --family)")
	modes := flag.String("modes", "par,plain", "storage modes to run")
	verbose := flag.Bool("v", false, "print every case")
	parallel := flag.Int("parallel", 3, "clusters running cases at once")
	recoverTimeout := flag.Duration("recover-timeout", 1500*time.Millisecond, "PAR pre-start recovery bound per node")
	flag.BoolVar(&dGapOnly, "gap-only", false, "family D: run only the cases that need a gap filled from a peer's log (parfault.DCase.GapNeedsEntries)")
	flag.Parse()
	if err := run(*families, *seed, *count, *one, *modes, *verbose, *parallel, *recoverTimeout); err != nil {
		fmt.Fprintln(os.Stderr, "coordfault:", err)
		os.Exit(1)
	}
}

func run(families string, seed uint64, count, one int, modes string, verbose bool, parallel int, recoverTimeout time.Duration) error {
	ctx := context.Background()
	fmt.Printf("coordfault --family %s --seed %d --count %d --modes %s\n", families, seed, count, modes)
	fmt.Printf("%-6s %-6s %6s %8s %12s %7s %28s %22s\n", "mode", "family", "Total", "Correct", "Unavailable", "Unsafe", "Unavailable-but-recoverable", "Unavailable-by-design")
	for _, mode := range strings.Split(modes, ",") {
		dir, err := os.MkdirTemp("", "coordfault-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		var hs []*parfault.Harness
		for k := 0; k < max(1, parallel); k++ {
			h, err := parfault.New(ctx, parfault.Options{Dir: dir + fmt.Sprint("/h", k), Plain: mode == "plain", RecoverTimeout: recoverTimeout, Avail: 6 * time.Second})
			if err != nil {
				return fmt.Errorf("%s: %w", mode, err)
			}
			hs = append(hs, h)
		}
		for _, fam := range strings.Split(families, ",") {
			if fam == "D" { // family_d.go
				if err := runD(ctx, dir, mode, seed, count, one, verbose, parallel, recoverTimeout); err != nil {
					return err
				}
				continue
			}
			if fam == "E" && mode == "plain" {
				fmt.Printf("%-6s %-6s %s\n", mode, fam, "n/a (plain keeps term/vote inside raft.db)")
				continue
			}
			if fam == "B" && mode == "plain" {
				fmt.Printf("%-6s %-6s %s\n", mode, fam, "n/a (a random block makes plain bbolt panic in its own goroutine, which kills the in-process harness)")
				continue
			}
			if fam == "I" && mode == "plain" {
				fmt.Printf("%-6s %-6s %s\n", mode, fam, "n/a (plain raft-boltdb loops on a damaged freelist and panics on damaged pages outside any guard)")
				continue
			}
			if fam == "J" && mode == "plain" {
				fmt.Printf("%-6s %-6s %s\n", mode, fam, "n/a (plain has no identity: a wiped node always starts fresh)")
				continue
			}
			if fam == "K" && mode == "plain" {
				fmt.Printf("%-6s %-6s %s\n", mode, fam, "n/a (an EIO under plain bbolt's mmap is a SIGBUS outside any guard: it kills the in-process harness)")
				continue
			}
			if fam == "K" {
				if err := parfault.EIOAvailable(); err != nil {
					fmt.Printf("%-6s %-6s skipped: %v\n", mode, fam, err)
					continue
				}
			}
			if fam == "G" && mode == "plain" {
				fmt.Printf("%-6s %-6s %s\n", mode, fam, "n/a (the crash states are defined on par's journal)")
				continue
			}
			if fam == "F" && mode == "plain" {
				// A truncated raft.db makes plain bbolt SIGBUS, which kills
				// the whole process and with it every in-process node.
				fmt.Printf("%-6s %-6s %s\n", mode, fam, "n/a (plain bbolt SIGBUS-crashes the in-process harness)")
				continue
			}
			cases := parfault.Cases(fam, seed, count, 4)
			if one >= 0 {
				cases = nil
				for _, c := range parfault.Cases(fam, 0, 0, 4) {
					if c.ID == one {
						cases = append(cases, c)
					}
				}
			}
			start := time.Now()
			t, results := parfault.RunParallel(ctx, hs, cases)
			if verbose {
				for _, r := range results {
					fmt.Printf("case %-28s recoverable=%-5v by-design=%-5v %-11s %6dms repairs=%d bytes=%d %s\n", r.Case, r.Recoverable, r.ByDesign, r.Outcome, r.Took.Milliseconds(), r.Repairs, r.RepairedBytes, r.Detail)
				}
			}
			fmt.Printf("%-6s %-6s %6d %8d %12d %7d %28d %22d   (%s)\n", mode, fam, t.Total, t.Correct, t.Unavailable, t.Unsafe, t.UnavailableRecoverable, t.UnavailableByDesign, time.Since(start).Round(time.Second))
		}
	}
	return nil
}
