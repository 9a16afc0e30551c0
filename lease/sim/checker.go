package sim

import (
	"fmt"
	"sort"
)

// tenure is one holder's use of one lease epoch, in true time [start, end).
type tenure struct {
	res        string
	node       int
	inc        uint64
	epoch      uint64
	start, end int64
	open       bool
}

// checker is the true-time oracle: it records validity intervals and checks
// mutual exclusion and epoch order at the end.
type checker struct {
	tenures []tenure
	open    map[[2]int]int // (node, resource index) → index into tenures
}

func newChecker() *checker { return &checker{open: make(map[[2]int]int)} }

// observe records that node holds res with (inc, epoch), valid over
// [now, end) as far as is known now.
func (c *checker) observe(node, ri int, res string, inc, epoch uint64, now, end int64) {
	k := [2]int{node, ri}
	if i, ok := c.open[k]; ok {
		t := &c.tenures[i]
		if t.inc == inc && t.epoch == epoch {
			if t.end >= now && end > t.end { // contiguous extension (renewal)
				t.end = end
			}
			return
		}
		c.closeAt(node, ri, now)
	}
	if end <= now {
		return
	}
	c.tenures = append(c.tenures, tenure{res: res, node: node, inc: inc, epoch: epoch, start: now, end: end, open: true})
	c.open[k] = len(c.tenures) - 1
}

// closeAt ends node's tenure on resource ri at now (release, loss, crash).
func (c *checker) closeAt(node, ri int, now int64) {
	k := [2]int{node, ri}
	if i, ok := c.open[k]; ok {
		t := &c.tenures[i]
		t.end = min(t.end, now)
		t.open = false
		delete(c.open, k)
	}
}

// verify returns every violation: overlapping validity of two tenures of one
// resource, and epochs that do not strictly increase in start order.
func (c *checker) verify() []string {
	by := map[string][]tenure{}
	for _, t := range c.tenures {
		if t.end > t.start {
			by[t.res] = append(by[t.res], t)
		}
	}
	var bad []string
	for res, ts := range by {
		sort.Slice(ts, func(i, j int) bool { return ts[i].start < ts[j].start })
		endT, epochT := ts[0], ts[0] // earlier tenures with the latest end / highest epoch
		for _, t := range ts[1:] {
			if t.start < endT.end {
				bad = append(bad, fmt.Sprintf("%s: node %d epoch %d valid [%d,%d) overlaps node %d epoch %d valid [%d,%d)",
					res, t.node, t.epoch, t.start, t.end, endT.node, endT.epoch, endT.start, endT.end))
			}
			if t.epoch <= epochT.epoch {
				bad = append(bad, fmt.Sprintf("%s: epoch not increasing: node %d epoch %d from %d after node %d epoch %d from %d",
					res, t.node, t.epoch, t.start, epochT.node, epochT.epoch, epochT.start))
			}
			if t.end > endT.end {
				endT = t
			}
			if t.epoch > epochT.epoch {
				epochT = t
			}
		}
	}
	sort.Strings(bad)
	return bad
}
