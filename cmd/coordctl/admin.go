package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"coord/client"
)

func (a *app) printMembers(ms []client.Member) error {
	if a.output == "json" {
		return a.json(toMembersJSON(ms))
	}
	writeMembers(a.stdout, ms)
	return nil
}

func (a *app) membersCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "members",
		Short: "list members (subcommands add and remove change them)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				ms, err := cl.Members(ctx)
				if err != nil {
					return fail("members", err)
				}
				return a.printMembers(ms)
			})
		},
	}
	a.addOutput(c)
	var nonVoter bool
	add := &cobra.Command{
		Use:   "add [--non-voter] NAME ADDR",
		Short: "add a member (start it first with coordd --join)",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				ms, err := cl.AddMember(ctx, args[0], args[1], nonVoter)
				if err != nil {
					return fail("members add "+args[0], err)
				}
				return a.printMembers(ms)
			})
		},
	}
	add.Flags().BoolVar(&nonVoter, "non-voter", false, "replicate without voting")
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "remove a member",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				ms, err := cl.RemoveMember(ctx, args[0])
				if err != nil {
					return fail("members remove "+args[0], err)
				}
				return a.printMembers(ms)
			})
		},
	}
	c.AddCommand(add, remove)
	return c
}

func (a *app) statusCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "status",
		Short: "show the connected server's view: state, leader, term, indexes, members",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				st, err := cl.Status(ctx)
				if err != nil {
					return fail("status", err)
				}
				if a.output == "json" {
					return a.json(toStatusJSON(st))
				}
				writeStatus(a.stdout, st)
				return nil
			})
		},
	}
	a.addOutput(c)
	return c
}

func (a *app) snapshotCmd() *cobra.Command {
	c := &cobra.Command{Use: "snapshot", Short: "snapshot commands"}
	c.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "save a consistent snapshot of the tree to FILE (via FILE.tmp, fsync, rename)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				n, err := saveSnapshot(ctx, cl, file)
				if err != nil {
					return fail("snapshot save "+file, err)
				}
				fmt.Fprintf(a.stdout, "saved %d bytes to %s\n", n, file)
				return nil
			})
		},
	})
	return c
}

// saveSnapshot streams the snapshot into FILE.tmp, fsyncs it, renames it
// to file and fsyncs the directory: file is complete or absent.
func saveSnapshot(ctx context.Context, cl *client.Client, file string) (int64, error) {
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := cl.Snapshot(ctx, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return n, err
	}
	if d, err := os.Open(filepath.Dir(file)); err == nil {
		d.Sync() // best effort: some filesystems refuse a directory fsync
		d.Close()
	}
	return n, nil
}
