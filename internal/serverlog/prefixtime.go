package serverlog

import (
	"regexp"
	"strings"
	"time"
)

// prefixTimeRE is the time log_line_prefix's %m or %t writes first (as
// Debian's "%m [%p] " and RDS's "%t:%r:%u@%d:[%p]:" do), in a zone whose
// offset the text itself gives: UTC, GMT or a numeric one. An abbreviation
// such as CET names no offset that can be trusted.
var prefixTimeRE = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) (UTC|GMT|[+-]\d{2}(?::?\d{2})?)\b`)

// PrefixTime is when a line with this prefix was written, when the prefix
// says so unambiguously (ok false otherwise).
func PrefixTime(prefix string) (t time.Time, ok bool) {
	m := prefixTimeRE.FindStringSubmatch(strings.TrimSpace(prefix))
	if m == nil {
		return time.Time{}, false
	}
	zone := m[2]
	switch {
	case zone == "UTC" || zone == "GMT":
		zone = "+0000"
	case len(zone) == 3:
		zone += "00"
	default:
		zone = strings.Replace(zone, ":", "", 1)
	}
	t, err := time.Parse("2006-01-02 15:04:05.999999999 -0700", m[1]+" "+zone)
	return t, err == nil
}
