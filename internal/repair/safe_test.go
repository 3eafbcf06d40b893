package repair

import (
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/diagnose"
)

// Every guard of safe, on its own: a subscription in which each remedy
// would be safe, bent one way at a time. The real-pglogical tests reach
// most of these through the finding a remedy is asked for; these hold
// without one (the command line's --remedy, a resumed attempt).
func TestSafeRefusesWhatCouldMakeThingsWorse(t *testing.T) {
	ok := func() diagnose.Subscription {
		return diagnose.Subscription{Name: "sub_0", Subscriber: "s", Provider: "p", ProviderUp: true, SlotFound: true, SlotName: "pgl_x",
			SlotWALStatus: "reserved", OriginExists: true, Enabled: true, Status: "down"}
	}
	for _, tc := range []struct {
		name   string
		remedy string
		resume bool
		bend   func(s *diagnose.Subscription)
		want   string // "" means allowed
	}{
		{"restart", diagnose.RemedyRestart, false, func(*diagnose.Subscription) {}, ""},
		{"restart, node unreachable", diagnose.RemedyRestart, false, func(s *diagnose.Subscription) {
			s.Findings = []diagnose.Finding{{Code: diagnose.CodeNodeUnreachable}}
		}, "cannot be reached; nothing is safe to run"},
		{"restart, provider not reachable", diagnose.RemedyRestart, false, func(s *diagnose.Subscription) { s.ProviderUp = false }, "its slot cannot be checked"},
		{"restart, slot missing", diagnose.RemedyRestart, false, func(s *diagnose.Subscription) { s.SlotFound = false }, "does not exist on provider p"},
		{"restart, slot lost WAL", diagnose.RemedyRestart, false, func(s *diagnose.Subscription) { s.SlotWALStatus = "lost" }, "has lost WAL"},
		{"restart, origin missing", diagnose.RemedyRestart, false, func(s *diagnose.Subscription) { s.OriginExists = false }, "use recreate-origin"},
		{"restart, slot in use", diagnose.RemedyRestart, false, func(s *diagnose.Subscription) {
			s.Findings = []diagnose.Finding{{Code: diagnose.CodeSlotInUse}}
		}, "is in use by another process"},
		{"restart, down with the slot active", diagnose.RemedyRestart, false, func(s *diagnose.Subscription) { s.SlotActive = true }, "is in use by another process"},
		{"restart resumed, slot active (its own worker again)", diagnose.RemedyRestart, true, func(s *diagnose.Subscription) { s.SlotActive = true }, ""},
		{"restart, disabled", diagnose.RemedyRestart, false, func(s *diagnose.Subscription) { s.Enabled = false }, "perhaps on purpose: use enable"},
		{"restart resumed, disabled by its own first step", diagnose.RemedyRestart, true, func(s *diagnose.Subscription) { s.Enabled = false }, ""},
		{"recreate-origin", diagnose.RemedyRecreateOrigin, false, func(s *diagnose.Subscription) { s.OriginExists = false }, ""},
		{"recreate-origin, origin exists", diagnose.RemedyRecreateOrigin, false, func(*diagnose.Subscription) {}, "exists: nothing to re-create"},
		{"recreate-origin resumed, origin made by its own step", diagnose.RemedyRecreateOrigin, true, func(*diagnose.Subscription) {}, ""},
		{"recreate-origin, slot missing", diagnose.RemedyRecreateOrigin, false, func(s *diagnose.Subscription) { s.OriginExists, s.SlotFound = false, false }, "does not exist on provider p"},
		{"recreate-origin, slot lost WAL", diagnose.RemedyRecreateOrigin, false, func(s *diagnose.Subscription) { s.OriginExists, s.SlotWALStatus = false, "lost" }, "has lost WAL"},
		{"enable", diagnose.RemedyEnable, false, func(s *diagnose.Subscription) { s.Enabled = false }, ""},
		{"enable, already enabled", diagnose.RemedyEnable, false, func(*diagnose.Subscription) {}, "already enabled"},
	} {
		s := ok()
		tc.bend(&s)
		req := Request{Remedy: tc.remedy, Subscription: "sub_0"}
		if tc.resume {
			req.Resume = "an-earlier-attempt"
		}
		err := safe(req, s)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want refused with %q", tc.name, err, tc.want)
		}
	}
}
