package daemon

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/logtail"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/serverlog"
)

// conflictWindow is how long a conflict keeps the node's finding.
const conflictWindow = time.Hour

// logWatcher reads the end of each subscriber's PostgreSQL log (package
// logtail: the RDS API, or SQL on a self-managed server) once a minute
// (Options.LogEvery), and at once when one of its subscriptions has gone
// down since the last read or a table copy started or ended there
// (probe.Snapshot.SyncStates; at most twice in copyReadGap while copies
// keep starting and ending: logDue). From it:
//   - the apply worker's last error goes into a down subscription's
//     finding: why it is down is written there and nowhere in the catalogs;
//   - the conflicts pglogical resolved by itself are counted (each can leave
//     the tables different), from what the log gained since the last read
//     (logtail.Follower): every line once, however fast the log grows. The
//     first read of a node is the baseline: what the log held then was
//     there before pglmon looked (a restarted daemon reads on from where
//     it stopped instead);
//   - the table copies of pglogical's table sync whose COPY failed although
//     pglogical marked the table ready (serverlog.Copy): held as a finding
//     of the subscription until the table is copied again;
//   - the failed first copy of a subscription (serverlog.Copy.Initial),
//     which pglogical rolls back whole and marks ready: held until the
//     subscription initialises again or is verified equal.
//
// The copies read, where each read ended and the conflicts of the last hour
// are kept in a state file (config.LogStateFile): a restarted daemon reads
// the log's tail again, and without them would take a failure put right
// since for a new one, count nothing logged while it was stopped, and drop
// the hour's conflicts.
type logWatcher struct {
	mu       sync.Mutex
	follower logtail.Follower                   // used by one run at a time
	errs     map[string]serverlog.Errors        // node -> its apply workers' errors
	barrier  map[string]serverlog.BarrierHolder // node -> the process its waiting statement waits for
	files    map[string]string                  // node -> the log file read
	failed   map[string]string                  // node -> why it could not be read
	recent   map[string][]countedConflict       // node -> counted within conflictWindow
	crashes  map[string][]countedCrash          // node -> read within conflictWindow
	// syncFails are, by node, the table copies whose sync worker fails
	// at each try (serverlog.ParseSyncFailures of the log's tail).
	syncFails map[string]serverlog.SyncFailures
	// decoding are, by node, its walsenders' errors decoding a slot
	// (serverlog.DecodingErrors of the log's tail): a provider's side of
	// a down subscription.
	decoding map[string]map[string]serverlog.DecodingError
	// copies holds, by node and "subscription/table", the last table copy
	// of pglogical's table sync read: a failed one is a finding until the
	// table is copied again (see serverlog.Copy); under "subscription/" the
	// failed first copy of the subscription.
	copies map[string]map[string]heldCopy
	last   map[string]time.Time // node -> when its log was last read
	// syncSeen is each node's probe.Snapshot.SyncStates when its log was
	// last read: a change since means a copy started or ended.
	syncSeen map[string]string
	// copyReads are the last two times a change of a node's table
	// copies' states had its log read, older first (logDue).
	copyReads map[string][2]time.Time
	running   bool
	// state is the file the copies are kept in ("": not kept); dirty when
	// they changed since they were last kept.
	state   string
	dirty   bool
	keepErr string // why they could not be kept, last time
	// positions is the follower's, as the last run left them (the
	// follower itself is used outside mu).
	positions map[string]logtail.Position
}

// logState is what the log watcher keeps across restarts.
type logState struct {
	Version int        `json:"version"`
	Copies  []keptCopy `json:"copies,omitempty"`
	// Positions is where the last read of each node's log ended: a
	// restarted daemon reads on from there (what the log gained while it
	// was stopped: conflicts, failed copies), not from a new baseline.
	Positions map[string]logtail.Position `json:"positions,omitempty"`
	// Conflicts are those read within conflictWindow: the node's
	// apply_conflicts finding holds its hour across a restart.
	Conflicts []keptConflict `json:"conflicts,omitempty"`
	// Crashes are the server crashes read within conflictWindow
	// (server_crashed holds its hour across a restart too).
	Crashes []keptCrash `json:"crashes,omitempty"`
}

// countedCrash is a crash read from a node's log, and when.
type countedCrash struct {
	serverlog.Crash
	at time.Time
}

// keptCrash is a countedCrash as the state file holds it.
type keptCrash struct {
	Node string `json:"node"`
	serverlog.Crash
	At time.Time `json:"at"`
}

// keptConflict is a countedConflict as the state file holds it.
type keptConflict struct {
	Node string `json:"node"`
	serverlog.Conflict
	At time.Time `json:"at"`
}

func (s logState) version() int { return s.Version }

// keptCopy is a heldCopy as the state file holds it.
type keptCopy struct {
	Node string `json:"node"`
	serverlog.Copy
	Seen    time.Time `json:"seen"`
	Cleared bool      `json:"cleared,omitempty"`
}

// restore takes over the copies and log positions of a kept state.
func (w *logWatcher) restore(st logState) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.follower.Resume(st.Positions)
	w.positions = st.Positions
	w.copies = map[string]map[string]heldCopy{}
	for _, k := range st.Copies {
		if w.copies[k.Node] == nil {
			w.copies[k.Node] = map[string]heldCopy{}
		}
		w.copies[k.Node][k.Key()] = heldCopy{Copy: k.Copy, seen: k.Seen, cleared: k.Cleared}
	}
	w.recent = map[string][]countedConflict{}
	for _, k := range st.Conflicts {
		w.recent[k.Node] = append(w.recent[k.Node], countedConflict{k.Conflict, k.At})
	}
	w.crashes = map[string][]countedCrash{}
	for _, k := range st.Crashes {
		w.crashes[k.Node] = append(w.crashes[k.Node], countedCrash{k.Crash, k.At})
	}
}

// keep writes what the watcher keeps to the state file when it changed.
func (w *logWatcher) keep(d *Daemon) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.dirty || w.state == "" {
		return
	}
	st := logState{Version: 1, Positions: w.positions}
	for _, node := range slices.Sorted(maps.Keys(w.recent)) {
		for _, c := range withinWindow(w.recent[node], func(c countedConflict) time.Time { return c.at }) {
			st.Conflicts = append(st.Conflicts, keptConflict{Node: node, Conflict: c.Conflict, At: c.at})
		}
	}
	for _, node := range slices.Sorted(maps.Keys(w.crashes)) {
		for _, c := range withinWindow(w.crashes[node], func(c countedCrash) time.Time { return c.at }) {
			st.Crashes = append(st.Crashes, keptCrash{Node: node, Crash: c.Crash, At: c.at})
		}
	}
	for _, node := range slices.Sorted(maps.Keys(w.copies)) {
		for _, key := range slices.Sorted(maps.Keys(w.copies[node])) {
			c := w.copies[node][key]
			st.Copies = append(st.Copies, keptCopy{Node: node, Copy: c.Copy, Seen: c.seen, Cleared: c.cleared})
		}
	}
	if err := saveState(w.state, st); err != nil {
		if w.keepErr != err.Error() { // once, not every cycle
			d.log.Warn("cannot keep the failed table copies read from the server logs: a restart will report those put right since again", "file", w.state, keyError, err.Error())
		}
		w.keepErr = err.Error()
		return
	}
	w.dirty, w.keepErr = false, ""
}

// heldCopy is a table copy read from the log, and when pglmon read it.
type heldCopy struct {
	serverlog.Copy
	seen time.Time
	// cleared: a failed first copy put right since (kept, not deleted: the
	// log's tail, read again, would bring it back as new).
	cleared bool
}

type countedConflict struct {
	serverlog.Conflict
	at time.Time
}

// maybeRun reads the logs that are due, in the background.
func (w *logWatcher) maybeRun(ctx context.Context, d *Daemon, snaps []probe.Snapshot, r *diagnose.Report, wg *sync.WaitGroup) {
	cfg := d.cfg.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		return
	}
	if w.last == nil {
		w.last, w.syncSeen, w.copyReads = map[string]time.Time{}, map[string]string{}, map[string][2]time.Time{}
	}
	syncStates := map[string]string{}
	for _, s := range snaps {
		if s.Up() {
			syncStates[s.Node] = s.SyncStates
		}
	}
	var due []config.Node
	added := map[string]bool{}
	for _, s := range r.Subscriptions {
		n, ok := cfg.Node(s.Subscriber)
		// Status "": the subscriber does not answer; its log can wait.
		if !ok || added[n.Name] || n.LogSource() == config.ServerLogOff || s.Status == "" {
			continue
		}
		last := w.last[n.Name]
		wentDown := s.Status == probe.StatusDown && s.DownSince != nil && last.Before(*s.DownSince)
		// A copy that started or ended since the last read: one that
		// failed is in the log now, though pglogical may say ready.
		states := syncStates[n.Name]
		seen, known := w.syncSeen[n.Name]
		copied := known && seen != states
		if !known {
			w.syncSeen[n.Name] = states
		}
		now := time.Now()
		if !logDue(now, last, w.copyReads[n.Name], d.logEvery(), wentDown, copied) {
			continue
		}
		if copied {
			w.copyReads[n.Name] = [2]time.Time{w.copyReads[n.Name][1], now}
		}
		w.last[n.Name], w.syncSeen[n.Name], added[n.Name] = now, states, true
		due = append(due, n)
	}
	// The provider of a down subscription whose apply worker's last error
	// (as last read) is "data stream ended": the provider's log says why
	// its walsender ended the stream.
	for _, s := range r.Subscriptions {
		n, ok := cfg.Node(s.Provider)
		if !ok || added[n.Name] || n.LogSource() == config.ServerLogOff || s.Status != probe.StatusDown || !s.ProviderUp {
			continue
		}
		if we, ok := w.errs[s.Subscriber].For(s.Name, s.ApplyWorker); !ok || !we.StreamEnded() {
			continue
		}
		last := w.last[n.Name]
		wentDown := s.DownSince != nil && last.Before(*s.DownSince)
		if !logDue(time.Now(), last, [2]time.Time{}, d.logEvery(), wentDown, false) {
			continue
		}
		w.last[n.Name], added[n.Name] = time.Now(), true
		due = append(due, n)
	}
	// A node where a statement waits for a ProcSignalBarrier: its log names
	// the process it waits for (provider or subscriber).
	for _, rn := range r.Nodes {
		n, ok := cfg.Node(rn.Name)
		if !ok || added[n.Name] || n.LogSource() == config.ServerLogOff || !hasFinding(rn, diagnose.CodeSignalBarrierStuck) ||
			time.Since(w.last[n.Name]) < d.logEvery() {
			continue
		}
		w.last[n.Name], added[n.Name] = time.Now(), true
		due = append(due, n)
	}
	// An RDS node that does not answer: its log, read through the RDS API,
	// tells whether it crashes again and again (server_crashed) while it
	// does; a self-managed one's is read through SQL, once it answers.
	for _, rn := range r.Nodes {
		n, ok := cfg.Node(rn.Name)
		if !ok || rn.Up || n.RDS == nil || added[n.Name] || n.LogSource() == config.ServerLogOff || time.Since(w.last[n.Name]) < d.logEvery() {
			continue
		}
		w.last[n.Name], added[n.Name] = time.Now(), true
		due = append(due, n)
	}
	if len(due) == 0 {
		return
	}
	w.running = true
	wg.Go(func() { w.run(ctx, d, cfg, due) })
}

// copyReadGap bounds the reads of a node's log that changes of its table
// copies' states ask for: two within copyReadGap at most, so that a copy's
// start and its end are read at once. A copy that fails at each try
// changes them at every probe, for as long as its cause lasts (hours), and
// each read is a 512 KiB tail through SQL, or up to 2,000 lines through
// the RDS API, whose calls are throttled.
const copyReadGap = 30 * time.Second

// logDue says whether a node's log is read at now, last read at last: its
// interval (every) has passed, one of its subscriptions went down since,
// or its table copies' states changed since and the older of the last two
// reads for such a change (copyReads, older first) is copyReadGap old.
func logDue(now, last time.Time, copyReads [2]time.Time, every time.Duration, wentDown, copied bool) bool {
	return now.Sub(last) >= every || wentDown || (copied && now.Sub(copyReads[0]) >= copyReadGap)
}

func (w *logWatcher) run(ctx context.Context, d *Daemon, cfg *config.Config, nodes []config.Node) {
	type read struct {
		chunk     logtail.Chunk
		errs      serverlog.Errors
		syncFails serverlog.SyncFailures
		decoding  map[string]serverlog.DecodingError
		conflicts []serverlog.Conflict
		crashes   []serverlog.Crash
		copies    []serverlog.Copy
		barrier   serverlog.BarrierHolder
		waits     bool
		err       error
	}
	got := map[string]read{}
	for _, n := range nodes {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		var rd read
		rd.chunk, rd.err = w.follower.Follow(cctx, cfg, n)
		cancel()
		rd.errs, rd.conflicts, rd.crashes = serverlog.WorkerErrors(rd.chunk.Tail), serverlog.Conflicts(rd.chunk.New), serverlog.Crashes(rd.chunk.New)
		rd.barrier, rd.waits = serverlog.LastBarrierHolder(rd.chunk.Tail)
		rd.syncFails = serverlog.ParseSyncFailures(rd.chunk.Tail)
		rd.decoding = serverlog.DecodingErrors(rd.chunk.Tail)
		// What the log gained, then its tail (a copy whose start line came
		// before the last read; the baseline's past): each copy's last
		// state wins, so reading one twice changes nothing.
		rd.copies = append(serverlog.Copies(rd.chunk.New), serverlog.Copies(rd.chunk.Tail)...)
		got[n.Name] = rd
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.errs == nil {
		w.errs, w.files, w.failed = map[string]serverlog.Errors{}, map[string]string{}, map[string]string{}
		w.barrier = map[string]serverlog.BarrierHolder{}
		w.syncFails = map[string]serverlog.SyncFailures{}
		w.decoding = map[string]map[string]serverlog.DecodingError{}
	}
	if w.copies == nil { // unless restored
		w.copies = map[string]map[string]heldCopy{}
	}
	if w.recent == nil {
		w.recent = map[string][]countedConflict{}
	}
	if w.crashes == nil {
		w.crashes = map[string][]countedCrash{}
	}
	if pos := w.follower.Positions(); !maps.Equal(pos, w.positions) {
		w.positions, w.dirty = pos, true
	}
	for node, rd := range got {
		if rd.err != nil {
			if w.failed[node] != rd.err.Error() {
				d.log.Warn("cannot read the node's server log", keyNode, node, keyError, rd.err.Error())
			}
			w.failed[node] = rd.err.Error()
			continue
		}
		delete(w.failed, node)
		w.errs[node], w.files[node], w.syncFails[node], w.decoding[node] = rd.errs, rd.chunk.File, rd.syncFails, rd.decoding
		delete(w.barrier, node)
		if rd.waits {
			w.barrier[node] = rd.barrier
		}
		if rd.chunk.Resumed {
			d.log.Info("server log read from where pglmon stopped reading it", keyNode, node, "file", rd.chunk.File, "bytes_new", len(rd.chunk.New))
		}
		if rd.chunk.Skipped != "" {
			d.log.Warn("part of the server log written since the last read was not read: conflicts and failed table copies in it are not seen",
				keyNode, node, "file", rd.chunk.File, "why", rd.chunk.Skipped)
		}
		for _, c := range rd.conflicts {
			if c.Table == probe.HeartbeatTable {
				// pglmon's own heartbeats: a transaction replayed once
				// (after recreate-origin) inserts one again, which
				// pglogical resolves. Not the application's data.
				continue
			}
			d.metrics.Conflicts(node, c.Table, c.Op, c.Resolution, 1)
			w.recent[node] = append(w.recent[node], countedConflict{c, now})
			w.dirty = true
		}
		for _, c := range rd.crashes {
			d.log.Error("the server crashed and restarted", keyNode, node, "process", c.Process, "signal", c.Signal, "subscription", c.Subscription, "at", c.Prefix)
			w.crashes[node] = append(w.crashes[node], countedCrash{c, now})
			w.dirty = true
		}
		for _, c := range rd.copies {
			prev, seen, fresh := w.hold(node, c, now)
			if !fresh {
				continue
			}
			if c.Initial {
				d.log.Warn("pglogical's first copy of a subscription failed: none of it committed, and pglogical marked every table ready", keyNode, node,
					"subscription", c.Subscription, "table", c.Table, keyError, c.Error, "at", c.Prefix)
			} else if c.Failed() && (!seen || !prev.Failed()) {
				d.log.Warn("pglogical's copy of a table failed and pglogical marked it ready", keyNode, node, "subscription", c.Subscription,
					"table", c.Table, keyError, c.Error, "at", c.Prefix)
			}
		}
		d.log.Debug("server log read", keyNode, node, "file", rd.chunk.File, "bytes_new", len(rd.chunk.New), "conflicts_new", len(rd.conflicts), "baseline", rd.chunk.Baseline)
	}
	w.running = false
}

// hold keeps copy c, read from node's log at now, unless it or a later
// copy of its Key was read before (fresh false): the previous one, if any.
func (w *logWatcher) hold(node string, c serverlog.Copy, now time.Time) (prev heldCopy, seen, fresh bool) {
	if w.copies[node] == nil {
		w.copies[node] = map[string]heldCopy{}
	}
	prev, seen = w.copies[node][c.Key()]
	if seen && c.Prefix <= prev.Prefix {
		return prev, seen, false // this copy, or an older one, read again
	}
	w.copies[node][c.Key()] = heldCopy{Copy: c, seen: now}
	w.dirty = true
	return prev, seen, true
}

// annotate adds the apply worker's last error to down subscriptions'
// findings, a table_sync_error for each table whose sync worker fails at
// each try, a table_copy_failed to a subscription for each of its tables
// whose last copy failed (unless a verification that started since found
// the table equal: equalSince, which may be nil), and to each subscriber
// that logged conflicts within conflictWindow a finding that says which.
func (w *logWatcher) annotate(r *diagnose.Report, equalSince func(subscriber, subscription, table string) time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.errs == nil {
		return // nothing read yet
	}
	for node, errs := range w.errs {
		serverlog.Annotate(r, node, w.files[node], errs)
		serverlog.AnnotateSync(r, node, w.files[node], w.syncFails[node])
	}
	// After every subscriber's: what the provider says comes after the
	// subscriber's "data stream ended".
	for node, errs := range w.decoding {
		serverlog.AnnotateDecoding(r, node, w.files[node], errs)
	}
	for node, h := range w.barrier {
		serverlog.AnnotateBarrier(r, node, w.files[node], h)
	}
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		w.annotateInitial(r, s, equalSince)
		var tables []string
		for key, c := range w.copies[s.Subscriber] {
			if c.Subscription != s.Name || !c.Failed() || c.Initial {
				continue
			}
			if equalSince != nil && equalSince(s.Subscriber, s.Name, c.Table).After(c.seen) {
				continue // the rows were put right since, and verified
			}
			tables = append(tables, key)
		}
		if len(tables) == 0 || s.Status == diagnose.StatusMissing {
			continue
		}
		sort.Strings(tables)
		for _, key := range tables {
			r.AddFinding(s, w.copies[s.Subscriber][key].Finding(w.files[s.Subscriber]))
		}
	}
	for i := range r.Nodes {
		w.annotateCrashes(r, &r.Nodes[i])
	}
	for i := range r.Nodes {
		n := &r.Nodes[i]
		keep := withinWindow(w.recent[n.Name], func(c countedConflict) time.Time { return c.at })
		w.recent[n.Name] = keep
		if len(keep) == 0 {
			continue
		}
		var kinds []string
		for _, c := range keep {
			kinds = append(kinds, fmt.Sprintf("%s: remote %s (%s), resolution %s", c.Table, c.Op, c.Found, c.Resolution))
		}
		parts := tally(kinds)
		conflicts := "conflicts"
		if len(keep) == 1 {
			conflicts = "conflict"
		}
		n.Findings = append(n.Findings, diagnose.Finding{Code: diagnose.CodeApplyConflicts, Severity: diagnose.Warning, Human: true,
			Message: fmt.Sprintf("pglogical resolved %d %s by itself on %s (read from its log in the last hour): %s; each can leave the tables different (writes made on the subscriber, or another origin): run pglmon verify",
				len(keep), conflicts, n.Name, strings.Join(parts, "; "))})
		r.Health = diagnose.Worst(r.Health, diagnose.Warning)
	}
}

// withinWindow keeps the items read (at) within conflictWindow.
func withinWindow[T any](items []T, at func(T) time.Time) []T {
	var keep []T
	for _, x := range items {
		if time.Since(at(x)) < conflictWindow {
			keep = append(keep, x)
		}
	}
	return keep
}

// tally says how many times each kind occurs: "2x kind", sorted.
func tally(kinds []string) []string {
	count := map[string]int{}
	for _, k := range kinds {
		count[k]++
	}
	var out []string
	for k, n := range count {
		out = append(out, fmt.Sprintf("%dx %s", n, k))
	}
	sort.Strings(out)
	return out
}

// annotateCrashes adds server_crashed to node n when its log recorded a
// crash within conflictWindow.
func (w *logWatcher) annotateCrashes(r *diagnose.Report, n *diagnose.Node) {
	if len(w.crashes[n.Name]) == 0 {
		return
	}
	keep := withinWindow(w.crashes[n.Name], func(c countedCrash) time.Time { return c.at })
	w.crashes[n.Name] = keep
	if len(keep) == 0 {
		return
	}
	var kinds []string
	subs := map[string]bool{}
	for _, c := range keep {
		what := c.Process
		if c.Subscription != "" {
			what += " (subscription " + c.Subscription + ")"
			subs[c.Subscription] = true
		}
		kinds = append(kinds, what+" was terminated by "+c.Signal)
	}
	parts := tally(kinds)
	times := "once"
	if len(keep) > 1 {
		times = fmt.Sprintf("%d times", len(keep))
	}
	msg := fmt.Sprintf("the server of %s crashed %s in the last hour (read from its log; the last at %s): %s; each crash ends every session and the server replays WAL before it accepts connections again",
		n.Name, times, keep[len(keep)-1].Prefix, strings.Join(parts, "; "))
	if len(subs) > 0 {
		names := slices.Sorted(maps.Keys(subs))
		msg += fmt.Sprintf(". pglogical's apply worker crashes at a change it cannot apply, and again at every start (pglogical 2.4.2 does this at a change to a table whose generated column the provider does not send: schema_mismatch); stop it by disabling the subscription: SELECT pglogical.alter_subscription_disable(%s, true); if the server never stays up long enough, stop it (pg_ctl stop -m immediate: a fast shutdown may not end a crash loop), start it with pglogical left out of shared_preload_libraries (RDS: a parameter group without it), run UPDATE pglogical.subscription SET sub_enabled = false WHERE sub_name = %s, fix the cause, put pglogical back and restart",
			pgident.Literal(names[0]), pgident.Literal(names[0]))
	}
	n.Findings = append(n.Findings, diagnose.Finding{Code: diagnose.CodeServerCrashed, Severity: diagnose.Critical, Human: true, Message: msg})
	r.Health = diagnose.Worst(r.Health, diagnose.Critical)
}

// annotateInitial reports the failed first copy of subscription s, held
// until pglmon sees it initialise again (set up anew: a new first copy,
// whose failure would be read anew), the table whose COPY failed copied
// again by a table sync (the remedy resynchronises every table at once), or
// a verification that started after pglmon read the failure finds every
// table of it equal. When that copy failed loudly (the subscription is down
// with init_failed), it names the cause in that finding instead.
func (w *logWatcher) annotateInitial(r *diagnose.Report, s *diagnose.Subscription, equalSince func(subscriber, subscription, table string) time.Time) {
	key := s.Name + "/"
	c, ok := w.copies[s.Subscriber][key]
	if !ok || c.cleared || s.Status == diagnose.StatusMissing {
		return
	}
	again, copied := w.copies[s.Subscriber][s.Name+"/"+c.Table]
	copied = copied && !again.Failed() && again.Prefix > c.Prefix
	if copied || (s.Status == probe.StatusInitializing && r.Time.After(c.seen)) || (equalSince != nil && equalSince(s.Subscriber, s.Name, "").After(c.seen)) {
		c.cleared = true
		w.copies[s.Subscriber][key] = c
		w.dirty = true
		return
	}
	for j := range s.Findings {
		if f := &s.Findings[j]; f.Code == diagnose.CodeInitFailed {
			f.Message += "; the cause: " + c.Cause(w.files[s.Subscriber])
			return
		}
	}
	r.AddFinding(s, c.Finding(w.files[s.Subscriber]))
}

func hasFinding(n diagnose.Node, code string) bool {
	for _, f := range n.Findings {
		if f.Code == code {
			return true
		}
	}
	return false
}
