package leasectl

import (
	"fmt"
	"io"
	"log/slog"

	"coord/fuse/leaseview"
	"coord/lease"
)

// mountView serves n's leases as files at dir (serve --mount DIR) and
// returns the function that unmounts them; cat FILE shows holder, epoch
// and expiry, flock FILE -c CMD holds the lease while CMD runs.
func mountView(dir string, n *lease.Node, out io.Writer, log *slog.Logger) (func(), error) {
	v, err := leaseview.Mount(dir, n)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "leases mounted at %s\n", dir)
	return func() {
		if err := v.Close(); err != nil {
			log.Warn("unmount lease view", "dir", dir, "err", err)
		}
	}, nil
}
