package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"coord/client"
)

func isNoNode(err error) bool { return errors.Is(err, client.ErrNoNode) }

func (a *app) txnCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "txn",
		Short: "apply ops read from stdin (one per line) atomically",
		Long: `txn reads one op per line from stdin and applies them all or none:
  create [-e] [-s] [--container] [--ttl D] PATH [DATA]
  set [--version N] PATH DATA
  delete [--version N] PATH
  check PATH [VERSION]
Blank lines and lines starting with # are ignored; words are split like a shell's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var lines []txnLine
			sc := bufio.NewScanner(a.stdin)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			for n := 1; sc.Scan(); n++ {
				l, ok, err := parseTxnLine(sc.Text())
				if err != nil {
					return usageError{fmt.Errorf("txn line %d: %v", n, err)}
				}
				if ok {
					lines = append(lines, l)
				}
			}
			if err := sc.Err(); err != nil {
				return fail("txn", err)
			}
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			ops := make([]client.Op, len(lines))
			for i, l := range lines {
				ops[i] = l.op
			}
			res, err := cl.Multi(ctx, ops...)
			if err != nil {
				var me *client.MultiError
				if errors.As(err, &me) && me.Index < len(lines) && !strings.HasPrefix(me.Error(), "op ") {
					l := lines[me.Index]
					return fail("txn", fmt.Errorf("op %d (%s %s): %w", me.Index, l.verb, l.path, me.Err))
				}
				return fail("txn", err)
			}
			for i, r := range res {
				switch lines[i].verb {
				case "create":
					fmt.Fprintf(a.stdout, "created %s\n", r.Path)
				case "set":
					fmt.Fprintf(a.stdout, "set %s version=%d\n", lines[i].path, r.Stat.Version)
				case "delete":
					fmt.Fprintf(a.stdout, "deleted %s\n", lines[i].path)
				case "check":
					fmt.Fprintf(a.stdout, "checked %s version=%d\n", lines[i].path, r.Stat.Version)
				}
			}
			return nil
		},
	}
}

func (a *app) printMembers(ms []client.Member) error {
	if a.output == "json" {
		return a.json(ms)
	}
	for _, m := range ms {
		role := "voter"
		if !m.Voter {
			role = "non-voter"
		}
		if m.Leader {
			role += ",leader"
		}
		fmt.Fprintf(a.stdout, "%s\t%s\t%s\n", m.Name, m.Address, role)
	}
	return nil
}

func (a *app) membersCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "members",
		Short: "list members (subcommands add and remove change them)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			ms, err := cl.Members(ctx)
			if err != nil {
				return fail("members", err)
			}
			return a.printMembers(ms)
		},
	}
	a.addOutput(c)
	var nonVoter bool
	add := &cobra.Command{
		Use:   "add [--non-voter] NAME ADDR",
		Short: "add a member (start it first with coordd --join)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			ms, err := cl.AddMember(ctx, args[0], args[1], nonVoter)
			if err != nil {
				return fail("members add "+args[0], err)
			}
			return a.printMembers(ms)
		},
	}
	add.Flags().BoolVar(&nonVoter, "non-voter", false, "replicate without voting")
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "remove a member",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			ms, err := cl.RemoveMember(ctx, args[0])
			if err != nil {
				return fail("members remove "+args[0], err)
			}
			return a.printMembers(ms)
		},
	}
	c.AddCommand(add, remove)
	return c
}

func (a *app) statusCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "status",
		Short: "show the connected server's view: state, leader, term, indexes, members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			st, err := cl.Status(ctx)
			if err != nil {
				return fail("status", err)
			}
			if a.output == "json" {
				return a.json(st)
			}
			leader := st.Leader
			if leader == "" {
				leader = "(none)"
			}
			fmt.Fprintf(a.stdout, "name: %s\nstate: %s\nleader: %s\nterm: %d\ncommit index: %d\napplied index: %d\nlast log index: %d\nznodes: %d\nmembers:\n",
				st.Name, st.State, leader, st.Term, st.CommitIndex, st.AppliedIndex, st.LastLogIndex, st.Znodes)
			for _, m := range st.Members {
				fmt.Fprintf(a.stdout, "  %s %s voter=%v leader=%v\n", m.Name, m.Address, m.Voter, m.Leader)
			}
			return nil
		},
	}
	a.addOutput(c)
	return c
}

func (a *app) snapshotCmd() *cobra.Command {
	c := &cobra.Command{Use: "snapshot", Short: "snapshot commands"}
	c.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "save a consistent snapshot of the tree to FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".tmp*")
			if err != nil {
				return fail("snapshot save "+file, err)
			}
			defer os.Remove(tmp.Name())
			n, err := cl.Snapshot(ctx, tmp)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp.Name(), file)
			}
			if err != nil {
				return fail("snapshot save "+file, err)
			}
			fmt.Fprintf(a.stdout, "saved %d bytes to %s\n", n, file)
			return nil
		},
	})
	return c
}
