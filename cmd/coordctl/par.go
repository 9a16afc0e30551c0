package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"coord/coord/par"
	"coord/proto/parpb"
)

// parCmd is `coordctl par ...`: protocol-aware recovery (docs/PAR.md).
func (a *app) parCmd() *cobra.Command {
	c := &cobra.Command{Use: "par", Short: "protocol-aware recovery: status of each node, offline inspection of a data dir, lost-node recovery"}
	c.AddCommand(a.parStatusCmd(), a.parInspectCmd(), a.parRecoverCmd())
	return c
}

func (a *app) parStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "print each endpoint's PAR counters (faulty entries, repairs, truncations, scrub progress)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
			defer cancel()
			out := cmd.OutOrStdout()
			var errs []error
			for _, ep := range strings.Split(a.endpoints, ",") {
				ep = strings.TrimSpace(ep)
				if ep == "" {
					continue
				}
				cc, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", ep, err))
					continue
				}
				st, err := parpb.NewPeerRepairClient(cc).Status(ctx, &parpb.StatusRequest{})
				cc.Close()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w (plain storage, or not reachable)", ep, err))
					continue
				}
				fmt.Fprintf(out, "%s (%s): term=%d amnesic=%v meta_degraded=%v log=[%d,%d] faulty=%d repairs=%d (%d bytes) repair_failures=%d truncations=%d adopted=%d scrub=%d/%d passes=%d\n",
					st.Node, ep, st.DurableTerm, st.Amnesic, st.MetaDegraded, st.FirstIndex, st.LastIndex, st.EntriesFaulty,
					st.Repairs, st.RepairedBytes, st.RepairFailures, st.Truncations, st.Adopted, st.ScrubPosition, st.ScrubLast, st.ScrubPasses)
			}
			return errors.Join(errs...)
		},
	}
}

func (a *app) parInspectCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "inspect --data-dir DIR",
		Short: "classify a STOPPED node's raft data offline (verifies every entry; may re-adopt identifiers and drop a torn tail, as start-up would)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError{errors.New("par inspect: --data-dir is required")}
			}
			st, err := par.Open(par.Config{Dir: dir, Name: "inspect"})
			if err != nil {
				return fmt.Errorf("par inspect %s: %w", dir, err)
			}
			defer st.Close()
			r := st.Report()
			first, _ := st.Log.FirstIndex()
			last, _ := st.Log.LastIndex()
			term, sane := st.Stable.DurableTerm()
			fmt.Fprintf(cmd.OutOrStdout(), "log=[%d,%d] checked=%d faulty=%v adopted=%d torn_discarded=%d compactions_finished=%d bolt_quarantined=%v term=%d amnesic=%v meta_degraded=%v\n",
				first, last, r.Checked, r.Faulty, r.Adopted, r.TornDiscarded, r.Compacted, r.BoltRebuilt, term, !sane, st.Stable.Degraded())
			return nil
		},
	}
	c.Flags().StringVar(&dir, "data-dir", "", "the node's data directory (the node must be stopped)")
	return c
}
