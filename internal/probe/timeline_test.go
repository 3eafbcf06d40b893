package probe

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestParseHistory(t *testing.T) {
	// As PostgreSQL 15 wrote it after two promotions.
	text := "1\t0/1516D20\tno recovery target specified\n\n2\t0/3000158\tbefore 2026-12-06 12:00:00+00\n"
	got, err := ParseHistory(text)
	want := []TimelineSwitch{{1, 0x1516D20}, {2, 0x3000158}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%v %v", got, err)
	}
	if end, ok := SwitchedAt(got, 2); !ok || end != 0x3000158 {
		t.Errorf("timeline 2 ended at %s %v", end, ok)
	}
	if _, ok := SwitchedAt(got, 3); ok {
		t.Error("timeline 3 is the current one, not in its history")
	}
	for _, bad := range []string{"1", "x\t0/1\tr", "1\tzz\tr"} {
		if _, err := ParseHistory(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	b, err := json.Marshal(got)
	if err != nil || string(b) != `[{"timeline":1,"end_lsn":"0/1516D20"},{"timeline":2,"end_lsn":"0/3000158"}]` {
		t.Fatalf("%s %v", b, err)
	}
	var back []TimelineSwitch
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("%v %v", back, err)
	}
}
