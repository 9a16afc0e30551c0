package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"coord/fuse"
)

// mountCmd: coordctl mount DIR — serve the tree at DIR in the foreground
// until unmounted (fusermount3 -u DIR) or interrupted (then unmount).
func (a *app) mountCmd() *cobra.Command {
	var cfg fuse.Config
	var verbose bool
	c := &cobra.Command{
		Use:   "mount [--cache-timeout D] [--debug] DIR",
		Short: "mount the coord tree at DIR (foreground; Ctrl-C or fusermount3 -u DIR to unmount)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ccfg, err := a.config()
			if err != nil {
				return err
			}
			cfg.Client = ccfg
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			cfg.Logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			mctx, cancel := context.WithTimeout(ctx, a.timeout)
			m, err := fuse.New(mctx, args[0], cfg)
			cancel()
			if err != nil {
				return fail("mount "+args[0], err)
			}
			fmt.Fprintf(a.stdout, "mounted %s (session %#x)\n", args[0], m.Client().SessionID())
			waited := make(chan struct{})
			go func() { m.Wait(); close(waited) }()
			select {
			case <-ctx.Done(): // interrupted: unmount ourselves
			case <-waited: // unmounted from outside
			}
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			return fail("unmount "+args[0], m.Close(cctx))
		},
	}
	c.Flags().DurationVar(&cfg.CacheTimeout, "cache-timeout", fuse.DefaultCacheTimeout, "kernel entry/attribute cache timeout (watch events invalidate sooner)")
	c.Flags().BoolVar(&cfg.Debug, "debug", false, "log every FUSE request to stderr")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log mount and session events")
	return c
}
