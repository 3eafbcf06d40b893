package diagnose

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/shellword"
)

// Input is everything a diagnosis looks at.
type Input struct {
	Now        time.Time
	Thresholds config.Thresholds
	// Snapshots holds one snapshot per configured node, in config order.
	Snapshots []probe.Snapshot
	History   *History
	// Schema holds, by subscriber/subscription, the replicated tables whose
	// shape on the subscriber makes pglogical's apply fail (package drift).
	Schema map[string][]SchemaMismatch
	// LeftSets holds, by subscriber/subscription, the tables pglogical
	// copied for it, or pglmon saw in its sets, that none of its sets
	// holds any more (packages drift and monitor).
	LeftSets map[string][]string
	// Unreadable holds, by subscriber/subscription, the tables of its sets
	// the role of its provider connection may not copy (package drift).
	Unreadable map[string]CopyDenied
	// Sequences holds, by subscriber/subscription, the sequences of its
	// sets the subscriber has lacked a value of its provider's for a while
	// (package monitor, across cycles).
	Sequences map[string][]SequenceBehind
	// Unreplicated holds, by node, the tables the configuration's
	// replication sets stand for that the node's sets do not hold (package
	// topology).
	Unreplicated map[string][]UnreplicatedTable
	// Declared are the subscriptions the configuration describes (its
	// subscriptions:, which pglmon setup creates): one its reachable
	// subscriber does not have is reported (subscription_missing).
	Declared []config.Subscription
	// ProviderWAL holds, by provider node, where its WAL ended when read
	// again after every subscriber was probed; only providers some
	// subscriber's origin had passed in the probe are read
	// (provider_rewound).
	ProviderWAL map[string]probe.LSN
}

// UnreplicatedTable is a table a replication set of the configuration
// stands for (listed in tables:, in a schema of schemas:, or a partition of
// either) that the set on its node does not hold.
type UnreplicatedTable struct {
	Set string `json:"set"`
	// Table is schema.table, quoted where SQL needs it.
	Table string `json:"table"`
	// Schema and Relname are the names unquoted.
	Schema  string `json:"-"`
	Relname string `json:"-"`
}

// listTables says "table t" or "tables t1, t2" (schema.table given
// unquoted, said as SQL reads it).
func listTables(ts []string) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = pgident.RegclassOf(t)
	}
	if len(ts) == 1 {
		return "table " + names[0]
	}
	return "tables " + strings.Join(names, ", ")
}

func plural(ts []string, one, more string) string {
	if len(ts) == 1 {
		return one
	}
	return more
}

// Diagnose turns the latest snapshots into a report.
func Diagnose(in Input) Report {
	h := in.History
	if h == nil {
		h = NewHistory()
	}
	d := diagnosis{Input: in, h: h, byName: map[string]*probe.Snapshot{}}
	for i := range in.Snapshots {
		d.byName[in.Snapshots[i].Node] = &in.Snapshots[i]
	}
	d.loops = d.echoes()
	r := Report{Time: in.Now, Health: OK}
	for i := range in.Snapshots {
		s := &in.Snapshots[i]
		subs := s.Subscriptions
		if !s.Up() {
			subs = h.Known[s.Node]
		}
		for _, sub := range subs {
			r.Subscriptions = append(r.Subscriptions, d.subscription(s, sub))
		}
	}
	r.Subscriptions = append(r.Subscriptions, d.declared(r.Subscriptions)...)
	r.Nodes = d.nodes()
	for _, s := range r.Subscriptions {
		r.Health = Worst(r.Health, s.Health)
	}
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			r.Health = Worst(r.Health, f.Severity)
		}
	}
	return r
}

type diagnosis struct {
	Input
	h      *History
	byName map[string]*probe.Snapshot
	// loops are the ways back to where changes were made (echoes).
	loops map[string]Echo
}

// declared compares the subscriptions the configuration describes with
// those their subscribers (up and probed) have: one with other replication
// sets than it says gets subscription_sets_differ among subs; one the
// subscriber does not have (dropped by hand or by an interrupted upgrade,
// lost with a restored snapshot, or never created) is returned, with
// subscription_missing. Without that, a dropped subscription would simply
// vanish from the report, and its alerts resolve.
func (d *diagnosis) declared(subs []Subscription) (missing []Subscription) {
	for _, sb := range d.Declared {
		s := d.byName[sb.Subscriber]
		if s == nil || !s.Up() {
			continue
		}
		i := slices.IndexFunc(s.Subscriptions, func(x probe.Subscription) bool { return x.Name == sb.Name })
		if i < 0 {
			missing = append(missing, missingSubscription(sb, s))
			continue
		}
		if j := slices.IndexFunc(subs, func(x Subscription) bool { return x.Subscriber == sb.Subscriber && x.Name == sb.Name }); j >= 0 {
			setsDiffer(&subs[j], sb, s.Subscriptions[i].ReplicationSets)
		}
	}
	return missing
}

func missingSubscription(sb config.Subscription, s *probe.Snapshot) Subscription {
	where := "no pglogical node"
	if s.LocalNode != "" {
		where = "pglogical node " + s.LocalNode
	}
	return Subscription{Name: sb.Name, Subscriber: sb.Subscriber, Provider: sb.Provider, Status: StatusMissing, Health: Critical,
		Findings: []Finding{{Code: CodeSubscriptionMissing, Severity: Critical, Human: true,
			Message: fmt.Sprintf("subscription %s, which the configuration describes (from %s, sets %s), does not exist on %s (%s): nothing of those sets replicates to it (dropped by hand or by upgrade prepare, lost with a restored snapshot, or never created); after upgrade prepare, pglmon upgrade restore puts it back without copying data; otherwise pglmon setup plan shows how setup apply would create it",
				sb.Name, sb.Provider, strings.Join(sb.ReplicationSets, ", "), sb.Subscriber, where)}}}
}

// setsDiffer adds subscription_sets_differ to sub, which replicates sets
// have, when they are not those the configuration gives it (sb).
func setsDiffer(sub *Subscription, sb config.Subscription, have []string) {
	var lacks, extra []string
	for _, set := range sb.ReplicationSets {
		if !slices.Contains(have, set) {
			lacks = append(lacks, set)
		}
	}
	// pglmon heartbeat install adds its own set to every subscription.
	have = slices.DeleteFunc(slices.Clone(have), func(set string) bool { return set == probe.HeartbeatSet })
	for _, set := range have {
		if !slices.Contains(sb.ReplicationSets, set) {
			extra = append(extra, set)
		}
	}
	if len(lacks)+len(extra) == 0 {
		return
	}
	var says []string
	if len(lacks) > 0 {
		says = append(says, fmt.Sprintf("the tables of %s reach it from no set of its own (pglmon setup apply adds them: alter_subscription_add_replication_set, then alter_subscription_synchronize to copy their rows unless synchronize_data is false)", strings.Join(lacks, ", ")))
	}
	if len(extra) > 0 {
		says = append(says, fmt.Sprintf("it also replicates %s, which the configuration does not list for it (pglmon does not take a set away: pglogical.alter_subscription_remove_replication_set('%s', '<set>'), or list it)",
			strings.Join(extra, ", "), strings.ReplaceAll(sb.Name, "'", "''")))
	}
	sub.Findings = append(sub.Findings, Finding{Code: CodeSubscriptionSetsDiffer, Severity: Warning, Human: true,
		Message: fmt.Sprintf("subscription %s on %s replicates sets %s; the configuration says %s: %s",
			sb.Name, sb.Subscriber, strings.Join(have, ", "), strings.Join(sb.ReplicationSets, ", "), strings.Join(says, "; "))})
	sub.Health = Worst(sub.Health, Warning)
}

// provider finds the configured node whose pglogical node name is name. When
// none matches but some node is down, that node may be it: down is returned.
func (d *diagnosis) provider(name string) (snap *probe.Snapshot, down []string) {
	for i := range d.Snapshots {
		s := &d.Snapshots[i]
		local := s.LocalNode
		if !s.Up() {
			local = d.h.LocalNodes[s.Node]
		}
		if local == name && name != "" {
			if !s.Up() {
				return nil, []string{s.Node}
			}
			return s, nil
		}
	}
	for i := range d.Snapshots {
		s := &d.Snapshots[i]
		if !s.Up() && d.h.LocalNodes[s.Node] == "" {
			down = append(down, s.Node)
		}
	}
	return nil, down
}

func (d *diagnosis) subscription(subscriber *probe.Snapshot, sub probe.Subscription) Subscription {
	out := Subscription{
		Name: sub.Name, Subscriber: subscriber.Node, ProviderNode: sub.ProviderNode,
		Status: sub.Status, Enabled: sub.Enabled, SlotName: sub.SlotName, OriginExists: sub.OriginExists,
		ApplyWorker: sub.ApplyWorker, LockWait: sub.LockWait, Findings: []Finding{},
		ProviderInterface: sub.ProviderInterface, ProviderConninfo: sub.ProviderConninfo, ApplyDelaySeconds: sub.ApplyDelaySeconds,
		WorkerAgeSeconds: sub.WorkerAgeSeconds, ReplicationSets: sub.ReplicationSets, ForwardOrigins: sub.ForwardOrigins,
	}
	if sub.OriginExists && sub.OriginRemoteLSN > 0 {
		out.OriginRemoteLSN = sub.OriginRemoteLSN.String()
	}
	add := func(f Finding) { out.Findings = append(out.Findings, f) }
	if !subscriber.Up() {
		out.Status = ""
		add(Finding{Code: CodeNodeUnreachable, Severity: Unknown,
			Message: fmt.Sprintf("subscriber %s cannot be reached: %v; the state of %s is unknown", subscriber.Node, subscriber.Err, sub.Name)})
		out.Health = Unknown
		return out
	}
	if subscriber.InRecovery {
		out.Status = ""
		add(Finding{Code: CodeNodeInRecovery, Severity: Unknown,
			Message: fmt.Sprintf("subscriber %s is a standby (in recovery) as pglmon reaches it: pglogical runs no worker there, so the state of %s is unknown from it (it runs, if at all, on the primary); point %s's dsn at the primary", subscriber.Node, sub.Name, subscriber.Node)})
		out.Health = Unknown
		return out
	}
	prov, downNodes := d.provider(sub.ProviderNode)
	if prov != nil && prov.InRecovery {
		// Its slot lives on the primary: nothing about it can be read here.
		add(Finding{Code: CodeNodeInRecovery, Severity: Unknown,
			Message: fmt.Sprintf("provider %s is a standby (in recovery) as pglmon reaches it: the slot of %s lives on the primary, so its slot, lag and retained WAL cannot be checked; point %s's dsn at the primary", prov.Node, sub.Name, prov.Node)})
		prov, downNodes = nil, []string{prov.Node}
	}
	var slot probe.Slot
	var slotFound bool
	if prov != nil {
		out.Provider, out.ProviderUp = prov.Node, true
		slot, slotFound = prov.Slot(sub.SlotName)
		out.SlotFound, out.SlotActive, out.SlotWALStatus = slotFound, slot.Active, slot.WALStatus
		if slotFound {
			lag, retained := slot.LagBytes, slot.RetainedBytes
			out.LagBytes, out.RetainedWALBytes = &lag, &retained
			if slot.Sender != nil && slot.Sender.ReplayLag != nil {
				out.LagSeconds = slot.Sender.ReplayLag
			}
		}
	} else if len(downNodes) == 1 {
		out.Provider = downNodes[0]
	}
	key := subKey(subscriber.Node, sub.Name)
	// The daemon's last reading stands while no walsender says the role.
	if out.ProviderRole = sub.ProviderRole(prov); out.ProviderRole == "" {
		out.ProviderRole = d.Unreadable[key].Role
	}
	if t, ok := d.h.DownSince[key]; ok && sub.Status == probe.StatusDown {
		out.DownSince = &t
	}
	if t, ok := d.h.UpSince[key]; ok && sub.Status == probe.StatusReplicating && d.Now.Sub(d.h.DownSince[key]) >= d.Thresholds.DownGrace.D() {
		out.UpSince = &t
	}
	if q, ok := d.h.Quiet[key]; ok && sub.Enabled && slotFound && !slot.Active {
		t := q.Since
		if a := sub.WorkerAgeSeconds; a != nil && sub.Status == probe.StatusReplicating {
			if started := d.Now.Add(-time.Duration(*a * float64(time.Second))); started.Before(t) {
				t = started
			}
		}
		out.NotStreamingSince = &t
	}

	elsewhere := false
	switch {
	case !sub.Enabled || sub.Status == probe.StatusDisabled:
		add(Finding{Code: CodeSubscriptionDisabled, Severity: Warning, Remedy: RemedyEnable,
			Message: fmt.Sprintf("subscription %s is disabled on %s; no changes are applied until it is enabled", sub.Name, subscriber.Node)})
	case sub.Status == probe.StatusDown:
		d.down(&out, subscriber, sub, prov, downNodes, slot, slotFound)
	case sub.Status == probe.StatusReplicating && originStarved(subscriber, sub):
		// Its worker, in the second after each start in which pglogical
		// says replicating, has no origin state: it is about to fail.
		d.down(&out, subscriber, sub, prov, downNodes, slot, slotFound)
	case sub.Status == probe.StatusReplicating && !sub.OriginExists && sub.SyncStatus == "r":
		// A synchronised subscription cannot apply without its origin:
		// pglogical says replicating for about a second each time it
		// starts the apply worker again, which then fails on the missing
		// origin. That sample is the crash loop, not a recovery.
		d.down(&out, subscriber, sub, prov, downNodes, slot, slotFound)
	case sub.Status == probe.StatusReplicating:
		if f, ok := d.notStreaming(&out, sub, prov, slot); ok {
			add(f)
		} else if f, ok := d.elsewhere(sub, prov, slotFound); ok {
			add(f)
			// Its sets and tables, read on that node, are not the ones
			// the subscription replicates.
			elsewhere = true
		}
	}
	if f, ok := d.rewound(&out, sub, prov, slot, slotFound); ok {
		add(f)
	}
	if ec, ok := d.loops[key]; ok {
		add(loopFinding(sub, ec))
	}
	if ms := reported(d.Schema[key]); len(ms) > 0 && sub.Status != probe.StatusDown && !elsewhere {
		out.ColumnTypes, out.Keys = columnTypes(ms), keys(ms)
		sev, next := Warning, "the next change to such a table stops the subscription"
		if !slices.ContainsFunc(ms, SchemaMismatch.Breaks) {
			next = "make the subscriber's tables match the provider's"
		}
		switch {
		case slices.ContainsFunc(ms, SchemaMismatch.Crashes):
			sev, next = Critical, "the next change to such a table stops the subscription, or crashes the subscriber's server"
		case slices.ContainsFunc(ms, SchemaMismatch.breaksAtOnce):
			sev = Critical
		}
		add(Finding{Code: CodeSchemaMismatch, Severity: sev, Human: true,
			Message: fmt.Sprintf("the tables of %s differ between provider and subscriber (pglogical does not replicate DDL): %s; %s", sub.Name, describe(ms), next)})
	}
	if ss := d.Sequences[key]; len(ss) > 0 && sub.Status == probe.StatusReplicating && !elsewhere {
		out.SequencesBehind = ss
		add(SequenceFinding(sub.Name, ss, d.Now))
	}
	if left := d.LeftSets[key]; len(left) > 0 && !elsewhere {
		out.TablesLeftSets = left
		provider := out.Provider
		if provider == "" {
			provider = sub.ProviderNode
		}
		add(Finding{Code: CodeTableLeftSet, Severity: Warning, Human: true,
			Message: fmt.Sprintf("%s replicated by %s to %s %s in none of its replication sets (%s) on %s any more (taken out with replication_set_remove_table, dropped or renamed there, or a set taken from the subscription); pglogical reports nothing wrong, but no change made there since reaches %s, whose copy grows stale",
				listTables(left), sub.Name, subscriber.Node, plural(left, "is", "are"), strings.Join(sub.ReplicationSets, ", "), provider, subscriber.Node)})
	}
	if denied := d.Unreadable[key]; len(denied.Tables) > 0 && !elsewhere {
		add(copyDeniedFinding(sub, out.Provider, denied.Role, denied.Tables))
	}
	if denied := d.Unreadable[key]; len(denied.Filters) > 0 && !elsewhere {
		add(filterDeniedFinding(sub, out.Provider, denied.Role, denied.Filters))
	}
	if prov == nil && len(downNodes) == 0 {
		add(Finding{Code: CodeProviderNotConfigured, Severity: Warning,
			Message: fmt.Sprintf("provider node %q of %s is not among the configured nodes; add it to check its slot, lag and retained WAL", sub.ProviderNode, sub.Name)})
	}
	if prov != nil && slotFound {
		d.slotFindings(&out, prov, slot)
	}
	if f, ok := applyDelayFinding(sub, prov); ok {
		add(f)
	}
	if f, ok := d.delay(&out, subscriber, sub, prov); ok {
		add(f)
	}
	if sub.Status == probe.StatusInitializing || sub.Status == probe.StatusReplicating {
		d.tableSync(&out, subscriber, sub)
		if f, ok := d.lockFinding(subscriber.Node, sub); ok {
			add(f)
		}
	}
	out.Health = OK
	for _, f := range out.Findings {
		out.Health = Worst(out.Health, f.Severity)
	}
	return out
}

// rewound reports provider_rewound: the subscriber has applied the
// provider's changes up to its origin's remote_lsn, past where the
// provider's WAL ends when read after the subscriber was probed. Measured
// with pglogical 2.4.2 (the provider's data directory put back from a copy
// taken earlier, as a restore from a backup or snapshot does, or a failover
// to a standby that had not received the last WAL): pglogical asks for the
// changes after its origin, the provider's logical decoding passes over
// every transaction committed before that point, and the subscriber says
// replicating while the provider's new transactions are skipped, silently,
// until its WAL passes it.
func (d *diagnosis) rewound(out *Subscription, sub probe.Subscription, prov *probe.Snapshot, slot probe.Slot, slotFound bool) (Finding, bool) {
	if prov == nil || !slotFound || !sub.OriginExists || sub.OriginRemoteLSN == 0 {
		// Without the slot the subscription may stream from another
		// server (provider_elsewhere), whose LSNs these are.
		return Finding{}, false
	}
	wal, ok := d.ProviderWAL[prov.Node]
	if !ok || sub.OriginRemoteLSN <= wal {
		return Finding{}, false
	}
	out.Rewound = &Rewind{OriginLSN: sub.OriginRemoteLSN.String(), ProviderLSN: wal.String(), SlotConfirmedLSN: slot.ConfirmedFlushLSN.String()}
	gap := config.FormatBytes(int64(sub.OriginRemoteLSN - wal))
	msg := fmt.Sprintf("%s has applied changes of %s up to %s (its replication origin's remote_lsn), but %s's WAL now ends at %s, %s earlier: %s was restored from a backup or snapshot, or failed over to a standby that had not received that WAL. "+
		"pglogical asks %s for the changes after %s, so every transaction %s commits until its WAL passes that point is skipped, silently, while the subscription says %s (measured with pglogical 2.4.2); and %s holds changes %s no longer has",
		out.Subscriber, prov.Node, sub.OriginRemoteLSN, prov.Node, wal, gap, prov.Node, prov.Node, sub.OriginRemoteLSN, prov.Node, sub.Status, out.Subscriber, prov.Node)
	f := Finding{Code: CodeProviderRewound, Severity: Critical, Human: true, Remedy: RemedyRewindOrigin}
	f.Message = msg + fmt.Sprintf(". To stop the skipping: pglmon repair --subscription %s --remedy rewind-origin (disables it, moves its origin back to where slot %s confirmed, %s, and enables it: the provider's transactions from there on are applied); decide first whether the subscriber, which holds what %s lost, should become the provider instead. Then pglmon verify --subscription %s names the rows either side lacks",
		shellword.Quote(sub.Name), sub.SlotName, slot.ConfirmedFlushLSN, prov.Node, shellword.Quote(sub.Name))
	return f, true
}

var okSyncAtStart = map[string]bool{"i": true, "u": true, "r": true, "": true}

// down explains a `down` subscription; the order is the order of certainty.
func (d *diagnosis) down(out *Subscription, subscriber *probe.Snapshot, sub probe.Subscription, prov *probe.Snapshot, downNodes []string, slot probe.Slot, slotFound bool) {
	add := func(f Finding) { out.Findings = append(out.Findings, f) }
	if !okSyncAtStart[sub.SyncStatus] {
		msg := fmt.Sprintf("subscription %s is down and its initial synchronisation stopped in a step that cannot resume (sync status %q); the subscription must be set up again", sub.Name, sub.SyncStatus)
		var refused []string
		for _, m := range d.Schema[subKey(subscriber.Node, sub.Name)] {
			if len(m.CopyRefused) > 0 {
				refused = append(refused, fmt.Sprintf("%s (%s)", pgident.RegclassOf(m.Table), strings.Join(m.CopyRefused, ", ")))
			}
		}
		if len(refused) > 0 {
			// Set up again with its copy, it fails the same way.
			msg += fmt.Sprintf(", without its copy: its sets hold %s %s with generated columns, which pglogical 2.4.2 lists in the COPY of its first copy, and PostgreSQL refuses that (\"column is a generated column\"), at every attempt (measured); drop it, create it again with synchronize_data := false, then copy the tables' rows with pglmon verify --copy-script",
				plural(refused, "table", "tables"), strings.Join(refused, ", "))
		}
		add(Finding{Code: CodeInitFailed, Severity: Critical, Human: true, Message: msg})
		return
	}
	if prov == nil && len(downNodes) > 0 {
		if _, standby := out.Finding(CodeNodeInRecovery); !standby {
			add(Finding{Code: CodeNodeUnreachable, Severity: Unknown,
				Message: fmt.Sprintf("subscription %s is down and its provider (%s) cannot be reached by pglmon; its slot cannot be checked", sub.Name, strings.Join(downNodes, ", "))})
		}
		return
	}
	// A subscription that never started (sync status i) has no slot yet:
	// its apply worker creates it when the initial synchronisation begins.
	notStarted := sub.SyncStatus == "i" && !slotFound
	if prov != nil && !slotFound && !notStarted {
		add(Finding{Code: CodeSlotMissing, Severity: Critical, Human: true,
			Message: fmt.Sprintf("subscription %s is down: its slot %s does not exist on provider %s; changes made on the provider since it was dropped are lost to the subscriber (resynchronise the tables or re-create the subscription)", sub.Name, sub.SlotName, prov.Node)})
		return
	}
	if slotFound && slot.WALStatus == "lost" {
		return // slotFindings reports slot_wal_lost
	}
	if f, ok := originStatesFinding(subscriber, sub); ok {
		add(f) // before origin_missing: a new origin would find no state either
		return
	}
	if !sub.OriginExists && !notStarted {
		evidence := "the provider's slot could not be checked"
		remedy := ""
		if slotFound {
			evidence = fmt.Sprintf("provider slot %s exists (active=%t, wal_status %s, retaining %s)", slot.Name, slot.Active, slot.WALStatus, config.FormatBytes(slot.RetainedBytes))
			remedy = RemedyRecreateOrigin
		}
		add(Finding{Code: CodeOriginMissing, Severity: Critical, Remedy: remedy,
			Message: fmt.Sprintf("subscription %s is down: replication origin %s does not exist on %s (as after a major-version upgrade); %s", sub.Name, sub.SlotName, subscriber.Node, evidence)})
		return
	}
	if ms := breaking(d.Schema[subKey(subscriber.Node, sub.Name)]); len(ms) > 0 {
		// Those that do not stop the apply too: its plan fixes them all.
		all := reported(d.Schema[subKey(subscriber.Node, sub.Name)])
		out.ColumnTypes, out.Keys = columnTypes(all), keys(all)
		add(Finding{Code: CodeSchemaMismatch, Severity: Critical, Human: true,
			Message: fmt.Sprintf("subscription %s is down because the tables differ (pglogical does not replicate DDL, and restarting does not help): %s", sub.Name, describe(ms))})
		return
	}
	if f, ok := d.notStreaming(out, sub, prov, slot); ok {
		add(f) // between two of its worker's hung connection attempts
		return
	}
	since := d.Now
	if out.DownSince != nil {
		since = *out.DownSince
	}
	dur := d.Now.Sub(since)
	grace := d.Thresholds.DownGrace.D()
	if dur < grace {
		add(Finding{Code: CodeSubscriptionDown, Severity: Warning,
			Message: fmt.Sprintf("subscription %s is down (for %s, under down_grace %s); pglogical restarts a crashed worker within about 5 s, but after a set was added to it or removed its manager may start none for up to 180 s (pglmon repair --subscription %s --remedy restart starts one now)", sub.Name, dur.Round(time.Second), grace, shellword.Quote(sub.Name))})
		return
	}
	if w := subscriber.Workers; w != nil && w.Max > 0 && w.InUse+subscriber.WorkersNeeded() > w.Max {
		add(Finding{Code: CodeWorkerSlotsExhausted, Severity: Critical, Human: true,
			Message: fmt.Sprintf("subscription %s is down and %s has no background worker slot left to start its apply worker in (%s; pglogical's manager logs \"worker registration failed, you might want to increase max_worker_processes setting\"); restarting it cannot help: %s",
				sub.Name, subscriber.Node, describeWorkers(*w, subscriber.WorkersNeeded()), raiseWorkers(*w))})
		return
	}
	if f, ok := slotInUse(subscriber.Node, sub, prov, slot, grace); ok {
		add(f)
		return
	}
	if notStarted {
		add(Finding{Code: CodeStuckDown, Severity: Critical,
			Message: fmt.Sprintf("subscription %s has been down for %s (down_grace %s) and has never started: its initial synchronisation has not begun (sync status i), and its slot on %s is created when it does; the subscriber's log says why its apply worker does not start", sub.Name, dur.Round(time.Second), grace, prov.Node)})
		return
	}
	remedy := ""
	if slotFound {
		remedy = RemedyRestart
	}
	add(Finding{Code: CodeStuckDown, Severity: Critical, Remedy: remedy,
		Message: fmt.Sprintf("subscription %s has been down for %s (down_grace %s) with slot and origin present; pglogical backs off up to 180 s after a provider outage, and its manager can miss that a change to the subscription (a set added or removed) ended its worker and start none until its next round, up to 180 s on; a restart starts one now", sub.Name, dur.Round(time.Second), grace)})
}

// notStreaming explains a subscription whose apply worker runs without
// streaming: nothing has streamed from its slot for down_grace, and in that
// time a worker has run for FlapWindow or longer without connecting
// (History.Quiet; its age needs pg_read_all_stats). pglogical says replicating all the while the worker
// waits for its connection, and down for the ~5 s between attempts; a
// restart hangs the same way.
func (d *diagnosis) notStreaming(out *Subscription, sub probe.Subscription, prov *probe.Snapshot, slot probe.Slot) (Finding, bool) {
	q, ok := d.h.Quiet[subKey(out.Subscriber, sub.Name)]
	grace := d.Thresholds.DownGrace.D()
	if !ok || prov == nil || slot.Active || !q.Hung() {
		return Finding{}, false
	}
	// The worker's age also bounds the time: it has not streamed since it
	// started (an apply worker exits when its connection drops).
	quiet := max(d.Now.Sub(q.Since), q.Longest)
	if sub.Status == probe.StatusReplicating && sub.WorkerAgeSeconds != nil {
		quiet = max(quiet, time.Duration(*sub.WorkerAgeSeconds*float64(time.Second)))
	}
	if quiet < grace {
		return Finding{}, false
	}
	via := ""
	if sub.ProviderInterface != "" {
		via = " through interface " + sub.ProviderInterface
	}
	if sub.ProviderConninfo != "" {
		via += " (" + sub.ProviderConninfo + ")"
	}
	return Finding{Code: CodeNotStreaming, Severity: Critical, Human: true,
		Message: fmt.Sprintf("subscription %s (status %s) has not streamed from its slot %s on provider %s for %s (down_grace %s): its apply worker has run for up to %s at a time without connecting%s, and pglogical starts it again each time the attempt times out. "+
			"The connection hangs on the way to the provider: packets dropped by a firewall, security group or network ACL, a route or a cached DNS answer leading to an old address of the provider (a replaced endpoint), or a server that accepts connections and never answers. "+
			"pglmon itself reaches the provider; restarting the subscription hangs the same way. The slot keeps the provider's changes meanwhile (retaining %s)",
			sub.Name, sub.Status, slot.Name, prov.Node, quiet.Round(time.Second), grace, q.Longest.Round(time.Second), via, config.FormatBytes(slot.RetainedBytes))}, true
}

// elsewhere explains a synchronised subscription whose apply worker has
// run for down_grace or longer, saying replicating, while its configured
// provider (the node whose pglogical node has the name of the
// subscription's provider) has no slot of its name in its database: the
// worker streams from another server or database whose pglogical node has
// that name. pglmon's dsn for the node may point elsewhere (a replica, a
// reader endpoint, another database), or the subscription follows an old
// server (the instance the provider was restored or failed over from),
// where no write arrives any more: its data grows stale while everything
// says replicating. The worker's age needs pg_read_all_stats; without it
// nothing is said (a worker in a crash loop says replicating for about a
// second at each start).
func (d *diagnosis) elsewhere(sub probe.Subscription, prov *probe.Snapshot, slotFound bool) (Finding, bool) {
	grace := d.Thresholds.DownGrace.D()
	if prov == nil || slotFound || sub.SyncStatus != "r" || sub.WorkerAgeSeconds == nil || *sub.WorkerAgeSeconds < grace.Seconds() {
		return Finding{}, false
	}
	via := ""
	if sub.ProviderConninfo != "" {
		via = " (its provider connection string: " + sub.ProviderConninfo + ")"
	}
	age := time.Duration(*sub.WorkerAgeSeconds * float64(time.Second)).Round(time.Second)
	return Finding{Code: CodeProviderElsewhere, Severity: Critical, Human: true,
		Message: fmt.Sprintf("subscription %s says replicating and its apply worker has run for %s, but provider %s has no slot %s in its database: the worker streams from another server or database whose pglogical node is also named %s%s. "+
			"Either pglmon's dsn for %s points elsewhere (a replica, a reader endpoint, another database), or the subscription follows an old server (one the provider was restored or failed over from) and no write made on %s reaches it; pglmon cannot see its lag or retained WAL meanwhile",
			sub.Name, age, prov.Node, sub.SlotName, sub.ProviderNode, via, prov.Node, prov.Node)}, true
}

// staleReply is how long a walsender's consumer may stay silent before it
// is probably gone: a live pglogical apply worker replies every few seconds
// (seen: at most ~7 s apart on an idle provider), and the walsender drops a
// silent one after wal_sender_timeout (60 s by default).
const staleReply = 30 * time.Second

// slotInUse explains a down subscription whose slot another process streams
// from. A slot has one consumer at a time: pglogical's worker fails with
// "replication slot ... is active for PID n" until that process lets go, so
// restarting the subscription cannot help. A walsender connected for less
// than the grace may be the subscription's own worker, reconnecting.
func slotInUse(subscriber string, sub probe.Subscription, prov *probe.Snapshot, slot probe.Slot, grace time.Duration) (Finding, bool) {
	if prov == nil || !slot.Active || slot.ActivePID == 0 {
		return Finding{}, false
	}
	snd := slot.Sender
	if snd != nil && snd.ConnectedSeconds != nil && *snd.ConnectedSeconds < grace.Seconds() {
		return Finding{}, false
	}
	var b strings.Builder
	fmt.Fprintf(&b, "subscription %s is down because another process holds its slot %s on %s (a slot has one consumer at a time; the worker on %s fails with \"replication slot ... is active for PID %d\", and restarting the subscription cannot help): ",
		sub.Name, slot.Name, prov.Node, subscriber, slot.ActivePID)
	if snd == nil {
		fmt.Fprintf(&b, "pid %d, which is not a walsender pglmon can see (a session reading the slot with pg_logical_slot_get_changes, or a walsender hidden from this role); see it in pg_stat_activity on %s and end it there once its owner agrees: SELECT pg_terminate_backend(%d)",
			slot.ActivePID, prov.Node, slot.ActivePID)
	} else {
		b.WriteString(describeSender(*snd))
		switch {
		case snd.ReplySeconds == nil || *snd.ReplySeconds >= staleReply.Seconds():
			fmt.Fprintf(&b, ". Its consumer last replied %s: probably a connection left behind by the worker of %s itself, after a network failure or a crash of %s's host; the walsender ends after %s's wal_sender_timeout (never, if that is 0). A person can end it now, on %s: SELECT pg_terminate_backend(%d) (nothing is at its other end)",
				replyAge(snd), sub.Name, subscriber, prov.Node, prov.Node, snd.PID)
		case snd.ApplicationName == sub.Name:
			fmt.Fprintf(&b, ". Its consumer is alive and is a pglogical subscription named %s: most likely a copy of %s (a restored snapshot, a promoted replica, a cloned volume) running the same subscription. Every change the copy confirms leaves the slot and is lost to %s. On the copy%s run SELECT pglogical.alter_subscription_disable('%s', true) (never pglogical.drop_subscription there: it drops this slot on %s); %s takes its slot back when its apply worker next starts (pglogical may wait up to 180 s; a restart of %s, which pglmon's daemon makes once it is down for down_grace, skips the wait). Ending the walsender alone does not help: the copy reconnects",
				sub.Name, subscriber, sub.Name, fromAddr(snd), strings.ReplaceAll(sub.Name, "'", "''"), prov.Node, sub.Name, sub.Name)
		default:
			fmt.Fprintf(&b, ". Its consumer is alive and is not a pglogical subscription of this name: another tool streams from this slot (pg_recvlogical, a change-data-capture connector) and every change it confirms is lost to %s. Stop that consumer%s; %s takes its slot back when its apply worker next starts (pglogical may wait up to 180 s; a restart of %s, which pglmon's daemon makes once it is down for down_grace, skips the wait)",
				sub.Name, fromAddr(snd), sub.Name, sub.Name)
		}
	}
	if sub.OriginRemoteLSN != 0 && slot.ConfirmedFlushLSN > sub.OriginRemoteLSN {
		fmt.Fprintf(&b, ". The slot is confirmed up to %s, %s past what %s has applied (its origin is at %s): changes committed on %s in that WAL were consumed by the other process, not applied on %s; once %s replicates again, compare the tables (pglmon verify --subscription %s) and resynchronise those that differ",
			slot.ConfirmedFlushLSN, config.FormatBytes(int64(slot.ConfirmedFlushLSN-sub.OriginRemoteLSN)), sub.Name, sub.OriginRemoteLSN, prov.Node, subscriber, sub.Name, shellword.Quote(sub.Name))
	}
	return Finding{Code: CodeSlotInUse, Severity: Critical, Human: true, Slot: slot.Name, Message: b.String()}, true
}

// applyDelayFinding warns when a subscription's apply_delay is at least its
// provider's wal_sender_timeout. While pglogical holds a transaction back it
// does not answer its walsender, which the provider ends once
// wal_sender_timeout passes without an answer; the subscription goes down
// and starts again around every delayed transaction (seen with pglogical
// 2.4.2: apply_delay 90s, wal_sender_timeout 1min).
func applyDelayFinding(sub probe.Subscription, prov *probe.Snapshot) (Finding, bool) {
	if sub.ApplyDelaySeconds <= 0 || prov == nil || prov.Capacity == nil || prov.Capacity.SenderTimeoutMS <= 0 {
		return Finding{}, false
	}
	delay := time.Duration(sub.ApplyDelaySeconds * float64(time.Second))
	timeout := time.Duration(prov.Capacity.SenderTimeoutMS) * time.Millisecond
	if delay < timeout {
		return Finding{}, false
	}
	return Finding{Code: CodeApplyDelayTimeout, Severity: Warning, Human: true,
		Message: fmt.Sprintf("%s has apply_delay %s, not shorter than wal_sender_timeout %s on its provider %s: while pglogical holds a transaction back it does not answer its walsender, which the provider ends when wal_sender_timeout passes (its log: \"terminating walsender process due to replication timeout\"); the subscription then goes down and starts again around every delayed transaction, and falls behind. Raise wal_sender_timeout on the provider above the delay, or 0 (a reload; RDS: the parameter group, no reboot), or use a shorter apply_delay",
			sub.Name, delay, timeout, prov.Node)}, true
}

// capacityFinding warns on a provider (a node with a pglogical slot) with
// at most one replication slot or walsender left: pglogical needs one of
// each per subscription, and one more of each per table it copies at once.
func capacityFinding(s *probe.Snapshot) (Finding, bool) {
	var msgs []string
	if c := s.Capacity; c != nil && slices.ContainsFunc(s.Slots, func(sl probe.Slot) bool { return sl.Plugin == "pglogical_output" }) {
		var low []string
		if left := c.MaxSlots - c.Slots; left <= 1 {
			low = append(low, fmt.Sprintf("%d of max_replication_slots %d left (%d in use, every database's)", max(left, 0), c.MaxSlots, c.Slots))
		}
		if left := c.MaxSenders - c.Senders; left <= 1 {
			low = append(low, fmt.Sprintf("%d of max_wal_senders %d left (%d in use, standbys' too)", max(left, 0), c.MaxSenders, c.Senders))
		}
		if len(low) > 0 {
			msgs = append(msgs, fmt.Sprintf("provider %s has %s: pglogical needs a slot and a walsender per subscription and one more of each per table it copies at once (an initial copy, a resynchronisation), which then fails with \"all replication slots are in use\" or \"number of requested standby connections exceeds max_wal_senders\"; raise the setting (a restart; RDS: the parameter group, then a reboot), or drop slots nothing uses (orphan_slot)",
				s.Node, strings.Join(low, " and ")))
		}
	}
	// A subscriber with every origin state held: the next copy or
	// subscription fails (origin_slots_exhausted says which, when one does).
	if len(s.Subscriptions) > 0 && s.Origins.Full() {
		msgs = append(msgs, fmt.Sprintf("subscriber %s has no replication origin state left (%s): a new subscription, a table added with synchronize_data or a resynchronisation fails at its start (\"could not find free replication state slot for replication origin\") and is tried again for ever; %s",
			s.Node, describeOrigins(s), raiseOrigins(s)))
	}
	if len(msgs) == 0 {
		return Finding{}, false
	}
	return Finding{Code: CodeReplicationCapacityLow, Severity: Warning, Human: true, Message: strings.Join(msgs, "; and ")}, true
}

// describeWorkers says what holds a server's background worker slots.
func describeWorkers(w probe.Workers, needed int) string {
	s := fmt.Sprintf("%d of max_worker_processes %d in use: %d pglogical, %d parallel query, %d other", w.InUse, w.Max, w.Pglogical, w.Parallel, w.InUse-w.Pglogical-w.Parallel)
	if needed > 0 {
		s += fmt.Sprintf("; and %d more that pglogical needs here and cannot start (its supervisor, its manager, apply workers)", needed)
	}
	return s
}

// raiseWorkers is the remedy for a server out of background worker slots.
func raiseWorkers(w probe.Workers) string {
	return fmt.Sprintf("raise max_worker_processes above %d (pglogical needs 1 supervisor, 1 manager per database with pglogical, 1 per subscription and 1 per table being copied; parallel queries take up to max_parallel_workers more) and restart PostgreSQL (RDS: the parameter group, then a reboot)", w.Max)
}

// describeSender says which walsender a slot's consumer is connected to.
func describeSender(s probe.Sender) string {
	parts := []string{fmt.Sprintf("application_name %q", s.ApplicationName)}
	if s.ClientAddr != "" {
		parts = append(parts, fmt.Sprintf("from %s port %d", s.ClientAddr, s.ClientPort))
	}
	if s.ConnectedSeconds != nil {
		parts = append(parts, "connected for "+seconds(*s.ConnectedSeconds))
	}
	parts = append(parts, "last reply "+replyAge(&s))
	return fmt.Sprintf("walsender pid %d (%s)", s.PID, strings.Join(parts, ", "))
}

func replyAge(s *probe.Sender) string {
	if s.ReplySeconds == nil {
		return "never"
	}
	return seconds(*s.ReplySeconds) + " ago"
}

// fromAddr names where a consumer connects from, for a sentence.
func fromAddr(s *probe.Sender) string {
	if s.ClientAddr == "" {
		return ""
	}
	return " (it connects from " + s.ClientAddr + ")"
}

func (d *diagnosis) slotFindings(out *Subscription, prov *probe.Snapshot, slot probe.Slot) {
	add := func(f Finding) { out.Findings = append(out.Findings, f) }
	if f, ok := d.walFinding(prov, slot); ok {
		add(f)
	}
	why := "the subscription is far behind, or a long-running transaction on the provider holds the slot back"
	if x := prov.OldestXact; slot.Active && x != nil {
		if age, _ := slot.HorizonAge(); x.XidAge >= age {
			why = "it is held by the oldest open transaction on " + prov.Node + ": " + describeXact(*x) + "; " + endXact(*x)
		}
	}
	if !slot.Active {
		why = "the slot is inactive: nothing consumes it until " + out.Name + " replicates again (or is dropped, if it is gone for good)"
	}
	if f, ok := d.xminFinding(prov.Node, slot, why); ok {
		add(f)
	}
	if lim := int64(d.Thresholds.LagBytes); lim > 0 && slot.LagBytes > lim {
		msg := fmt.Sprintf("subscription %s lags %s behind provider %s (threshold %s)", out.Name, config.FormatBytes(slot.LagBytes), prov.Node, config.FormatBytes(lim))
		if d := out.ApplyDelaySeconds; d > 0 {
			msg += fmt.Sprintf("; its apply_delay of %s holds every change back on purpose, so the lag includes what the provider writes in that time (raise thresholds.lag_bytes if that is expected)", time.Duration(d*float64(time.Second)))
		}
		add(Finding{Code: CodeLagHigh, Severity: Warning, Message: msg})
	}
}

// walFinding reports a slot that retains too much WAL or has lost it.
func (d *diagnosis) walFinding(prov *probe.Snapshot, slot probe.Slot) (Finding, bool) {
	switch {
	case slot.WALStatus == "lost":
		after := "the subscription cannot continue and must be re-created or its tables resynchronised"
		if slot.Plugin != "pglogical_output" {
			after = "its consumer cannot continue from it and must start again from a new slot"
		}
		return Finding{Code: CodeSlotWALLost, Severity: Critical, Human: true, Slot: slot.Name,
			Message: fmt.Sprintf("slot %s on %s has lost WAL it needed (wal_status lost, max_slot_wal_keep_size exceeded); %s", slot.Name, prov.Node, after)}, true
	case slot.WALStatus == "unreserved":
		return Finding{Code: CodeWALRetainedHigh, Severity: Critical, Slot: slot.Name,
			Message: fmt.Sprintf("slot %s on %s retains %s and is about to lose WAL (wal_status unreserved)", slot.Name, prov.Node, config.FormatBytes(slot.RetainedBytes))}, true
	case slot.WALStatus == "extended" || (d.Thresholds.RetainedWALBytes > 0 && slot.RetainedBytes > int64(d.Thresholds.RetainedWALBytes)):
		return Finding{Code: CodeWALRetainedHigh, Severity: Warning, Slot: slot.Name,
			Message: fmt.Sprintf("slot %s on %s retains %s of WAL (threshold %s, wal_status %s)%s", slot.Name, prov.Node, config.FormatBytes(slot.RetainedBytes), d.Thresholds.RetainedWALBytes, slot.WALStatus, heldOpen(prov, slot))}, true
	}
	return Finding{}, false
}

// heldOpen says, for an active slot that retains much more WAL than its
// consumer lags, which open transaction holds it: a logical slot cannot
// release WAL written since the oldest running transaction began, however
// far its consumer has confirmed. "" when that is not the picture.
func heldOpen(prov *probe.Snapshot, slot probe.Slot) string {
	x := prov.OldestXact
	if !slot.Active || x == nil || x.XactSeconds == nil || *x.XactSeconds < 60 || slot.LagBytes*2 > slot.RetainedBytes {
		return ""
	}
	return fmt.Sprintf("; the subscriber keeps up (lag %s), but the oldest open transaction on %s holds the WAL written since it began: %s; %s",
		config.FormatBytes(slot.LagBytes), prov.Node, describeXact(*x), endXact(*x))
}

// describeXact says whose an open transaction is.
func describeXact(x probe.Xact) string {
	if x.State == "prepared" {
		age := ""
		if x.XactSeconds != nil {
			age = " prepared " + seconds(*x.XactSeconds) + " ago"
		}
		return fmt.Sprintf("prepared transaction %q (database %s, owner %s)%s", x.GID, x.Database, x.User, age)
	}
	return describeSession(x.Session, "database "+x.Database)
}

// endXact is what a person runs to end an open transaction, and its cost.
func endXact(x probe.Xact) string {
	if x.State == "prepared" {
		return fmt.Sprintf("a person commits or rolls it back (COMMIT PREPARED / ROLLBACK PREPARED '%s', in database %s) once its owner says which", strings.ReplaceAll(x.GID, "'", "''"), x.Database)
	}
	return fmt.Sprintf("it releases when it ends; a person may end it: SELECT pg_terminate_backend(%d) (rolls back its open transaction)", x.PID)
}

// xminFinding reports a slot whose xmin or catalog_xmin is older than the
// thresholds; why says what holds it back.
func (d *diagnosis) xminFinding(node string, slot probe.Slot, why string) (Finding, bool) {
	age, which := slot.HorizonAge()
	sev, lim, ok := level(age, d.Thresholds.SlotXminAge, d.Thresholds.SlotXminAgeCritical)
	if !ok {
		return Finding{}, false
	}
	held := "dead catalog rows (catalog_xmin)"
	if which == "xmin" {
		held = "dead rows of every table (xmin)"
	}
	return Finding{Code: CodeSlotXminAgeHigh, Severity: sev, Slot: slot.Name,
		Message: fmt.Sprintf("slot %s on %s holds back the transaction horizon by %s transactions (threshold %s): VACUUM cannot remove %s or freeze past it, and PostgreSQL stops accepting writes near 2.1 billion (transaction ID wraparound); %s",
			slot.Name, node, groupDigits(age), groupDigits(lim), held, why)}, true
}

// lockFinding reports an apply worker that has waited for a lock longer
// than thresholds.apply_blocked: a session on the subscriber holds a row or
// table the worker must change. Only a person may end that session (it may
// be a migration, or someone's unsaved work): no remedy.
func (d *diagnosis) lockFinding(node string, sub probe.Subscription) (Finding, bool) {
	w := sub.LockWait
	if w == nil {
		return Finding{}, false
	}
	waited, known := w.Waited()
	if !known {
		return Finding{}, false
	}
	dur := time.Duration(waited * float64(time.Second))
	sev, lim, ok := level(dur, d.Thresholds.ApplyBlocked.D(), d.Thresholds.ApplyBlockedCritical.D())
	if !ok {
		return Finding{}, false
	}
	what := "a lock"
	switch w.WaitEvent {
	case "transactionid", "tuple":
		what = "a row another transaction changed"
	case "relation":
		what = "a table lock"
	}
	if len(w.Tables) > 0 {
		what += " (on " + strings.Join(w.Tables, ", ") + ")"
	}
	since := "for " + dur.Round(time.Second).String()
	if w.Seconds == nil {
		since = "for up to " + dur.Round(time.Second).String() + " (the age of the transaction in its way)"
	}
	heads := w.Heads()
	var who []string
	for _, b := range heads {
		who = append(who, describeBlocker(b))
	}
	chain := ""
	if len(heads) > 0 && heads[0].Depth > 1 {
		var mid []string
		for _, b := range w.Blockers {
			if b.Waiting {
				mid = append(mid, fmt.Sprint(b.PID))
			}
		}
		chain = fmt.Sprintf(" (through the waiting session(s) %s, queued behind it)", strings.Join(mid, ", "))
	}
	var pids []string
	for _, b := range heads {
		pids = append(pids, fmt.Sprintf("SELECT pg_terminate_backend(%d)", b.PID))
	}
	return Finding{Code: CodeApplyBlocked, Severity: sev, Human: true,
		Message: fmt.Sprintf("the apply worker of %s (pid %d) has waited %s (threshold %s) for %s on %s, held by %s%s: nothing of %s is applied until it lets go (lag grows, the provider keeps WAL); if ending it is safe, a person runs on %s: %s (rolls back its open transaction)",
			sub.Name, w.PID, since, lim, what, node, strings.Join(who, "; "), chain, sub.Name, node, strings.Join(pids, "; "))}, true
}

// delay measures how far behind its provider the subscriber's data is by
// pglmon's heartbeats (package heartbeat), for a subscription whose
// provider writes them, and grades it against thresholds.replication_delay.
// The subscription carrying them (the set pglmon_heartbeat): every
// heartbeat written has arrived, 0; otherwise the provider's clock now less
// the newest one applied (the oldest one the provider keeps, when none
// arrived). Another from that provider: by its slot (slotDelay). An upper
// bound, by at most the time between two heartbeats. Both times are the
// provider's, so the servers' clocks need not agree.
func (d *diagnosis) delay(out *Subscription, subscriber *probe.Snapshot, sub probe.Subscription, prov *probe.Snapshot) (Finding, bool) {
	if prov == nil || prov.Heartbeat == nil || !prov.Heartbeat.Provides {
		return Finding{}, false
	}
	var delay float64
	var what string
	if slices.Contains(sub.ReplicationSets, probe.HeartbeatSet) {
		own, ok := prov.Heartbeat.Nodes[sub.ProviderNode]
		if !ok {
			return Finding{}, false // nothing written yet
		}
		var applied time.Time
		if subscriber.Heartbeat != nil {
			applied = subscriber.Heartbeat.Nodes[sub.ProviderNode].Newest
		}
		if applied.Before(own.Newest) {
			from := applied
			if from.IsZero() {
				from = own.Oldest
			}
			// The provider's clock when the subscriber was read.
			readAt := subscriber.Time
			if subscriber.Heartbeat != nil {
				readAt = subscriber.Heartbeat.ReadAt
			}
			now := prov.Heartbeat.Clock.Add(readAt.Sub(prov.Heartbeat.ReadAt))
			delay = max(now.Sub(from).Seconds(), 0)
		}
		if !applied.IsZero() {
			out.HeartbeatApplied = &applied
		}
		ago := time.Duration(delay * float64(time.Second)).Round(time.Second).String()
		what = "the newest heartbeat it has applied was written on " + prov.Node + " " + ago + " ago"
		if applied.IsZero() {
			what = "none of the heartbeats written on " + prov.Node + " (the oldest " + ago + " ago) has arrived"
		}
	} else {
		var ok bool
		if delay, what, ok = slotDelay(sub, prov); !ok {
			return Finding{}, false
		}
	}
	out.ReplicationDelaySeconds = &delay
	dur := time.Duration(delay * float64(time.Second))
	sev, lim, ok := level(dur, d.Thresholds.ReplicationDelay.D(), d.Thresholds.ReplicationDelayCritical.D())
	if !ok {
		return Finding{}, false
	}
	why := ""
	switch {
	case sub.Status != probe.StatusReplicating:
		why = "; it is " + sub.Status
	case sub.LockWait != nil:
		why = "; its apply worker waits for a lock (apply_blocked)"
	case sub.ApplyDelaySeconds > 0:
		why = fmt.Sprintf("; its apply_delay (%s) is part of this", seconds(sub.ApplyDelaySeconds))
	default:
		why = "; it says replicating: it applies more slowly than the provider writes (see its lag), or it is still receiving or applying a large transaction"
	}
	return Finding{Code: CodeReplicationDelayHigh, Severity: sev,
		Message: fmt.Sprintf("the data of %s on %s is %s behind provider %s (threshold %s): %s%s",
			sub.Name, subscriber.Node, dur.Round(time.Second), prov.Node, lim, what, why)}, true
}

// slotDelay is the delay of a subscription that does not carry its
// provider's heartbeats (another subscription from the same provider
// does, or none), read from how far its slot has confirmed the provider's
// WAL against the positions of the heartbeats written there
// (probe.SlotHeartbeat): past the newest, 0; else the provider's clock at
// the probe less the newest heartbeat written before the position it
// confirmed, or less the oldest kept when it is before all of them. Not
// measured without the positions (pglmon.heartbeat_position, which pglmon
// heartbeat install creates) or a position confirmed.
func slotDelay(sub probe.Subscription, prov *probe.Snapshot) (float64, string, bool) {
	sh, ok := prov.Heartbeat.Slots[sub.SlotName]
	if !ok {
		return 0, "", false
	}
	if sh.Newest {
		return 0, "", true
	}
	from := sh.Oldest
	if sh.Confirmed != nil {
		from = *sh.Confirmed
	}
	delay := max(prov.Heartbeat.Clock.Sub(from).Seconds(), 0)
	ago := time.Duration(delay * float64(time.Second)).Round(time.Second).String()
	what := fmt.Sprintf("its slot %s has confirmed %s's WAL up to a heartbeat written %s ago", sub.SlotName, prov.Node, ago)
	if sh.Confirmed == nil {
		what = fmt.Sprintf("its slot %s has not confirmed %s's WAL up to any heartbeat kept there (the oldest written %s ago)", sub.SlotName, prov.Node, ago)
	}
	return delay, what + " (it does not carry the heartbeats: read from its slot)", true
}

// describeSession says who a session is (first goes before the rest),
// without its query (which can hold data).
func describeSession(s probe.Session, first ...string) string {
	parts := first
	if s.User != "" {
		parts = append(parts, "user "+s.User)
	}
	if s.Application != "" {
		parts = append(parts, "application "+s.Application)
	}
	if s.ClientAddr != "" {
		parts = append(parts, "from "+s.ClientAddr)
	}
	if s.State != "" {
		st := s.State
		if s.StateSeconds != nil {
			st += " for " + seconds(*s.StateSeconds)
		}
		parts = append(parts, st)
	}
	if s.XactSeconds != nil {
		parts = append(parts, "transaction open "+seconds(*s.XactSeconds))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("pid %d", s.PID)
	}
	return fmt.Sprintf("pid %d (%s)", s.PID, strings.Join(parts, ", "))
}

// describeBlocker says who a blocking session is.
func describeBlocker(b probe.Blocker) string {
	if b.BackendType != "" && b.BackendType != "client backend" {
		return describeSession(b.Session, b.BackendType)
	}
	return describeSession(b.Session)
}

// seconds writes a duration in seconds rounded to the second: 2m5s.
func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// level grades v against a warning and a critical threshold (0 turns one
// off): the severity and the threshold passed, ok false below both.
func level[T int64 | time.Duration](v, warning, critical T) (sev Severity, limit T, ok bool) {
	switch {
	case critical > 0 && v >= critical:
		return Critical, critical, true
	case warning > 0 && v >= warning:
		return Warning, warning, true
	}
	return "", 0, false
}

// groupDigits writes n with thousands separators: 1,000,000.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	start := len(s) % 3
	if n < 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:start])
	for i := start; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

func (d *diagnosis) tableSync(out *Subscription, subscriber *probe.Snapshot, sub probe.Subscription) {
	grace := d.Thresholds.TableSyncGrace.D()
	var mine []probe.TableSync
	for _, t := range subscriber.TableSync {
		// A table in y has been copied (its copy's origin dropped): the
		// apply worker marks it ready.
		if t.Subscription == out.Name && t.Status != "y" && !t.Partitioned && len(d.copyRefused(subscriber.Node, out.Name, t)) == 0 {
			mine = append(mine, t)
		}
	}
	f, starved, ok := tablesStarved(subscriber, sub, mine)
	if ok {
		out.Findings = append(out.Findings, f)
	}
	for _, t := range subscriber.TableSync {
		if t.Subscription != out.Name {
			continue
		}
		out.TablesNotReady = append(out.TablesNotReady, t)
		if slices.Contains(starved, t.Schema+"."+t.Table) {
			continue // explained, whatever the time
		}
		if t.Partitioned {
			// Never finishes: no grace to wait out.
			out.Findings = append(out.Findings, Finding{Code: CodePartitionedTable, Severity: Critical, Human: true, Table: t.Schema + "." + t.Table,
				Message: fmt.Sprintf("table %s.%s of %s is partitioned (sync status %q): pglogical cannot copy a partitioned table (its sync worker fails with \"cannot copy from partitioned table\" and retries for ever) and replicates changes per partition, so nothing of it replicates; put its partitions in the replication set instead of it",
					t.Schema, t.Table, out.Name, t.Status)})
			continue
		}
		if cols := d.copyRefused(subscriber.Node, out.Name, t); len(cols) > 0 {
			// Never finishes either.
			out.Findings = append(out.Findings, Finding{Code: CodeTableCopyRefused, Severity: Critical, Human: true, Table: t.Schema + "." + t.Table,
				Message: fmt.Sprintf("table %s.%s of %s cannot be copied (sync status %q): pglogical 2.4.2 lists its generated column(s) %s in the COPY it runs on the provider, which PostgreSQL refuses (\"column is a generated column\"); its sync worker retries at once, for ever, logging the error each time, and the table receives nothing (measured)",
					t.Schema, t.Table, out.Name, t.Status, strings.Join(cols, ", "))})
			continue
		}
		key := tableKey(subscriber.Node, t)
		since, ok := d.h.NotReadySince[key]
		if !ok {
			since = d.Now
		}
		dur := d.Now.Sub(since)
		copying := ""
		if m, ok := d.h.Copied[key]; ok {
			// A copy that moves is not stalled, however long it takes:
			// the grace runs from its last move.
			still := d.Now.Sub(m.Since)
			if still < grace {
				continue
			}
			if t.CopiedRows != nil {
				copying = fmt.Sprintf("; its copy has not moved for %s (%s rows copied)", still.Round(time.Second), groupDigits(m.Rows))
			} else {
				copying = fmt.Sprintf("; its copy (%s rows) last moved %s ago", groupDigits(m.Rows), still.Round(time.Second))
			}
		}
		if dur >= grace {
			out.Findings = append(out.Findings, Finding{Code: CodeTableSyncStalled, Severity: Warning, Human: true,
				Message: fmt.Sprintf("table %s.%s of %s has not been ready for %s (sync status %q, table_sync_grace %s)%s%s", t.Schema, t.Table, out.Name, dur.Round(time.Second), t.Status, grace, copying, catchUpHint(t, out))})
		}
	}
}

// copyRefused is, for a table of subscription sub that is not ready, the
// provider's generated columns that pglogical's COPY lists (drift).
func (d *diagnosis) copyRefused(node, sub string, t probe.TableSync) []string {
	for _, m := range d.Schema[subKey(node, sub)] {
		if m.Table == t.Schema+"."+t.Table {
			return m.CopyRefused
		}
	}
	return nil
}

// catchUpHint says, for a table in catchup (sync status u), what it waits
// for: pglogical 2.4.2's sync worker stops only at a commit of its
// database on the provider at or past where the apply worker had got to,
// which it can reach without one (keepalives): a quiet provider leaves the
// table there (measured; pglmon setup apply commits a logical message for
// it, see setup.catchUpSQL).
func catchUpHint(t probe.TableSync, sub *Subscription) string {
	if t.Status != "u" {
		return ""
	}
	on := "the provider"
	if sub.Provider != "" {
		on = sub.Provider
	}
	return fmt.Sprintf("; in catchup, pglogical's sync worker waits for a commit of the database on %s: a provider with no writes leaves it there, and any write completes it, e.g. SELECT pg_logical_emit_message(true, 'pglmon', 'table copy catch-up') on %s (nothing replicates it); the daemon's heartbeats are such writes once pglmon heartbeat install has run", on, on)
}

// slotUser says, for a slot no answering subscriber reports, who holds it.
func (d *diagnosis) slotUser(slot probe.Slot, used bool) string {
	kind := slot.Type + " slot"
	if slot.Plugin != "" {
		kind = fmt.Sprintf("%s slot (plugin %s)", slot.Type, slot.Plugin)
	}
	switch {
	case used:
		return "the subscriber of the subscription using it cannot be reached"
	case slot.Active:
		return fmt.Sprintf("it is a %s that no configured subscription uses; its consumer (walsender pid %d) is far behind or waits for a long-running transaction", kind, slot.ActivePID)
	}
	return fmt.Sprintf("it is an inactive %s that no configured subscription uses; if nothing needs it, drop it: SELECT pg_drop_replication_slot('%s')", kind, slot.Name)
}

var syncSlotRE = regexp.MustCompile(`^(.+)_[0-9a-f]{8}$`)

func (d *diagnosis) nodes() []Node {
	// Slots used by any subscription of any configured node. When a subscriber
	// is down its last known subscriptions count, so its slots are not orphans.
	used := map[string]bool{}
	// Slots whose subscription's diagnosis reports them (its subscriber answers).
	reported := map[string]bool{}
	// Slots of subscriptions a table of which is being copied.
	syncing := map[string]bool{}
	complete := true
	for _, s := range d.Snapshots {
		subs := s.Subscriptions
		if !s.Up() {
			subs = d.h.Known[s.Node]
			if _, ok := d.h.Known[s.Node]; !ok {
				complete = false
			}
		}
		for _, sub := range subs {
			used[sub.SlotName] = true
			reported[sub.SlotName] = reported[sub.SlotName] || s.Up()
		}
		// A copy under way: its table-sync slot is inactive between the
		// copy and the end of its catch-up (about a second, measured).
		for _, ts := range s.TableSync {
			for _, sub := range subs {
				if sub.Name == ts.Subscription {
					syncing[sub.SlotName] = true
				}
			}
		}
	}
	var out []Node
	for _, s := range d.Snapshots {
		n := Node{Name: s.Node, Up: s.Up(), PglogicalNode: s.LocalNode, ServerVersion: s.ServerVersion,
			PglogicalVersion: s.PglogicalVersion, Timeline: s.Timeline, TimelineHistory: s.TimelineHistory, TimelineHistoryError: s.TimelineHistoryErr, Slots: s.Slots, Workers: s.Workers, Capacity: s.Capacity, OriginStates: s.Origins, BarrierWaits: s.BarrierWaits, Findings: []Finding{}}
		if !s.Up() {
			n.Error = s.Err.Error()
			n.PglogicalNode = d.h.LocalNodes[s.Node]
			n.Findings = append(n.Findings, Finding{Code: CodeNodeUnreachable, Severity: Critical,
				Message: fmt.Sprintf("pglmon cannot reach node %s: %s", s.Node, n.Error)})
			out = append(out, n)
			continue
		}
		if s.InRecovery {
			n.Findings = append(n.Findings, Finding{Code: CodeNodeInRecovery, Severity: Critical,
				Message: fmt.Sprintf("node %s is a standby (in recovery) as pglmon reaches it: a physical replica, a reader endpoint, or a server being restored; pglogical runs no worker and keeps no logical slot there, so pglmon sees neither the subscriptions nor the slots of this node: point its dsn at the primary (on RDS, the instance's own endpoint)", s.Node)})
		}
		for _, slot := range s.Slots {
			orphan := slot.Plugin == "pglogical_output" && !slot.Active && !used[slot.Name] && complete
			if m := syncSlotRE.FindStringSubmatch(slot.Name); orphan && m != nil && syncing[m[1]] {
				orphan = false // the copy's own slot, until the copy ends
			}
			if !reported[slot.Name] {
				if f, ok := d.xminFinding(s.Node, slot, d.slotUser(slot, used[slot.Name])); ok {
					n.Findings = append(n.Findings, f)
				}
				// A slot no reachable subscription reports (another tool's,
				// a standby's, one whose subscriber is down) fills the disk
				// just the same; an orphan's WAL is said with it below.
				if f, ok := d.walFinding(&s, slot); ok && !orphan {
					f.Message += "; " + d.slotUser(slot, used[slot.Name])
					n.Findings = append(n.Findings, f)
				}
			}
			if !orphan {
				continue
			}
			what := "no subscription of any configured node uses it"
			if m := syncSlotRE.FindStringSubmatch(slot.Name); m != nil && used[m[1]] {
				what = "it is a table-sync slot left behind by " + m[1]
			}
			n.Findings = append(n.Findings, Finding{Code: CodeOrphanSlot, Severity: Warning, Remedy: RemedyDropOrphanSlot, Human: true, Slot: slot.Name,
				Message: fmt.Sprintf("slot %s on %s is inactive and %s; it retains %s of WAL", slot.Name, s.Node, what, config.FormatBytes(slot.RetainedBytes))})
			if f, ok := d.walFinding(&s, slot); ok {
				n.Findings = append(n.Findings, f)
			}
		}
		if w := s.Workers; w != nil && w.Max > 0 && w.InUse-w.Parallel+s.WorkersNeeded() >= w.Max && len(s.Subscriptions) > 0 {
			n.Findings = append(n.Findings, Finding{Code: CodeWorkerSlotsExhausted, Severity: Warning, Human: true,
				Message: fmt.Sprintf("%s has no background worker slot left, parallel queries aside (%s): a table resynchronisation or a new subscription cannot start, and a pglogical worker that exits (a crash, a provider outage) can lose its slot to a parallel query or another worker before it is started again; %s",
					s.Node, describeWorkers(*w, s.WorkersNeeded()), raiseWorkers(*w))})
		}
		if f, ok := capacityFinding(&s); ok {
			n.Findings = append(n.Findings, f)
		}
		if f, ok := d.barrierFinding(&s); ok {
			n.Findings = append(n.Findings, f)
		}
		if f, ok := supervisorFinding(&s); ok {
			n.Findings = append(n.Findings, f)
		}
		if f, ok := invalidDatabaseFinding(&s); ok {
			n.Findings = append(n.Findings, f)
		}
		if !s.InRecovery {
			n.Findings = append(n.Findings, carrierFindings(d.Snapshots, &s)...)
		}
		declared := map[string]bool{}
		for _, t := range d.Unreplicated[s.Node] {
			declared[t.Schema+"."+t.Relname] = true
			n.Findings = append(n.Findings, Finding{Code: CodeTableNotReplicated, Severity: Warning, Human: true,
				Message: fmt.Sprintf("table %s on %s is not in replication set %s, which the configuration says holds it (its tables or schemas, or a partition of one): its changes reach no subscriber of the set; pglmon setup apply adds it and copies its rows to the set's subscribers (or pglogical.replication_set_add_table(%s, %s, true), which copies nothing to a subscriber that copied it before it left the set: see that subscription's table_left_set)",
					t.Table, s.Node, t.Set, pgident.Literal(t.Set), pgident.Literal(t.Table))})
		}
		for _, p := range s.UnreplicatedPartitions {
			if declared[p.Schema+"."+p.Table] {
				continue // said above, with the set that should hold it
			}
			n.Findings = append(n.Findings, Finding{Code: CodePartitionNotReplicated, Severity: Warning, Human: true,
				Message: fmt.Sprintf("partition %s.%s of %s on %s is in no replication set while other partitions of %s are (in %s): pglogical replicates per partition, so its rows reach no subscriber; add it with pglogical.replication_set_add_table('<set>', '%s.%s', true), or run pglmon setup apply if the set lists %s",
					p.Schema, p.Table, p.Parent, s.Node, p.Parent, p.Sets, p.Schema, p.Table, p.Parent)})
		}
		sort.SliceStable(n.Findings, func(i, j int) bool { return n.Findings[i].Slot < n.Findings[j].Slot })
		out = append(out, n)
	}
	return out
}

// CopyDenied is the tables (schema.table) of a subscription's sets that
// Role, the role of its provider connection, may not copy.
type CopyDenied struct {
	Role   string
	Tables []string
	// Filters: the tables whose row filter calls a function Role may not
	// execute (row_filter_not_permitted).
	Filters []FilterDenied
}

// FilterDenied is a table (schema.table unquoted) whose row filter calls
// Function (as regprocedure writes it), which the role of a subscription's
// provider connection may not execute.
type FilterDenied struct {
	Table    string `json:"table"`
	Function string `json:"function"`
}

// filterDeniedFinding is row_filter_not_permitted for subscription sub,
// whose provider connection's role may not execute functions that row
// filters of its sets call on provider.
func filterDeniedFinding(sub probe.Subscription, provider, role string, filters []FilterDenied) Finding {
	if provider == "" {
		provider = sub.ProviderNode
	}
	var calls, grants []string
	for _, f := range filters {
		calls = append(calls, "function "+f.Function+", which the row filter of "+pgident.RegclassOf(f.Table)+" calls")
		if g := "GRANT EXECUTE ON FUNCTION " + f.Function + " TO " + pgident.Ident(role) + ";"; !slices.Contains(grants, g) {
			grants = append(grants, g)
		}
	}
	return Finding{Code: CodeRowFilterNotPermitted, Severity: Critical, Human: true,
		Message: fmt.Sprintf("the role of %s's provider connection, %s, may not execute %s on %s: the provider's walsender evaluates a row filter as that role, so the next change to such a table stops %s at every start, for ever, and a GRANT made after that change does not help it (measured with pglogical 2.4.2: logical decoding reads the function's privileges as they were when the change was made); the table's copy fails too; run on %s now, before any change to it: %s",
			sub.Name, role, strings.Join(calls, "; "), provider, sub.Name, provider, strings.Join(grants, " "))}
}

// copyDeniedFinding is copy_not_permitted for subscription sub, whose
// provider connection's role may not read tables (schema.table) on
// provider.
func copyDeniedFinding(sub probe.Subscription, provider, role string, tables []string) Finding {
	if provider == "" {
		provider = sub.ProviderNode
	}
	var grants []string
	for _, t := range tables {
		grants = append(grants, "GRANT SELECT ON "+pgident.RegclassOf(t)+" TO "+pgident.Ident(role)+";")
	}
	return Finding{Code: CodeCopyNotPermitted, Severity: Warning, Human: true,
		Message: fmt.Sprintf("the role of %s's provider connection, %s, may not read %s of its replication sets on %s (SELECT on the replicated columns, or USAGE on the schema): pglogical replicates the changes, which need neither, but its copy of %s (a resynchronisation, the table added to a set with its copy, a new subscription) runs as that role and fails at each try, for ever (table_sync_error); run on %s: %s (and GRANT USAGE ON SCHEMA <schema> TO %s where the schema is not usable)",
			sub.Name, role, listTables(tables), provider, plural(tables, "it", "them"), provider, strings.Join(grants, " "), pgident.Ident(role))}
}
