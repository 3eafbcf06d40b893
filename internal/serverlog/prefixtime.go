package serverlog

import (
	"regexp"
	"strings"
	"time"
)

// prefixTimeRE is the time log_line_prefix's %m or %t writes first (as
// Debian's "%m [%p] " and RDS's "%t:%r:%u@%d:[%p]:" do), then its zone: UTC,
// GMT, a numeric offset, or an abbreviation (CET, EST, ...) of the server's
// log_timezone.
var prefixTimeRE = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) (UTC|GMT|[+-]\d{2}(?::?\d{2})?|[A-Za-z]{2,6})\b`)

// PrefixTime is when a line with this prefix was written, when the prefix
// says so unambiguously (ok false otherwise). An abbreviation such as CET
// names no offset by itself: it is read in zone, the server's log_timezone
// (nil: unknown), and only when that zone uses the abbreviation at that time
// (CET and CEST tell the two readings of an hour the clocks go back apart).
func PrefixTime(prefix string, zone *time.Location) (t time.Time, ok bool) {
	m := prefixTimeRE.FindStringSubmatch(strings.TrimSpace(prefix))
	if m == nil {
		return time.Time{}, false
	}
	abbr := m[2]
	switch {
	case abbr == "UTC" || abbr == "GMT":
		return parseIn(m[1]+" +0000", "-0700", nil)
	case abbr[0] == '+' || abbr[0] == '-':
		off := strings.Replace(abbr, ":", "", 1)
		if len(off) == 3 {
			off += "00"
		}
		return parseIn(m[1]+" "+off, "-0700", nil)
	case zone == nil:
		return time.Time{}, false
	}
	t, ok = parseIn(m[1]+" "+abbr, "MST", zone)
	if !ok {
		return time.Time{}, false
	}
	// An abbreviation zone does not use is read as UTC by Parse: refused.
	const wall = "2006-01-02 15:04:05"
	u := t.In(zone)
	if name, _ := u.Zone(); name != abbr || u.Format(wall) != t.Format(wall) {
		return time.Time{}, false
	}
	return t, true
}

func parseIn(value, zoneLayout string, loc *time.Location) (time.Time, bool) {
	const layout = "2006-01-02 15:04:05.999999999 "
	var t time.Time
	var err error
	if loc == nil {
		t, err = time.Parse(layout+zoneLayout, value)
	} else {
		t, err = time.ParseInLocation(layout+zoneLayout, value, loc)
	}
	return t, err == nil
}
