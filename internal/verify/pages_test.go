package verify

import "testing"

// Key ranges too slow for one statement are cut by key value: integer and
// uuid keys go to numbers and back unchanged, and cuts lie strictly between
// the ends, increasing.
func TestSpanCutsByKeyValue(t *testing.T) {
	ints := Table{Key: []string{"id"}, KeyTypes: []string{"bigint"}}
	uuids := Table{Key: []string{"id"}, KeyTypes: []string{"uuid"}}
	for _, tc := range []struct {
		t    Table
		a, b string
		cuts int
	}{
		{ints, "-9223372036854775808", "9223372036854775807", 15},
		{ints, "10", "12", 1},
		{ints, "10", "11", 0},
		{ints, "1", "100", 15},
		{uuids, "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", 15},
		{uuids, "c4ca4238-a0b9-2382-0dcc-509a6f75849b", "c4ca4238-a0b9-2382-0dcc-509a6f75849e", 2},
	} {
		a, b := keyValue(tc.t, tc.a), keyValue(tc.t, tc.b)
		if keyText(tc.t, a) != tc.a || keyText(tc.t, b) != tc.b {
			t.Fatalf("round trip: %s -> %s, %s -> %s", tc.a, keyText(tc.t, a), tc.b, keyText(tc.t, b))
		}
		cuts := spanCuts(a, b)
		if len(cuts) != tc.cuts {
			t.Errorf("(%s, %s): %d cuts, want %d", tc.a, tc.b, len(cuts), tc.cuts)
		}
		prev := a
		for _, c := range append(cuts, b) {
			if c.Cmp(prev) <= 0 {
				t.Errorf("(%s, %s): cuts %v not increasing strictly between the ends", tc.a, tc.b, cuts)
			}
			prev = c
		}
		if len(cuts) > 0 && keyValue(tc.t, keyText(tc.t, cuts[0])).Cmp(cuts[0]) != 0 {
			t.Errorf("cut %v does not survive its text", cuts[0])
		}
	}
}
