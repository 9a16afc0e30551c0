package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"coord/coord/par"
)

// parRecoverCmd is `coordctl par recover`: the offline half of PAR's
// lost-node procedure (design §4.8) for a STOPPED node whose data dir was
// wiped or replaced. It demotes the node to a non-voter on the leader,
// asks EVERY other voter for its durable term, writes that term with the
// sentinel vote and the vote quarantine, and a new incarnation whose
// promotion is pending; the node, started normally afterwards, catches up
// and asks to be promoted itself. `coordd --par-recover` does the same in
// one step. Peers are reached in plaintext (for a TLS cluster use
// `coordd --par-recover`, which has the node's peer certificate).
func (a *app) parRecoverCmd() *cobra.Command {
	var dir, name, cluster string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "recover --data-dir DIR --name NAME --initial-cluster n1=HOST:PORT,...",
		Short: "prepare a STOPPED node whose data dir was lost to rejoin safely (demote, learn every voter's term, new incarnation); then start it normally",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || name == "" || cluster == "" {
				return usageError{errors.New("par recover: --data-dir, --name and --initial-cluster are required")}
			}
			var peers []par.Peer
			self := ""
			for _, part := range strings.Split(cluster, ",") {
				n, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
				if !ok || n == "" || addr == "" {
					return usageError{fmt.Errorf("par recover: initial cluster entry %q: want NAME=HOST:PORT", part)}
				}
				if n == name {
					self = addr
					continue
				}
				peers = append(peers, par.Peer{Name: n, Addr: addr})
			}
			if self == "" {
				return usageError{fmt.Errorf("par recover: %s is not in --initial-cluster", name)}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			cl := par.NewClient(name, peers)
			defer cl.Close()
			id, err := par.PrepareLostNode(ctx, par.Config{Dir: dir, Name: name, Addr: self}, cl)
			if err != nil {
				return fmt.Errorf("par recover %s: %w", dir, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: incarnation %d prepared as a non-voter; start coordd normally: it asks to be promoted once it holds index %d\n",
				name, id.Incarnation, id.PromoteAt)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "data-dir", "", "the lost node's (empty or new) data directory; the node must be stopped")
	c.Flags().StringVar(&name, "name", "", "the lost node's server id")
	c.Flags().StringVar(&cluster, "initial-cluster", "", "the cluster's members, NAME=HOST:PORT,... (as given to coordd)")
	c.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the leader and for every other voter")
	return c
}
