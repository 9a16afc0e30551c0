package leasectl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"coord/proto/leasepb"
)

func holdCmd() *cobra.Command {
	var endpoint string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "hold --endpoint ADDR [--timeout D] RESOURCE -- CMD ARGS...",
		Short: "Run CMD while holding RESOURCE; kill CMD if the lease may be lost",
		Long: "hold acquires RESOURCE through the member at ADDR (giving up after --timeout), runs CMD with " +
			"COORD_LEASE_EPOCH and COORD_LEASE_RESOURCE set, kills CMD the moment the lease may be lost " +
			"(lost, member unreachable, or no renewal before the last validity bound), releases the lease " +
			"when CMD exits, and exits with CMD's exit code.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return errors.New("usage: lease hold [flags] RESOURCE -- CMD ARGS...")
			}
			cl, closeFn, err := dial(cmd, endpoint)
			if err != nil {
				return err
			}
			defer closeFn()
			return hold(cmd, cl, args[0], args[1:], timeout)
		},
	}
	c.Flags().StringVar(&endpoint, "endpoint", "127.0.0.1:7400", "LeaseAdmin address of a group member")
	c.Flags().DurationVar(&timeout, "timeout", 0, "give up acquiring after this long (0: wait forever)")
	return c
}

func hold(cmd *cobra.Command, cl leasepb.LeaseAdminClient, res string, argv []string, timeout time.Duration) error {
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel() // ends the stream: the member releases the lease
	st, err := cl.Acquire(ctx, &leasepb.AcquireRequest{Resource: res, Stream: true})
	if err != nil {
		return err
	}
	var giveUp *time.Timer
	if timeout > 0 {
		giveUp = time.AfterFunc(timeout, cancel)
	}
	ev, err := st.Recv()
	if giveUp != nil && !giveUp.Stop() {
		return fmt.Errorf("lease hold %s: not acquired within %v", res, timeout)
	}
	if err != nil {
		return err
	}
	if ev.Kind != leasepb.AcquireEvent_ACQUIRED {
		return fmt.Errorf("lease hold %s: %s %s", res, ev.Kind, ev.Reason)
	}
	// valid_for already has one RoundTimeout of one-way delay taken off the
	// holder's remaining validity, so counting it from receipt stops CMD
	// before the member's own deadline. Renewals move the deadline.
	deadline := time.NewTimer(time.Duration(ev.ValidForNanos))
	defer deadline.Stop()
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
	c.Env = append(os.Environ(), "COORD_LEASE_EPOCH="+strconv.FormatUint(ev.Lease.Epoch, 10), "COORD_LEASE_RESOURCE="+res)
	if err := c.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }() // owner: hold; ends when CMD exits
	events := make(chan *leasepb.AcquireEvent)
	streamErr := make(chan error, 1)
	go func() { // owner: hold; ends when the stream ends (cancel on return)
		for {
			ev, err := st.Recv()
			if err != nil {
				streamErr <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	kill := func(why string) error {
		fmt.Fprintf(cmd.ErrOrStderr(), "lease hold %s: %s: killing %s\n", res, why, argv[0])
		c.Process.Kill()
		return exitOf(<-exited)
	}
	for {
		select {
		case err := <-exited:
			return exitOf(err)
		case <-deadline.C:
			return kill("no renewal before the validity bound")
		case err := <-streamErr:
			return kill(fmt.Sprintf("lost contact with the member (%v)", err))
		case ev := <-events:
			switch ev.Kind {
			case leasepb.AcquireEvent_RENEWED:
				deadline.Reset(time.Duration(ev.ValidForNanos))
			case leasepb.AcquireEvent_LOST:
				return kill("lease lost: " + ev.Reason)
			}
		}
	}
}

// exitOf turns CMD's Wait error into an *ExitError (nil for success).
func exitOf(err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return &ExitError{Code: code}
	}
	return err
}
