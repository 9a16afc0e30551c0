// Package radix is github.com/hashicorp/go-immutable-radix/v2 v2.1.0
// (Mozilla Public License 2.0, see LICENSE in this directory) with its
// mutation-notify machinery removed: no channel per node and per leaf, no
// TrackMutate/Notify/GetWatch/SeekPrefixWatch. coord/tree learns of changes
// from its own command results, never from the radix tree, and the
// channels were a third of a znode's memory. Everything else — the
// immutable tree, transactions that copy the path they write, iterators —
// is upstream's code and upstream's tests (those not about notification).
package radix
