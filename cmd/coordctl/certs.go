package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"coord/client"
	"coord/coord/auth"
)

// addTLSFlags adds --cert, --key and --ca (env COORD_CERT, COORD_KEY,
// COORD_CA): the same three files coordd takes.
func (a *app) addTLSFlags(root *cobra.Command) {
	root.PersistentFlags().StringVar(&a.tls.CertFile, "cert", os.Getenv("COORD_CERT"), "client certificate PEM (env COORD_CERT)")
	root.PersistentFlags().StringVar(&a.tls.KeyFile, "key", os.Getenv("COORD_KEY"), "client key PEM (env COORD_KEY)")
	root.PersistentFlags().StringVar(&a.tls.CAFile, "ca", os.Getenv("COORD_CA"), "CA PEM that signed the nodes; enables TLS (env COORD_CA)")
}

// applyTLS turns the TLS flags into cfg.TLS.
func (a *app) applyTLS(cfg *client.Config) error {
	if a.tls == (client.TLSFiles{}) {
		return nil
	}
	t, err := client.LoadTLS(a.tls)
	if err != nil {
		return usageError{fmt.Errorf("--cert/--key/--ca: %v", err)}
	}
	cfg.TLS = t
	return nil
}

func (a *app) certsCmd() *cobra.Command {
	c := &cobra.Command{Use: "certs", Short: "throwaway certificates for local clusters and tests"}
	var nodes, clients, hosts string
	var validity time.Duration
	initCmd := &cobra.Command{
		Use:   "init DIR",
		Short: "create a CA and node/client certificates in DIR (never overwrites a CA)",
		Long: `Creates DIR/ca.crt and ca.key, and NAME.crt/NAME.key for every node
(server and client usage; CN and DNS SAN = the node name, plus 127.0.0.1,
::1 and localhost) and every client (client usage; CN = the identity).
For local clusters and tests only: the CA key sits next to the certificates.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := auth.CertSpec{Nodes: splitList(nodes), Clients: splitList(clients), Hosts: splitList(hosts), Validity: validity}
			if err := auth.CreateCerts(args[0], spec); err != nil {
				return fail("certs init", err)
			}
			fmt.Fprintf(a.stdout, "wrote CA and %d certificates to %s\n", len(spec.Nodes)+len(spec.Clients), args[0])
			return nil
		},
	}
	initCmd.Flags().StringVar(&nodes, "nodes", "n1,n2,n3", "node names (comma-separated)")
	initCmd.Flags().StringVar(&clients, "clients", "admin,client", "client identities (comma-separated)")
	initCmd.Flags().StringVar(&hosts, "hosts", "", "extra IPs or DNS names for node certificates")
	initCmd.Flags().DurationVar(&validity, "validity", auth.DefaultCertValidity, "certificate lifetime")
	c.AddCommand(initCmd)
	return c
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
