package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"coord/client"
)

func (a *app) createCmd() *cobra.Command {
	var opts client.CreateOptions
	var hold bool
	c := &cobra.Command{
		Use:   "create [-e] [-s] [--container] [--ttl D] [--hold] PATH [DATA]",
		Short: "create a node and print its path",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := args[0]
			var data []byte
			if len(args) == 2 {
				var err error
				if data, err = a.data(args[1]); err != nil {
					return fail("create "+p, err)
				}
			}
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			created, _, err := cl.Create(ctx, p, data, &opts)
			if err != nil {
				return fail("create "+p, err)
			}
			fmt.Fprintln(a.stdout, created)
			if hold {
				if !opts.Ephemeral {
					return usageError{fmt.Errorf("--hold needs -e")}
				}
				sig := make(chan os.Signal, 1)
				signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
				defer signal.Stop(sig)
				select {
				case <-sig:
				case <-cl.SessionDone():
					return fail("create "+p, client.ErrSessionExpired)
				}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&opts.Ephemeral, "ephemeral", "e", false, "ephemeral: dies with this command's session")
	c.Flags().BoolVarP(&opts.Sequential, "sequential", "s", false, "append a 10-digit sequence number")
	c.Flags().BoolVar(&opts.Container, "container", false, "container: deleted when its last child goes")
	c.Flags().DurationVar(&opts.TTL, "ttl", 0, "TTL node: deleted when unmodified this long and childless")
	c.Flags().BoolVar(&hold, "hold", false, "with -e: keep the session (and node) until interrupted")
	return c
}

func (a *app) getCmd() *cobra.Command {
	var local bool
	c := &cobra.Command{
		Use:   "get PATH",
		Short: "print a node's data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			data, st, err := cl.Get(ctx, args[0], &client.ReadOptions{Local: local})
			if err != nil {
				return fail("get "+args[0], err)
			}
			if a.output == "json" {
				return a.json(map[string]any{"path": args[0], "data": string(data), "stat": statJSON(st)})
			}
			a.stdout.Write(data)
			return nil
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
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := a.data(args[1])
			if err != nil {
				return fail("set "+args[0], err)
			}
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			_, err = cl.Set(ctx, args[0], data, version)
			return fail("set "+args[0], err)
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
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			if recursive {
				_, err = cl.DeleteAll(ctx, args[0], version)
			} else {
				err = cl.Delete(ctx, args[0], version)
			}
			return fail("delete "+args[0], err)
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
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			var out []string
			if recursive {
				err = walk(ctx, cl, args[0], &out)
			} else {
				out, _, err = cl.Children(ctx, args[0], nil)
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
		},
	}
	c.Flags().BoolVarP(&recursive, "recursive", "R", false, "list every descendant's full path, depth first")
	a.addOutput(c)
	return c
}

func walk(ctx context.Context, cl *client.Client, p string, out *[]string) error {
	names, _, err := cl.Children(ctx, p, nil)
	if err != nil {
		return err
	}
	for _, n := range names {
		child := path.Join(p, n)
		*out = append(*out, child)
		if err := walk(ctx, cl, child, out); err != nil && !isNoNode(err) {
			return err
		}
	}
	return nil
}

func (a *app) statCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "stat PATH",
		Short: "print a node's metadata",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			st, err := cl.Exists(ctx, args[0], nil)
			if err == nil && st == nil {
				err = client.ErrNoNode
			}
			if err != nil {
				return fail("stat "+args[0], err)
			}
			if a.output == "json" {
				return a.json(statJSON(st))
			}
			for _, kv := range statLines(st) {
				fmt.Fprintf(a.stdout, "%s = %v\n", kv[0], kv[1])
			}
			return nil
		},
	}
	a.addOutput(c)
	return c
}

func (a *app) syncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sync PATH",
		Short: "make the connected server catch up with the leader",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, done, err := a.client()
			if err != nil {
				return err
			}
			defer done()
			return fail("sync "+args[0], cl.Sync(ctx, args[0]))
		},
	}
}

func statLines(st *client.Stat) [][2]any {
	return [][2]any{
		{"czxid", fmt.Sprintf("%#x", st.Czxid)},
		{"mzxid", fmt.Sprintf("%#x", st.Mzxid)},
		{"pzxid", fmt.Sprintf("%#x", st.Pzxid)},
		{"ctime", st.CTime.UTC().Format(time.RFC3339Nano)},
		{"mtime", st.MTime.UTC().Format(time.RFC3339Nano)},
		{"version", st.Version},
		{"cversion", st.Cversion},
		{"ephemeralOwner", fmt.Sprintf("%#x", st.EphemeralOwner)},
		{"dataLength", st.DataLength},
		{"numChildren", st.NumChildren},
		{"mode", st.Mode},
		{"ttl", st.TTL},
	}
}

func statJSON(st *client.Stat) map[string]any {
	if st == nil {
		return nil
	}
	return map[string]any{
		"czxid": st.Czxid, "mzxid": st.Mzxid, "pzxid": st.Pzxid,
		"ctime": st.CTime.UTC().Format(time.RFC3339Nano), "mtime": st.MTime.UTC().Format(time.RFC3339Nano),
		"version": st.Version, "cversion": st.Cversion, "ephemeralOwner": st.EphemeralOwner,
		"dataLength": st.DataLength, "numChildren": st.NumChildren, "mode": string(st.Mode), "ttlMs": st.TTL.Milliseconds(),
	}
}

func (a *app) json(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
