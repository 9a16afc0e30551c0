package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"coord/client"
	"coord/client/recipe"
)

// longClient opens a client for a command that runs until interrupted:
// its context ends on SIGINT or SIGTERM, not after --timeout.
func (a *app) longClient() (*client.Client, context.Context, func(), error) {
	cfg, err := a.config()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	c, err := client.New(ctx, cfg)
	if err != nil {
		stop()
		return nil, nil, nil, usageError{err}
	}
	return c, ctx, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.Close(cctx)
		cancel()
		stop()
	}, nil
}

func (a *app) watchCmd() *cobra.Command {
	var recursive bool
	var count int
	c := &cobra.Command{
		Use:   "watch [-r] [--count N] PATH",
		Short: "print changes to PATH (-r: and below), one line per event: type path zxid",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, ctx, done, err := a.longClient()
			if err != nil {
				return err
			}
			defer done()
			kind := client.WatchPersistent
			if recursive {
				kind = client.WatchRecursive
			}
			w, err := cl.Watch(ctx, args[0], kind, 0)
			if err != nil {
				return fail("watch "+args[0], err)
			}
			n := 0
			for e := range w.Events {
				fmt.Fprintf(a.stdout, "%s %s %d\n", e.Type, e.Path, e.Zxid)
				if n++; count > 0 && n >= count {
					w.Cancel()
					return nil
				}
			}
			if err := w.Err(); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
				return fail("watch "+args[0], err)
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "watch the whole subtree")
	c.Flags().IntVar(&count, "count", 0, "exit after N events (0: until interrupted)")
	return c
}

func (a *app) lockCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "lock PATH -- CMD [ARGS...]",
		Short: "run CMD holding the lock at PATH (COORD_FENCING_TOKEN in its environment); exit with CMD's code",
		Args:  usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return usageError{errors.New("lock: want PATH -- CMD [ARGS...]")}
			}
			cl, ctx, done, err := a.longClient()
			if err != nil {
				return err
			}
			defer done()
			l := recipe.NewLock(cl, args[0])
			token, err := l.Lock(ctx)
			if err != nil {
				return fail("lock "+args[0], err)
			}
			code, err := runHolding(ctx, a, args[1:], "COORD_FENCING_TOKEN", token, l.Lost())
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if uerr := l.Unlock(uctx); err == nil && uerr != nil && !errors.Is(uerr, recipe.ErrLost) {
				err = uerr
			}
			if err != nil {
				return fail("lock "+args[0], err)
			}
			if code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	return c
}

// exitCode makes coordctl exit with a child's code without a message.
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// runHolding runs argv with env[name]=token until it exits; if lost closes
// first, the child is terminated and the hold reported lost.
func runHolding(ctx context.Context, a *app, argv []string, name string, token uint64, lost <-chan struct{}) (int, error) {
	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = a.stdin, a.stdout, a.stderr
	child.Env = append(os.Environ(), fmt.Sprintf("%s=%d", name, token))
	if err := child.Start(); err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	kill := func() {
		child.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			child.Process.Kill()
			<-exited
		}
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		return 0, err
	case <-lost:
		kill()
		return 0, fmt.Errorf("%w: the command was stopped", recipe.ErrLost)
	case <-ctx.Done():
		kill()
		return 130, nil
	}
}

func (a *app) electCmd() *cobra.Command {
	var observe bool
	c := &cobra.Command{
		Use:   "elect PATH PROPOSAL | elect --observe PATH",
		Short: "campaign for leadership at PATH and hold it until interrupted (--observe: print each new leader)",
		Args:  usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if observe != (len(args) == 1) {
				return usageError{errors.New("elect: want PATH PROPOSAL, or --observe PATH")}
			}
			cl, ctx, done, err := a.longClient()
			if err != nil {
				return err
			}
			defer done()
			if observe {
				for li := range recipe.Observe(ctx, cl, args[0]) {
					if li.Token == 0 {
						fmt.Fprintln(a.stdout, "no leader")
						continue
					}
					fmt.Fprintf(a.stdout, "leader %s token=%d\n", li.Proposal, li.Token)
				}
				return nil
			}
			e := recipe.NewElection(cl, args[0])
			token, err := e.Campaign(ctx, []byte(args[1]))
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fail("elect "+args[0], err)
			}
			fmt.Fprintf(a.stdout, "elected %s token=%d\n", args[1], token)
			select {
			case <-ctx.Done():
				rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return fail("elect "+args[0], e.Resign(rctx))
			case <-e.Lost():
				return fail("elect "+args[0], recipe.ErrLost)
			}
		},
	}
	c.Flags().BoolVar(&observe, "observe", false, "print each new leader instead of campaigning")
	return c
}
