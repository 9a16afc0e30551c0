package leasectl

import (
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"coord/lease"
)

// addTLSFlags puts --cert, --key and --ca on the lease command (the same
// flags and environment as the rest of coordctl): `lease serve` runs the
// member with mutual TLS, the other commands dial it with them.
func addTLSFlags(c *cobra.Command) {
	f := c.PersistentFlags()
	f.String("cert", os.Getenv("COORD_CERT"), "certificate PEM: the member's for serve (CN/SAN = its --id), the operator's otherwise (env COORD_CERT)")
	f.String("key", os.Getenv("COORD_KEY"), "key PEM (env COORD_KEY)")
	f.String("ca", os.Getenv("COORD_CA"), "CA PEM that signed every member and operator; enables mutual TLS (env COORD_CA)")
}

// tlsFiles reads the TLS flags as cmd sees them.
func tlsFiles(cmd *cobra.Command) lease.TLSFiles {
	get := func(name string) string {
		v, _ := cmd.Flags().GetString(name)
		return v
	}
	return lease.TLSFiles{CertFile: get("cert"), KeyFile: get("key"), CAFile: get("ca")}
}

// dialCreds is how an operator command dials a member.
func dialCreds(cmd *cobra.Command) (grpc.DialOption, error) {
	f := tlsFiles(cmd)
	if !f.Enabled() {
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	tc, err := lease.ClientTLS(f)
	if err != nil {
		return nil, err
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(tc)), nil
}
