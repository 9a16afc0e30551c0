package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"sort"
	"syscall"

	"github.com/spf13/cobra"

	"coord/client"
)

func (a *app) createCmd() *cobra.Command {
	var opts client.CreateOptions
	var hold bool
	var aclFlag string
	c := &cobra.Command{
		Use:   "create [-e] [-s] [--container] [--ttl D] [--hold] PATH [DATA]",
		Short: "create a node and print its path",
		Args:  usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := args[0]
			if hold && !opts.Ephemeral {
				return usageError{errors.New("create: --hold needs -e")}
			}
			if aclFlag != "" {
				acl, err := client.ParseACL(aclFlag)
				if err != nil {
					return usageError{fmt.Errorf("create --acl: %v", err)}
				}
				opts.ACL = acl
			}
			var sig chan os.Signal
			if hold {
				// Listen before creating: a signal right after the create
				// still closes the session cleanly.
				sig = make(chan os.Signal, 1)
				signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
				defer signal.Stop(sig)
			}
			var data []byte
			if len(args) == 2 {
				var err error
				if data, err = a.data(args[1]); err != nil {
					return fail("create "+p, err)
				}
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				created, _, err := cl.Create(ctx, p, data, &opts)
				if err != nil {
					return fail("create "+p, err)
				}
				fmt.Fprintln(a.stdout, created)
				if hold {
					// The session (and the node) lives until a signal;
					// withClient then closes it.
					select {
					case <-sig:
					case <-cl.SessionDone():
						return fail("create "+p, cl.SessionErr())
					}
				}
				return nil
			})
		},
	}
	c.Flags().BoolVarP(&opts.Ephemeral, "ephemeral", "e", false, "ephemeral: dies with this command's session")
	c.Flags().BoolVarP(&opts.Sequential, "sequential", "s", false, "append a 10-digit sequence number")
	c.Flags().BoolVar(&opts.Container, "container", false, "container: deleted when its last child goes")
	c.Flags().BoolVar(&opts.Directory, "dir", false, "mark the node a directory (as mkdir through a mount does)")
	c.Flags().DurationVar(&opts.TTL, "ttl", 0, "TTL node: deleted when unmodified this long and childless")
	c.Flags().BoolVar(&hold, "hold", false, "with -e: keep the session (and node) until interrupted")
	c.Flags().StringVar(&aclFlag, "acl", "", `the node's ACL, e.g. "creator:all,world:anyone:r" (default: open)`)
	return c
}

func (a *app) getCmd() *cobra.Command {
	var local bool
	c := &cobra.Command{
		Use:   "get PATH",
		Short: "print a node's data",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				data, st, err := cl.Get(ctx, args[0], &client.ReadOptions{Local: local})
				if err != nil {
					return fail("get "+args[0], err)
				}
				if a.output == "json" {
					return a.json(getJSON(args[0], data, st))
				}
				_, err = a.stdout.Write(data)
				return err
			})
		},
	}
	c.Flags().BoolVar(&local, "local", false, "serve from the connected server (not linearizable)")
	a.addOutput(c)
	return c
}

func (a *app) setCmd() *cobra.Command {
	var version int64
	c := &cobra.Command{
		Use:   "set [--version N] PATH DATA",
		Short: "replace a node's data",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := a.data(args[1])
			if err != nil {
				return fail("set "+args[0], err)
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				_, err := cl.Set(ctx, args[0], data, version)
				return fail("set "+args[0], err)
			})
		},
	}
	c.Flags().Int64Var(&version, "version", -1, "expected version (-1: any)")
	return c
}

func (a *app) deleteCmd() *cobra.Command {
	var version int64
	var recursive bool
	c := &cobra.Command{
		Use:   "delete [--version N] [-r] PATH",
		Short: "delete a node (-r: and its subtree, atomically)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				var err error
				if recursive {
					_, err = cl.DeleteAll(ctx, args[0], version)
				} else {
					err = cl.Delete(ctx, args[0], version)
				}
				return fail("delete "+args[0], err)
			})
		},
	}
	c.Flags().Int64Var(&version, "version", -1, "expected version (-1: any)")
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "delete the whole subtree atomically")
	return c
}

func (a *app) lsCmd() *cobra.Command {
	var recursive bool
	c := &cobra.Command{
		Use:   "ls [-R] PATH",
		Short: "list children, one name per line (-R: every descendant's path)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				var err error
				var out []string
				if recursive {
					err = walk(ctx, cl, args[0], &out)
				} else {
					out, _, err = cl.Children(ctx, args[0], nil)
					sort.Strings(out)
				}
				if err != nil {
					return fail("ls "+args[0], err)
				}
				if a.output == "json" {
					if out == nil {
						out = []string{}
					}
					return a.json(out)
				}
				for _, n := range out {
					fmt.Fprintln(a.stdout, n)
				}
				return nil
			})
		},
	}
	c.Flags().BoolVarP(&recursive, "recursive", "R", false, "list every descendant's full path, depth first")
	a.addOutput(c)
	return c
}

// walk appends the full path of every descendant of p, depth first, each
// level sorted. A child deleted during the walk is skipped.
func walk(ctx context.Context, cl *client.Client, p string, out *[]string) error {
	names, _, err := cl.Children(ctx, p, nil)
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		child := path.Join(p, n)
		*out = append(*out, child)
		if err := walk(ctx, cl, child, out); err != nil && !errors.Is(err, client.ErrNoNode) {
			return err
		}
	}
	return nil
}

func (a *app) statCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "stat PATH",
		Short: "print a node's metadata",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				st, err := cl.Exists(ctx, args[0], nil)
				if err == nil && st == nil {
					err = client.ErrNoNode
				}
				if err != nil {
					return fail("stat "+args[0], err)
				}
				if a.output == "json" {
					return a.json(toStatJSON(st))
				}
				writeStat(a.stdout, st)
				return nil
			})
		},
	}
	a.addOutput(c)
	return c
}

func (a *app) syncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sync PATH",
		Short: "make the connected server catch up with the leader",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				return fail("sync "+args[0], cl.Sync(ctx, args[0]))
			})
		},
	}
}
