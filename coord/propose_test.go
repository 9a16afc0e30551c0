package coord

import (
	"sort"
	"strings"
	"testing"

	"coord/proto/coordpb"
)

// propose builds a new Command envelope (time stamp + the caller's body)
// instead of cloning the caller's message. A field added to Command would
// be silently dropped there: this test names the fields propose copies
// and fails when the message grows, so propose is updated with it.
func TestPropose_CopiesEveryCommandField(t *testing.T) {
	var names []string
	fields := (&coordpb.Command{}).ProtoReflect().Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		names = append(names, string(fields.Get(i).Name()))
	}
	sort.Strings(names)
	got := strings.Join(names, ",")
	// time_ms is stamped; the rest is the oneof body propose carries over.
	const want = "close_session,create_session,expire_ttl,time_ms,txn"
	if got != want {
		t.Fatalf("Command fields are %s; propose (leader.go) copies %s: update it", got, want)
	}
}
