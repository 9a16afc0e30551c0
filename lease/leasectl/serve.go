package leasectl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"coord/lease"
	"coord/lease/ntpguard"
)

func serveCmd() *cobra.Command {
	var (
		id, listen, peers, group string
		version                  uint64
		ntpServers               []string
		unchecked                bool
		mountDir                 string
		d                        = lease.DefaultConfig()
	)
	c := &cobra.Command{
		Use:   "serve --id ID --listen ADDR --peers a=ADDR,b=ADDR,c=ADDR [--ntp HOST:PORT ...] [--unchecked-clock]",
		Short: "Run one lease group member until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			cfg := d
			cfg.ID, cfg.Group, cfg.Version, cfg.Logger = lease.NodeID(id), group, version, log
			members, err := parsePeers(peers)
			if err != nil {
				return err
			}
			cfg.Members = members
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			switch {
			case len(ntpServers) > 0 && unchecked:
				return errors.New("--ntp and --unchecked-clock exclude each other")
			case len(ntpServers) > 0:
				g, err := ntpguard.New(ntpguard.Config{Servers: ntpServers, MaxClockError: cfg.MaxClockError,
					MaxDriftPPM: cfg.MaxDriftPPM, Logger: log})
				if err != nil {
					return err
				}
				gctx, gstop := context.WithCancel(ctx)
				defer gstop()
				go g.Run(gctx) // owner: this command; stops with gctx
				cfg.Clock = g
			case unchecked:
				cfg.Clock = lease.UncheckedClock(log)
			default:
				return errors.New("a clock is required: --ntp HOST:PORT (repeatable), or --unchecked-clock for single-host development")
			}
			var sopts []grpc.ServerOption
			if files := tlsFiles(cmd); files.Enabled() {
				store, err := lease.LoadTLS(files)
				if err != nil {
					return err
				}
				cfg.TLS = store
				sopts = append(sopts, grpc.Creds(lease.ServerCredentials(store)))
			} else {
				log.Warn("lease: Flease traffic is plaintext (no --cert/--key/--ca)", "listen", listen)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			n, err := lease.New(cfg)
			if err != nil {
				ln.Close()
				return err
			}
			defer n.Close()
			if mountDir != "" {
				unmount, err := mountView(mountDir, n, cmd.OutOrStdout(), log)
				if err != nil {
					return err
				}
				defer unmount()
			}
			s := grpc.NewServer(sopts...)
			n.Register(s)
			n.RegisterAdmin(s)
			errc := make(chan error, 1)
			go func() { errc <- s.Serve(ln) }() // owner: this command; ends with s.Stop
			fmt.Fprintf(cmd.OutOrStdout(), "lease member %s of group %s serving on %s (restart wait until %s)\n",
				id, group, ln.Addr(), n.RecoveringUntil().Format(time.RFC3339Nano))
			select {
			case <-ctx.Done():
				s.Stop()
				<-errc
				return nil
			case err := <-errc:
				return err
			}
		},
	}
	f := c.Flags()
	f.StringVar(&id, "id", "", "this member's ID (must be in --peers)")
	f.StringVar(&listen, "listen", "127.0.0.1:7400", "address to serve FleasePeer and LeaseAdmin on")
	f.StringVar(&peers, "peers", "", "the group: ID=ADDR,ID=ADDR,... in the same order on every member, this member included")
	f.StringVar(&group, "group", "default", "lease group ID")
	f.StringVar(&mountDir, "mount", "", "also mount this member's leases as files at DIR (cat: holder/epoch/expiry; flock: hold the lease)")
	f.Uint64Var(&version, "config-version", 1, "group config version")
	f.StringArrayVar(&ntpServers, "ntp", nil, "NTP server HOST:PORT for the clock guard (repeatable)")
	f.BoolVar(&unchecked, "unchecked-clock", false, "DANGER: trust the local clock without NTP checks (single-host development only)")
	f.DurationVar(&d.LeaseDuration, "lease-duration", d.LeaseDuration, "lease duration t_max")
	f.DurationVar(&d.MaxClockError, "max-clock-error", d.MaxClockError, "ε: bound on each member's clock offset")
	f.DurationVar(&d.RoundTimeout, "round-timeout", d.RoundTimeout, "timeout of each round phase")
	c.MarkFlagRequired("id")
	c.MarkFlagRequired("peers")
	return c
}

func parsePeers(s string) ([]lease.Member, error) {
	var ms []lease.Member
	for _, p := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--peers: %q is not ID=ADDR", p)
		}
		ms = append(ms, lease.Member{ID: lease.NodeID(id), Addr: addr})
	}
	return ms, nil
}
