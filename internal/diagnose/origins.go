package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pglmon/pglmon/internal/probe"
)

// Replication origin states (probe.OriginStates): PostgreSQL tracks the
// progress of each replication origin in one of max_replication_slots
// states, every database's together. pglogical 2.4.2 needs one per
// subscription that replicates and one more per table it copies; with none
// free the worker that needs one fails at its start ("could not find free
// replication state slot for replication origin"), and pglogical starts it
// again for ever (measured: an apply worker every ~6 s, a sync worker
// hundreds of times a minute). Restarting cannot help.

// originStarved says whether sub cannot start its apply worker for want of
// an origin state: every state is held, none by its origin.
func originStarved(s *probe.Snapshot, sub probe.Subscription) bool {
	return s.Origins.Full() && !s.Origins.Holds(sub.SlotName)
}

// describeOrigins says what holds a server's origin states: each origin,
// with whose it is when it is a subscription of the probed database or a
// table copy of one.
func describeOrigins(s *probe.Snapshot) string {
	o := s.Origins
	whose := map[string]string{}
	for _, sub := range s.Subscriptions {
		whose[sub.SlotName] = "subscription " + sub.Name
		if !sub.Enabled {
			whose[sub.SlotName] += ", disabled"
		}
	}
	for origin, copies := range o.Copies() {
		if w, ok := whose[origin]; ok {
			for _, c := range copies {
				whose[c] = "a table copy of " + strings.TrimSuffix(w, ", disabled")
			}
		}
	}
	const most = 8
	var names []string
	for _, h := range o.Held[:min(len(o.Held), most)] {
		w := whose[h]
		if w == "" {
			w = "no subscription of this database"
		}
		names = append(names, fmt.Sprintf("%s (%s)", h, w))
	}
	if len(o.Held) > most {
		names = append(names, fmt.Sprintf("and %d more", len(o.Held)-most))
	}
	return fmt.Sprintf("%d of max_replication_slots %d replication origin states held, every database's: %s", len(o.Held), o.Max, strings.Join(names, ", "))
}

// raiseOrigins is the remedy for a server without a free origin state.
func raiseOrigins(s *probe.Snapshot) string {
	return fmt.Sprintf("raise max_replication_slots on %s above %d (it sizes the origin states as well as the slots; pglogical needs one state per subscription and one per table copied at once) and restart PostgreSQL (RDS: the parameter group, then a reboot); or drop an origin nothing uses (pg_replication_origin_drop, by a person: a disabled subscription's holds one too). Never lower it below the states held: PostgreSQL then does not start (\"could not find free replication state, increase max_replication_slots\")",
		s.Node, s.Origins.Max)
}

// originStatesFinding explains a subscription that is down because its
// apply worker finds no origin state.
func originStatesFinding(s *probe.Snapshot, sub probe.Subscription) (Finding, bool) {
	if !originStarved(s, sub) {
		return Finding{}, false
	}
	msg := fmt.Sprintf("subscription %s is down: %s has no replication origin state left for its origin %s (%s); its apply worker fails at each start (\"could not find free replication state slot for replication origin\") and restarting it cannot help: %s",
		sub.Name, s.Node, sub.SlotName, describeOrigins(s), raiseOrigins(s))
	if !sub.OriginExists && sub.SyncStatus == "r" {
		msg += ". Its origin does not exist either: once a state is free, pglmon reports origin_missing and re-creates it"
	}
	return Finding{Code: CodeOriginSlotsExhausted, Severity: Critical, Human: true, Message: msg}, true
}

// tablesStarved reports the tables of a replicating subscription that
// pglogical cannot copy for want of an origin state (every state held,
// none by a copy of this subscription): critical when no copy under way
// holds one (nothing will free one), else a warning (a copy's end frees
// its state, for which the sync worker's next start may come first).
func tablesStarved(s *probe.Snapshot, sub probe.Subscription, tables []probe.TableSync) (Finding, []string, bool) {
	copies := s.Origins.Copies()
	// Before its own first copy is over (sync status r) the subscription's
	// apply worker copies its tables itself, under its own origin.
	if len(tables) == 0 || sub.SyncStatus != "r" || !s.Origins.Full() || len(copies[sub.SlotName]) > 0 {
		return Finding{}, nil, false
	}
	var names []string
	for _, t := range tables {
		names = append(names, t.Schema+"."+t.Table)
	}
	f := Finding{Code: CodeOriginSlotsExhausted, Severity: Critical, Human: true}
	what := fmt.Sprintf("%s of %s cannot be copied: %s has no replication origin state left for the copy (%s); pglogical's sync worker fails at each start (\"could not find free replication state slot for replication origin\") and is started again at once, for ever, logging the error each time, while the %s nothing (a resynchronised table stays empty)",
		listTables(names), sub.Name, s.Node, describeOrigins(s), plural(names, "table receives", "tables receive"))
	var others []string
	for _, cs := range copies {
		others = append(others, cs...)
	}
	slices.Sort(others)
	if len(others) > 0 {
		f.Severity = Warning
		what += fmt.Sprintf("; until a copy under way (%s) ends and frees its state, which a start of this copy may then take", strings.Join(others, ", "))
	}
	f.Message = what + ": " + raiseOrigins(s)
	return f, names, true
}
