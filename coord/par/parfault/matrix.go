package parfault

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
)

// Cases returns the reproducible case list for family ("A", "E", "F" or "G"),
// count cases drawn with seed (count <= 0: the whole family).
func Cases(family string, seed uint64, count, entries int) []Case {
	var all []Case
	switch family {
	case "A":
		n := uint(1) << entries
		id := 0
		for a := uint(0); a < n; a++ {
			for b := uint(0); b < n; b++ {
				for c := uint(0); c < n; c++ {
					all = append(all, Case{Family: "A", ID: id, Mask: [Nodes]uint{a, b, c}})
					id++
				}
			}
		}
	case "G":
		id := 0
		for a := 0; a < crashKinds; a++ {
			for b := 0; b < crashKinds; b++ {
				for c := 0; c < crashKinds; c++ {
					all = append(all, Case{Family: "G", ID: id, Crash: [Nodes]int{a, b, c}})
					id++
				}
			}
		}
	case "F":
		id := 0
		for a := 0; a < fsKinds; a++ {
			for b := 0; b < fsKinds; b++ {
				for c := 0; c < fsKinds; c++ {
					all = append(all, Case{Family: "F", ID: id, FS: [Nodes]int{a, b, c}})
					id++
				}
			}
		}
	case "J":
		all = jCases()
	case "I":
		all = iCases()
	case "C":
		all = cCases()
	case "H":
		all = hCases()
	case "K":
		all = kCases()
	case "B":
		for i := 0; i < bCount; i++ {
			all = append(all, bCase(i))
		}
	case "E":
		id := 0
		for a := 0; a < 4; a++ {
			for b := 0; b < 4; b++ {
				for c := 0; c < 4; c++ {
					all = append(all, Case{Family: "E", ID: id, Meta: [Nodes]int{a, b, c}})
					id++
				}
			}
		}
	}
	if count <= 0 || count >= len(all) {
		return all
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:count]
}

// Tally is one family's row.
type Tally struct {
	Total, Correct, Unavailable, Unsafe, UnavailableRecoverable int
	// UnavailableByDesign counts Unavailable cases the design expects to
	// stay unavailable (Result.ByDesign): part of Unavailable, never of
	// UnavailableRecoverable.
	UnavailableByDesign int
}

func (t *Tally) Add(r Result) {
	t.Total++
	switch r.Outcome {
	case Correct:
		t.Correct++
	case Unavailable:
		t.Unavailable++
		if r.ByDesign {
			t.UnavailableByDesign++
		} else if r.Recoverable {
			t.UnavailableRecoverable++
		}
	case Unsafe:
		t.Unsafe++
	}
}

// RunAll runs cases and writes one line per case to w (nil: quiet).
func (h *Harness) RunAll(ctx context.Context, cases []Case, w io.Writer) (Tally, []Result) {
	var t Tally
	var out []Result
	for _, c := range cases {
		if ctx.Err() != nil {
			break
		}
		r := h.Run(ctx, c)
		t.Add(r)
		out = append(out, r)
		if w != nil {
			fmt.Fprintf(w, "case %-28s recoverable=%-5v %-11s %6dms %s\n", c, r.Recoverable, r.Outcome, r.Took.Milliseconds(), r.Detail)
		}
	}
	return t, out
}

// RunParallel runs cases spread over several harnesses (each on its own
// three addresses) at once; results come back in case order. Cases spend
// most of their time waiting (elections, recovery timeouts), so this cuts
// wall time even on few cores.
func RunParallel(ctx context.Context, hs []*Harness, cases []Case) (Tally, []Result) {
	out := spread(ctx, hs, cases, (*Harness).Run)
	var t Tally
	for _, r := range out {
		t.Add(r)
	}
	return t, out
}

// spread runs each case on whichever worker is free, each worker one case
// at a time, and returns the results in case order. Cases not started
// when ctx ends keep their zero result.
func spread[W, C, R any](ctx context.Context, workers []W, cases []C, run func(W, context.Context, C) R) []R {
	out := make([]R, len(cases))
	next := make(chan int)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = run(w, ctx, cases[i])
			}
		}()
	}
	for i := range cases {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}
