package coord_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// Larger quorums: 5 and 7 voters elect a leader, accept writes on every
// node, and do not churn leaders while they do (at most one new term, to
// allow for a starved heartbeat on a loaded 2-core machine). A churn is
// retried once on a fresh cluster: at load average 20+ a leader's lease
// lapsed twice in one run (term 2 -> 4, same leader), and a churn that
// repeats is what this test is after.
func TestCluster_FiveAndSevenVoters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 12 nodes")
	}
	for _, n := range []int{5, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			churn := ""
			for attempt := 1; attempt <= 2; attempt++ {
				if churn = fiveSevenRun(t, n); churn == "" {
					return
				}
				t.Logf("attempt %d: %s", attempt, churn)
			}
			t.Fatal(churn)
		})
	}
}

// fiveSevenRun starts n voters, writes 3n znodes through every node and
// returns "" or how the leaders churned meanwhile.
func fiveSevenRun(t *testing.T, n int) string {
	t.Helper()
	c := coordtest.NewCluster(t, n, coordtest.Options{})
	defer c.Close()
	ctx := coordtest.Ctx(t, 60*time.Second)
	l := c.Leader()
	term := c.Node(l).Server.Replica().Info().Term
	for i := 0; i < 3*n; i++ {
		mustCreate(t, ctx, c.Conn(i%n), fmt.Sprintf("/n%02d", i), nil)
	}
	m, err := c.Conn(0).Members(ctx, &coordpb.MembersRequest{})
	if err != nil || len(m.GetMembers()) != n {
		t.Fatalf("members: %v, %v", m.GetMembers(), err)
	}
	if now := c.Node(c.Leader()).Server.Replica().Info().Term; now > term+1 {
		return fmt.Sprintf("leaders churned during the writes: node %d term %d -> node %d term %d", l, term, c.Leader(), now)
	}
	return ""
}

// A non-voting replica follows the log and serves reads, but is not part
// of the quorum: with two of three voters down, writes stop even though
// the non-voter is up.
func TestCluster_NonVoterServesReadsOutsideTheQuorum(t *testing.T) {
	c := coordtest.NewCluster(t, 3, coordtest.Options{})
	ctx := coordtest.Ctx(t, 60*time.Second)
	lc := c.Conn(c.Leader())
	mustCreate(t, ctx, lc, "/v", []byte("1"))
	r := coordtest.StartJoiner(t, "r1")
	if _, err := lc.AddMember(ctx, &coordpb.AddMemberRequest{Name: "r1", Address: r.Addr(), NonVoter: true}); err != nil {
		t.Fatalf("add non-voter: %v", err)
	}
	m, err := lc.Members(ctx, &coordpb.MembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mem := range m.GetMembers() {
		if mem.GetName() == "r1" && mem.GetVoter() {
			t.Fatal("r1 was added as a voter")
		}
	}
	if err := r.Replica().WaitApplied(ctx, m.Header.GetZxid()); err != nil {
		t.Fatal(err)
	}
	st, _ := r.Replica().State()
	if data, _, err := st.Get("/v"); err != nil || string(data) != "1" {
		t.Fatalf("non-voter's state: %q, %v", data, err)
	}
	// Two voters down: no quorum, whatever the non-voter does.
	l := c.Leader()
	for i := range c.Nodes() {
		if i != l {
			c.Stop(i)
		}
	}
	_, err = lc.Set(coordtest.Ctx(t, 8*time.Second), &coordpb.SetRequest{Op: &coordpb.SetOp{Path: "/v", Data: []byte("2"), Version: -1}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("write with 1 of 3 voters (and a non-voter) up: %v, want Unavailable", err)
	}
}
