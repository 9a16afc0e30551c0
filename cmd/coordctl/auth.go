package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"coord/client"
)

// addLoginFlags adds --user and --password-file (env COORD_USER,
// COORD_PASSWORD_FILE): log in with a password before the command.
func (a *app) addLoginFlags(root *cobra.Command) {
	root.PersistentFlags().StringVar(&a.user, "user", os.Getenv("COORD_USER"), "log in as this password user (env COORD_USER)")
	root.PersistentFlags().StringVar(&a.passwordFile, "password-file", os.Getenv("COORD_PASSWORD_FILE"), `file holding --user's password ("-": first line of stdin) (env COORD_PASSWORD_FILE)`)
}

// readPassword reads a password from a file or, for "-", stdin's first line.
func (a *app) readPassword(path string) (string, error) {
	if path == "-" {
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("password from stdin: %v", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// login runs after the client is made, when --user is set.
func (a *app) login(ctx context.Context, cl *client.Client) error {
	if a.user == "" {
		return nil
	}
	if a.passwordFile == "" {
		return usageError{errors.New("--user needs --password-file")}
	}
	pw, err := a.readPassword(a.passwordFile)
	if err != nil {
		return usageError{fmt.Errorf("--password-file: %v", err)}
	}
	if _, err := cl.Login(ctx, a.user, pw); err != nil {
		return fail("login "+a.user, err)
	}
	return nil
}

func (a *app) authCmd() *cobra.Command {
	c := &cobra.Command{Use: "auth", Short: "manage password users (superuser only)"}
	var groups string
	add := &cobra.Command{
		Use:   "add-user NAME",
		Short: "add or replace a password user; the password is read from stdin's first line",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := a.readPassword("-")
			if err != nil {
				return usageError{fmt.Errorf("auth add-user: %v", err)}
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				return fail("auth add-user "+args[0], cl.SetUser(ctx, args[0], pw, splitList(groups)))
			})
		},
	}
	add.Flags().StringVar(&groups, "groups", "", "comma-separated groups (ACL id group:NAME)")
	del := &cobra.Command{
		Use:   "delete-user NAME",
		Short: "remove a password user (its tokens live until they expire)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				return fail("auth delete-user "+args[0], cl.DeleteUser(ctx, args[0]))
			})
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "list password users and their groups",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				us, err := cl.ListUsers(ctx)
				if err != nil {
					return fail("auth list", err)
				}
				for _, u := range us {
					fmt.Fprintf(a.stdout, "%s %s\n", u.Name, strings.Join(u.Groups, ","))
				}
				return nil
			})
		},
	}
	c.AddCommand(add, del, list)
	return c
}
