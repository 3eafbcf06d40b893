package serverlog

import (
	"testing"
	"time"
)

func TestPrefixTime(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 4, 20, 25, 19, 126e6, time.UTC)
	// 2026-10-25 02:30 happened twice in Berlin: at 00:30 UTC (CEST) and at
	// 01:30 UTC (CET).
	for _, c := range []struct {
		prefix string
		zone   *time.Location
		want   time.Time
	}{
		{"2026-12-04 20:25:19.126 UTC [26588]", nil, at},                                       // Debian's %m [%p]
		{"2026-12-04 20:25:19 UTC:10.0.1.5(5432):app@db:[77]:", nil, at.Truncate(time.Second)}, // RDS's %t:%r:%u@%d:[%p]:
		{"2026-12-04 21:25:19.126 +01 [26588]", nil, at},
		{"2026-12-04 15:55:19.126 -04:30 [26588]", nil, at},
		{"2026-12-04 20:25:19.126 GMT [1]", berlin, at},
		{"2026-12-04 21:25:19.126 CET [26588]", nil, time.Time{}}, // which offset: not said
		{"2026-12-04 21:25:19.126 CET [26588]", berlin, at},
		{"2026-12-04 21:25:19 CET:[local]:app@db:[77]:", berlin, at.Truncate(time.Second)},
		{"2026-10-25 02:30:00.000 CEST [1]", berlin, time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)},
		{"2026-10-25 02:30:00.000 CET [1]", berlin, time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)},
		{"2026-12-04 21:25:19.126 CEST [1]", berlin, time.Time{}}, // not Berlin's abbreviation in December
		{"2026-12-04 21:25:19.126 EST [1]", berlin, time.Time{}},  // not Berlin's at all
		{"[26588] ", berlin, time.Time{}},
		{"2026-12-04 20:25:19.126 [26588]", berlin, time.Time{}},
	} {
		got, ok := PrefixTime(c.prefix, c.zone)
		if ok != !c.want.IsZero() || !got.Equal(c.want) {
			t.Errorf("%q in %v: %s %v, want %s", c.prefix, c.zone, got, ok, c.want)
		}
	}
}
