package tree

import "strconv"

// SequenceDigits is the minimum width of a sequential node's suffix. The
// counter is a uint64 kept in the parent; it never wraps (ZooKeeper's is an
// int32), and past 10 digits the suffix simply grows.
const SequenceDigits = 10

// sequentialName appends the zero-padded counter to p, as
// fmt.Sprintf("%s%010d", p, seq) does.
func sequentialName(p string, seq uint64) string {
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], seq, 10)
	b := make([]byte, 0, len(p)+max(len(d), SequenceDigits))
	b = append(b, p...)
	for i := len(d); i < SequenceDigits; i++ {
		b = append(b, '0')
	}
	return string(append(b, d...))
}
