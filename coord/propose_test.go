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
		if fields.Get(i).ContainingOneof() == nil { // the oneof body travels whole
			names = append(names, string(fields.Get(i).Name()))
		}
	}
	sort.Strings(names)
	got := strings.Join(names, ",")
	// time_ms is stamped; everything else is the oneof body.
	const want = "time_ms"
	if got != want {
		t.Fatalf("Command's fields outside the body are %s; propose (leader.go) copies only %s: update it", got, want)
	}
}
