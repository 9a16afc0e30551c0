// Package leasectl is the operator CLI for Flease groups, wired into coordctl
// as `coordctl lease ...`:
//
//	lease serve --id ID --listen ADDR --peers a=ADDR,b=ADDR,c=ADDR [--ntp HOST:PORT ...] [--unchecked-clock] [--cert F --key F --ca F]
//	lease get|list|acquire|release --endpoint ADDR [RESOURCE]
//	lease hold --endpoint ADDR [--timeout D] RESOURCE -- CMD ARGS...
//
// serve runs one group member (FleasePeer and LeaseAdmin on one listener)
// until interrupted. With --cert/--key/--ca (coordctl's flags, env
// COORD_CERT/KEY/CA) it speaks mutual TLS: members dial each other with
// their certificates and accept only the certificate naming the member
// they dial; every caller must present a CA-signed certificate, and
// FleasePeer requests one naming their sender (lease/tls.go). The other
// commands dial with the same flags. The other commands talk to a member's LeaseAdmin. hold
// runs CMD while the member holds the lease for this call, with
// COORD_LEASE_EPOCH and COORD_LEASE_RESOURCE in its environment, kills CMD
// the moment the lease may be lost, releases it when CMD exits, and returns
// an *ExitError carrying CMD's exit code.
package leasectl

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// ExitError carries the exit code `lease hold` should exit with (CMD's own,
// or 128+signal when CMD was killed). coordctl's main should os.Exit(Code).
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// ExitCode returns the process exit code for an error from Command: 0 for
// nil, the code of an *ExitError, else 1.
func ExitCode(err error) int {
	var e *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.Code
	}
	return 1
}

// Command returns the `lease` command tree.
func Command() *cobra.Command {
	c := &cobra.Command{
		Use:   "lease",
		Short: "Flease lease groups: run a member, inspect and hold leases",
	}
	addTLSFlags(c)
	c.AddCommand(serveCmd(), getCmd(), listCmd(), acquireCmd(), releaseCmd(), holdCmd())
	for _, sub := range c.Commands() {
		sub.SilenceUsage = true // runtime errors are not usage errors
	}
	return c
}
