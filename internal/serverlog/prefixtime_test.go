package serverlog

import (
	"testing"
	"time"
)

func TestPrefixTime(t *testing.T) {
	at := time.Date(2026, 12, 4, 20, 25, 19, 126e6, time.UTC)
	for prefix, want := range map[string]time.Time{
		"2026-12-04 20:25:19.126 UTC [26588]":                 at,                       // Debian's %m [%p]
		"2026-12-04 20:25:19 UTC:10.0.1.5(5432):app@db:[77]:": at.Truncate(time.Second), // RDS's %t:%r:%u@%d:[%p]:
		"2026-12-04 21:25:19.126 +01 [26588]":                 at,
		"2026-12-04 15:55:19.126 -04:30 [26588]":              at,
		"2026-12-04 20:25:19.126 GMT [1]":                     at,
		"2026-12-04 21:25:19.126 CET [26588]":                 {}, // which offset: not said
		"[26588] ":                                            {},
		"2026-12-04 20:25:19.126 [26588]":                     {},
	} {
		got, ok := PrefixTime(prefix)
		if ok != !want.IsZero() || !got.Equal(want) {
			t.Errorf("%q: %s %v, want %s", prefix, got, ok, want)
		}
	}
}
