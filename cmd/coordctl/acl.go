package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"coord/client"
)

// aclCmds are setacl, getacl and whoami.
func (a *app) aclCmds() []*cobra.Command {
	var version int64
	set := &cobra.Command{
		Use:   "setacl PATH ACL",
		Short: `replace a node's ACL, e.g. "x509:alice:rwcda,group:ops:r" ("" opens it)`,
		Long: `ACL is a comma-separated list of ID:PERMS. IDs: world:anyone, auth (any
authenticated caller), x509:CN, user:NAME, group:NAME (a certificate OU),
peer:NAME. PERMS: letters of rwcda (read, write, create, delete, admin)
or all. An empty ACL opens the node to everyone. Needs admin on the node.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			acl, err := client.ParseACL(args[1])
			if err != nil {
				return usageError{fmt.Errorf("setacl: %v", err)}
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				st, err := cl.SetACL(ctx, args[0], acl, version)
				if err != nil {
					return fail("setacl "+args[0], err)
				}
				fmt.Fprintf(a.stdout, "aclVersion %d\n", st.ACLVersion)
				return nil
			})
		},
	}
	set.Flags().Int64Var(&version, "acl-version", -1, "expected ACL version (-1: any)")
	get := &cobra.Command{
		Use:   "getacl PATH",
		Short: "print a node's ACL, one ID PERMS line each",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				acl, st, err := cl.GetACL(ctx, args[0])
				if err != nil {
					return fail("getacl "+args[0], err)
				}
				if a.output == "json" {
					type entry struct {
						ID    string `json:"id"`
						Perms string `json:"perms"`
					}
					out := struct {
						ACL        []entry `json:"acl"`
						ACLVersion int64   `json:"aclVersion"`
					}{ACLVersion: st.ACLVersion}
					for _, e := range acl {
						out.ACL = append(out.ACL, entry{e.ID, e.Perms.String()})
					}
					return a.json(out)
				}
				for _, e := range acl {
					fmt.Fprintf(a.stdout, "%s %s\n", e.ID, e.Perms)
				}
				return nil
			})
		},
	}
	a.addOutput(get)
	who := &cobra.Command{
		Use:   "whoami",
		Short: "print the identity the server sees for these flags",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				ids, super, err := cl.WhoAmI(ctx)
				if err != nil {
					return fail("whoami", err)
				}
				if len(ids) == 0 {
					fmt.Fprintln(a.stdout, "anonymous")
				}
				for _, id := range ids {
					fmt.Fprintln(a.stdout, id)
				}
				if super {
					fmt.Fprintln(a.stdout, "(superuser)")
				}
				return nil
			})
		},
	}
	return []*cobra.Command{set, get, who}
}
