package coord_test

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/coord/rpc"
	"coord/proto/coordpb"
)

// A login flood from one address is cut to the per-address burst before
// any bcrypt work: the rest get ResourceExhausted saying why, quickly,
// and the node still answers other calls.
func TestUsers_LoginRateLimit(t *testing.T) {
	d := makeCerts(t)
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.TLS = nodeFiles(d.good, cfg.Name)
		cfg.Superusers = []string{"x509:admin"}
		cfg.TokenKeyFile = filepath.Join(d.good, "token.key")
	}})
	ctx := coordtest.Ctx(t, 60*time.Second)
	admin := newClient(t, c.Addrs(), clientTLS(t, d.good, "admin", d.good))
	if err := admin.SetUser(ctx, "bob", "bobs-password", nil); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, c.Node(0).Addr, d.good, "")
	const flood = 60
	var (
		wg                  sync.WaitGroup
		mu                  sync.Mutex
		ok, limited, others int
		msg                 string
	)
	start := time.Now()
	for i := 0; i < flood; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := conn.Authenticate(ctx, &coordpb.AuthenticateRequest{User: "bob", Password: "wrong-password"})
			mu.Lock()
			defer mu.Unlock()
			switch status.Code(err) {
			case codes.Unauthenticated:
				ok++ // the password was checked (and was wrong)
			case codes.ResourceExhausted:
				limited++
				msg = status.Convert(err).Message()
			default:
				others++
				t.Errorf("login: %v", err)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	// The burst plus what refills while the flood runs.
	most := rpc.DefaultLoginsPerAddressBurst + int(took.Seconds()*rpc.DefaultLoginsPerAddress) + 1
	t.Logf("%d logins: %d checked, %d limited in %v; %q", flood, ok, limited, took, msg)
	if ok > most || limited < flood-most {
		t.Fatalf("%d passwords checked, %d limited: want at most %d checked", ok, limited, most)
	}
	if !strings.Contains(msg, "logins a second") {
		t.Fatalf("limit message %q does not say what was hit", msg)
	}
	if _, err := conn.WhoAmI(ctx, &coordpb.WhoAmIRequest{}); err != nil {
		t.Fatalf("whoami during the limit: %v", err)
	}
	// The bucket refills: a right password logs in after a pause.
	time.Sleep(time.Second)
	if _, err := conn.Authenticate(ctx, &coordpb.AuthenticateRequest{User: "bob", Password: "bobs-password"}); err != nil {
		t.Fatalf("login after the pause: %v", err)
	}
}
