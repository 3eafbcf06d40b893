package diagnose

import (
	"fmt"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/probe"
)

// carrierGrace is how long a provider must have written heartbeats before
// a subscriber that receives them through no subscription is told: pglmon
// heartbeat install puts the table in the provider's set seconds before it
// gives the set to a subscription, and the daemon writes as soon as it is.
const carrierGrace = 5 * time.Minute

// carrierFindings checks, on subscriber s, the subscriptions from each
// configured provider that writes heartbeats: exactly one should carry
// them (the set pglmon_heartbeat). Through none (the carrier dropped, set
// up again or stripped of the set since the install: pglmon setup and
// upgrade restore give a new subscription its configured sets only),
// heartbeats_lost is measured for none of them, and its alert falls
// silent (their delay is read from their slots only).
// Through several, each heartbeat is applied once per carrier (a conflict
// each time after the first), and heartbeats arriving through one hide
// the delay and the lost changes of another.
// snaps are every configured node's snapshots, the providers among them.
// pglmon check-config --connect says the same (HeartbeatCarriers).
func carrierFindings(snaps []probe.Snapshot, s *probe.Snapshot) []Finding {
	var out []Finding
	for _, r := range s.HeartbeatRoutes() {
		prov := heartbeatProvider(snaps, r.ProviderNode)
		if prov == nil {
			continue
		}
		switch {
		case len(r.Carriers) > 1:
			out = append(out, Finding{Code: CodeHeartbeatCarriers, Severity: Warning, Human: true,
				Message: fmt.Sprintf("subscriptions %s on %s all carry the heartbeats of provider %s (the set %s): each heartbeat is applied through each of them (a conflict each time after the first), and those arriving through one hide the delay and the lost changes of the others; run pglmon heartbeat install, which keeps the set in one (the others' apply workers restart once)",
					strings.Join(r.Carriers, ", "), s.Node, prov.Node, probe.HeartbeatSet)})
		case len(r.Carriers) == 0:
			own, ok := prov.Heartbeat.Nodes[prov.LocalNode]
			if !ok || prov.Heartbeat.Clock.Sub(own.Oldest) < carrierGrace {
				continue // nothing written yet, or an install under way
			}
			out = append(out, Finding{Code: CodeHeartbeatCarriers, Severity: Warning, Human: true,
				Message: fmt.Sprintf("provider %s writes heartbeats, but no subscription from it on %s carries them (the set %s; its carrier dropped, set up again or stripped of the set since pglmon heartbeat install): heartbeats_lost is not measured for %s, and their replication_delay_seconds only from their slots; run pglmon heartbeat install, which gives the set to one (its apply worker restarts once)",
					prov.Node, s.Node, probe.HeartbeatSet, strings.Join(r.Subscriptions, ", "))})
		}
	}
	return out
}

// HeartbeatCarriers is the heartbeat_carriers finding of each subscriber
// among snaps (every configured node's), by node: for pglmon check-config.
func HeartbeatCarriers(snaps []probe.Snapshot) map[string][]Finding {
	out := map[string][]Finding{}
	for i := range snaps {
		if s := &snaps[i]; s.Up() && !s.InRecovery {
			if fs := carrierFindings(snaps, s); len(fs) > 0 {
				out[s.Node] = fs
			}
		}
	}
	return out
}

// heartbeatProvider is the node among snaps, up, whose pglogical node is
// name and which writes heartbeats; nil when there is none.
func heartbeatProvider(snaps []probe.Snapshot, name string) *probe.Snapshot {
	for i := range snaps {
		p := &snaps[i]
		if p.Up() && !p.InRecovery && p.LocalNode == name && p.Heartbeat != nil && p.Heartbeat.Provides {
			return p
		}
	}
	return nil
}
