package diagnose

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A report without subscriptions (all dropped, or none yet) has empty
// lists in its JSON, not null: `jq '.subscriptions[]'` on pglmon status
// --output json and /api/v1/status then prints nothing instead of failing.
func TestReportJSONListsAreNeverNull(t *testing.T) {
	for _, r := range []Report{
		{Time: time.Unix(0, 0).UTC(), Health: OK},
		{Time: time.Unix(0, 0).UTC(), Health: OK, Nodes: []Node{{Name: "provider", Up: true, Findings: []Finding{}}}},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if s := string(b); strings.Contains(s, "null") || !strings.Contains(s, `"subscriptions":[]`) {
			t.Errorf("got %s", s)
		}
		var back Report
		if err := json.Unmarshal(b, &back); err != nil || back.Health != OK || len(back.Nodes) != len(r.Nodes) {
			t.Errorf("read back %+v, %v", back, err)
		}
	}
}
