package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"coord/client"
	"coord/lease/leasectl"
)

// app holds one invocation's I/O and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	endpoints      string
	timeout        time.Duration
	output         string
	sessionTimeout time.Duration
	tls            client.TLSFiles
	user           string
	passwordFile   string
	root           *cobra.Command
}

// usageError marks errors that exit 2.
type usageError struct{ error }

// cmdError carries the "verb path" a failure is reported under.
type cmdError struct {
	what string
	err  error
}

func (e *cmdError) Error() string { return e.what + ": " + e.err.Error() }
func (e *cmdError) Unwrap() error { return e.err }

func fail(what string, err error) error {
	if err == nil {
		return nil
	}
	return &cmdError{what: what, err: err}
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *app {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "coordctl",
		Short:         "coordctl talks to a coord cluster",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	def := os.Getenv("COORD_ENDPOINTS")
	if def == "" {
		def = client.DefaultEndpoint
	}
	root.PersistentFlags().StringVar(&a.endpoints, "endpoints", def, "comma-separated server addresses (env COORD_ENDPOINTS)")
	root.PersistentFlags().DurationVar(&a.timeout, "timeout", 10*time.Second, "per-command timeout")
	root.PersistentFlags().DurationVar(&a.sessionTimeout, "session-timeout", 0, "requested session timeout (0: server default)")
	a.addTLSFlags(root)
	a.addLoginFlags(root)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%s: %v", strings.TrimPrefix(c.CommandPath(), "coordctl "), err)}
	})
	root.AddCommand(a.createCmd(), a.getCmd(), a.setCmd(), a.deleteCmd(), a.lsCmd(), a.statCmd(), a.syncCmd(),
		a.txnCmd(), a.membersCmd(), a.statusCmd(), a.snapshotCmd(),
		a.watchCmd(), a.lockCmd(), a.electCmd())
	root.AddCommand(a.mountCmd())
	root.AddCommand(a.parCmd())
	root.AddCommand(leasectl.Command())
	root.AddCommand(a.certsCmd())
	root.AddCommand(a.aclCmds()...)
	root.AddCommand(a.authCmd())
	a.root = root
	return a
}

// execute runs the command line and returns the exit code: 0, 1 for a
// failed command, 2 for a usage error. Every error is one stderr line.
func (a *app) execute(args []string) int {
	a.root.SetArgs(args)
	err := a.root.Execute()
	if err == nil {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code) // the child's own exit code, already reported
	}
	var lexit *leasectl.ExitError
	if errors.As(err, &lexit) {
		if lexit.Msg != "" {
			fmt.Fprintf(a.stderr, "coordctl: %s\n", oneLine(lexit.Msg))
		}
		return leasectl.ExitCode(err) // lease hold: CMD's own code
	}
	fmt.Fprintf(a.stderr, "coordctl: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		return 2
	}
	return 1
}

// usageArgs wraps a cobra argument check so that a wrong argument count is
// a usage error (exit 2) that shows the command's usage line.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{fmt.Errorf("%s: %v (usage: %s)", strings.TrimPrefix(cmd.CommandPath(), "coordctl "), err, cmd.UseLine())}
		}
		return nil
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// addOutput adds -o to a read command.
func (a *app) addOutput(c *cobra.Command) {
	c.Flags().StringVarP(&a.output, "output", "o", "text", "output format: text or json")
}

func (a *app) checkOutput() error {
	if a.output != "text" && a.output != "json" {
		return usageError{fmt.Errorf("-o %q: want text or json", a.output)}
	}
	return nil
}

// config turns the global flags into a client config.
func (a *app) config() (client.Config, error) {
	cfg := client.DefaultConfig()
	cfg.Endpoints = nil
	for _, e := range strings.Split(a.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.Endpoints = append(cfg.Endpoints, e)
		}
	}
	if len(cfg.Endpoints) == 0 {
		return cfg, usageError{errors.New("--endpoints: no address given")}
	}
	if a.timeout <= 0 {
		return cfg, usageError{fmt.Errorf("--timeout %v: want a positive duration", a.timeout)}
	}
	cfg.RequestTimeout = a.timeout
	cfg.DialTimeout = min(cfg.DialTimeout, a.timeout)
	cfg.SessionTimeout = a.sessionTimeout
	if err := a.applyTLS(&cfg); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{fmt.Errorf("--endpoints: %v", strings.ReplaceAll(err.Error(), "\n", "; "))}
	}
	return cfg, nil
}

// client opens a client and a context bounded by --timeout; done closes
// both (closing the session, if the command opened one).
func (a *app) client() (cl *client.Client, ctx context.Context, done func(), err error) {
	cfg, err := a.config()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	c, err := client.New(ctx, cfg)
	if err != nil {
		cancel()
		return nil, nil, nil, usageError{err}
	}
	if err := a.login(ctx, c); err != nil {
		c.Close(ctx)
		cancel()
		return nil, nil, nil, err
	}
	return c, ctx, func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.Close(cctx)
		ccancel()
		cancel()
	}, nil
}

// withClient runs fn with a connected, logged-in client and a context
// bounded by --timeout, and closes the client after it.
func (a *app) withClient(fn func(ctx context.Context, cl *client.Client) error) error {
	cl, ctx, done, err := a.client()
	if err != nil {
		return err
	}
	defer done()
	return fn(ctx, cl)
}

// data resolves a DATA argument: "-" reads stdin.
func (a *app) data(arg string) ([]byte, error) {
	if arg != "-" {
		return []byte(arg), nil
	}
	b, err := io.ReadAll(a.stdin)
	if err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	return b, nil
}
