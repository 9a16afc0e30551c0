package leasectl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"coord/proto/leasepb"
)

func dial(cmd *cobra.Command, endpoint string) (leasepb.LeaseAdminClient, func(), error) {
	creds, err := dialCreds(cmd)
	if err != nil {
		return nil, nil, err
	}
	cc, err := grpc.NewClient(endpoint, creds)
	if err != nil {
		return nil, nil, err
	}
	return leasepb.NewLeaseAdminClient(cc), func() { cc.Close() }, nil
}

func printInfo(w io.Writer, li *leasepb.LeaseInfo) {
	switch {
	case li.GetHolder() == "":
		fmt.Fprintf(w, "%s\tfree\n", li.GetResource())
	case li.GetReleased():
		fmt.Fprintf(w, "%s\treleased\tepoch=%d\tby=%s\n", li.Resource, li.Epoch, li.Holder)
	default:
		fmt.Fprintf(w, "%s\tholder=%s\tepoch=%d\texpiry=%s\n", li.Resource, li.Holder, li.Epoch,
			time.Unix(0, li.ExpiryUnixNanos).UTC().Format(time.RFC3339Nano))
	}
}

// clientCmd builds a command that needs --endpoint and runs f with a client.
func clientCmd(use, short string, args cobra.PositionalArgs, f func(ctx context.Context, cmd *cobra.Command, c leasepb.LeaseAdminClient, args []string) error) *cobra.Command {
	var endpoint string
	var timeout time.Duration
	c := &cobra.Command{
		Use: use, Short: short, Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, closeFn, err := dial(cmd, endpoint)
			if err != nil {
				return err
			}
			defer closeFn()
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			return f(ctx, cmd, cl, args)
		},
	}
	c.Flags().StringVar(&endpoint, "endpoint", "127.0.0.1:7400", "LeaseAdmin address of a group member")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long (0: never)")
	return c
}

func getCmd() *cobra.Command {
	var local bool
	c := clientCmd("get --endpoint ADDR RESOURCE", "Show the holder of a resource (a linearizable read unless --local)", cobra.ExactArgs(1),
		func(ctx context.Context, cmd *cobra.Command, c leasepb.LeaseAdminClient, args []string) error {
			r, err := c.Get(ctx, &leasepb.GetRequest{Resource: args[0], Local: local})
			if err != nil {
				return err
			}
			printInfo(cmd.OutOrStdout(), r.Lease)
			return nil
		})
	c.Flags().BoolVar(&local, "local", false, "answer from the member's learned cache (no round; may be stale)")
	return c
}

func listCmd() *cobra.Command {
	return clientCmd("list --endpoint ADDR", "List the resources a member has seen, from its learned cache", cobra.NoArgs,
		func(ctx context.Context, cmd *cobra.Command, c leasepb.LeaseAdminClient, _ []string) error {
			r, err := c.List(ctx, &leasepb.ListRequest{})
			if err != nil {
				return err
			}
			for _, li := range r.Leases {
				printInfo(cmd.OutOrStdout(), li)
			}
			return nil
		})
}

func acquireCmd() *cobra.Command {
	var try bool
	c := clientCmd("acquire --endpoint ADDR RESOURCE", "Make the member acquire RESOURCE and keep renewing it until release", cobra.ExactArgs(1),
		func(ctx context.Context, cmd *cobra.Command, c leasepb.LeaseAdminClient, args []string) error {
			st, err := c.Acquire(ctx, &leasepb.AcquireRequest{Resource: args[0], Try: try})
			if err != nil {
				return err
			}
			ev, err := st.Recv()
			if err != nil {
				return err
			}
			printInfo(cmd.OutOrStdout(), ev.Lease)
			return nil
		})
	c.Flags().BoolVar(&try, "try", false, "one attempt: fail if held elsewhere")
	return c
}

func releaseCmd() *cobra.Command {
	return clientCmd("release --endpoint ADDR RESOURCE", "Release a lease acquired with `lease acquire` on that member", cobra.ExactArgs(1),
		func(ctx context.Context, cmd *cobra.Command, c leasepb.LeaseAdminClient, args []string) error {
			_, err := c.Release(ctx, &leasepb.ReleaseRequest{Resource: args[0]})
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\treleased\n", args[0])
			}
			return err
		})
}
