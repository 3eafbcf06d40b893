// Package monitor runs one probe-and-diagnose cycle over every configured
// node, remembering across cycles what a single sample cannot tell.
package monitor

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/topology"
)

// Monitor owns one prober per node and the diagnosis history. It is safe for
// concurrent use: cycles run one at a time.
type Monitor struct {
	mu      sync.Mutex
	cfg     *config.Config
	probers []*probe.Prober
	history *diagnose.History
	now     func() time.Time
	// schemaChecks is the last table comparison of each subscription.
	schemaChecks map[string]schemaCheck
	// setChecks is the last comparison of each node's declared and held
	// replication sets.
	setChecks map[string]setCheck
	// seqChecks is the last comparison of each subscription's sequences.
	seqChecks map[string]seqCheck
	// setTables keeps the tables seen in each subscription's sets.
	setTables SetTables
}

// SetTables keeps, by subscriber and subscription, the tables seen in the
// subscription's replication sets on its provider, so that one taken out
// of them is known (table_left_set) where pglogical keeps nothing of it on
// the subscriber (a table put in a set with synchronize_data := false has
// no sync status there). In memory by default; the daemon keeps them in a
// file (package seen), across its restarts (KeepSetTables).
type SetTables interface {
	// Note adds now, the tables the sets hold now, and returns every
	// table seen.
	Note(subscriber, subscription string, now []drift.Relation, at time.Time) ([]drift.Relation, error)
	// Drop takes off tables the subscriber no longer has.
	Drop(subscriber, subscription string, gone []drift.Relation) error
	// Version changes when the tables kept may have changed other than
	// through Note and Drop (pglmon forget --table): the comparisons are
	// made again then.
	Version() string
}

// memTables is SetTables in memory.
type memTables map[string]map[drift.Relation]bool

func (m memTables) Note(subscriber, subscription string, now []drift.Relation, _ time.Time) ([]drift.Relation, error) {
	key := subscriber + "/" + subscription
	if m[key] == nil {
		m[key] = map[drift.Relation]bool{}
	}
	for _, r := range now {
		m[key][r] = true
	}
	return slices.Collect(maps.Keys(m[key])), nil
}

func (m memTables) Drop(subscriber, subscription string, gone []drift.Relation) error {
	for _, r := range gone {
		delete(m[subscriber+"/"+subscription], r)
	}
	return nil
}

func (m memTables) Version() string { return "" }

// KeepSetTables keeps the tables seen in each subscription's sets in t
// from now on.
func (m *Monitor) KeepSetTables(t SetTables) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setTables = t
}

type setCheck struct {
	at    time.Time
	sets  []config.ReplicationSet
	found []diagnose.UnreplicatedTable
}

// schemaEvery is how long a subscription's table comparison is reused
// while what it read stays the same (schemaInputs: a change compares
// again).
const schemaEvery = time.Minute

// A comparison put off for DDL pglogical queued on the provider (putOff)
// waits while the subscriber applies: until its origin has not moved for
// schemaWaitStill (a subscriber that stopped applying: an apply worker
// blocked by a lock, say), and schemaWaitMax at most (one that lags more,
// as behind a long apply_delay, is compared then).
const (
	schemaWaitStill = 30 * time.Second
	schemaWaitMax   = 10 * time.Minute
)

type schemaCheck struct {
	at time.Time
	schemaInputs
	found []diagnose.SchemaMismatch
	left  []string
	// unreadable: the tables of its sets the role of its provider
	// connection may not copy (drift.Unreadable).
	unreadable diagnose.CopyDenied
	// tables: the tables of the subscription's sets on its provider, as
	// compared, and those seen in them before that the subscriber still
	// has (probe.Prober.WatchTables).
	tables []drift.Relation
	// queue is the provider's probe.Snapshot.DDLQueue when compared.
	queue string
	wait  schemaWait
}

// schemaInputs is what a subscription's comparison is made again at once
// for when it changes.
type schemaInputs struct {
	status string
	sets   []string
	// provSets and provDefs: the provider's probe.Snapshot.SetTables and
	// TableDefs ("" when the provider did not answer: then not compared);
	// subDefs: the subscriber's TableDefs.
	provSets, provDefs, subDefs string
	// role: the role of its provider connection
	// (probe.Subscription.ProviderRole; the last one read while no
	// walsender says it).
	role string
	// kept: SetTables.Version.
	kept string
}

func (a schemaInputs) same(b schemaInputs) bool {
	same := func(x, y string) bool { return x == "" || y == "" || x == y }
	return a.status == b.status && slices.Equal(a.sets, b.sets) &&
		same(a.provSets, b.provSets) && same(a.provDefs, b.provDefs) && same(a.subDefs, b.subDefs) && same(a.role, b.role) && a.kept == b.kept
}

// schemaWait is a comparison put off (putOff) after DDL on the provider
// that pglogical queued for its subscribers (replicate_ddl_command): the
// subscriber runs it when it applies the queue's row, and a comparison
// before that would report a mismatch that goes by itself (measured: with
// a 3 s apply_delay, schema_mismatch at the first cycle after the DDL).
type schemaWait struct {
	// lsn is the provider's WAL insert position when the DDL was first
	// seen (past its commit), remote the subscription's origin then.
	lsn, remote probe.LSN
	since       time.Time
	provDefs    string
	// seen is the origin at the last look, moved when it last moved.
	seen  probe.LSN
	moved time.Time
}

// putOff says whether to put off the comparison of c, whose inputs
// changed to in (or which is due again), and keeps what it waits for in
// c.wait. It does while the provider's tables changed (provDefs) and its
// DDL queue did too (DDL that reaches the subscriber later), the
// subscription replicates, and the subscriber has not applied what the
// provider had written when the DDL was seen: its origin has not reached
// that position, nor moved while the slot confirmed it (an origin ends at
// the last commit applied, which on a quiet provider is before the
// provider's position); while the origin moves (schemaWaitStill), and
// schemaWaitMax at most.
func putOff(c *schemaCheck, in schemaInputs, ps *probe.Snapshot, sub probe.Subscription, now time.Time) bool {
	if ps == nil || ps.InsertLSN == 0 || sub.Status != "replicating" || in.provDefs == "" || c.provDefs == "" || in.provDefs == c.provDefs ||
		ps.DDLQueue == "" || c.queue == "" || ps.DDLQueue == c.queue {
		return false
	}
	if c.wait.since.IsZero() {
		c.wait.since, c.wait.moved, c.wait.seen = now, now, sub.OriginRemoteLSN
	}
	if c.wait.provDefs != in.provDefs { // more DDL: wait for it too, not longer in all
		c.wait.lsn, c.wait.remote, c.wait.provDefs = ps.InsertLSN, sub.OriginRemoteLSN, in.provDefs
	}
	if sub.OriginRemoteLSN != c.wait.seen {
		c.wait.seen, c.wait.moved = sub.OriginRemoteLSN, now
	}
	w := c.wait
	applied := sub.OriginRemoteLSN >= w.lsn || sub.OriginRemoteLSN > w.remote && confirmed(ps, sub.SlotName) >= w.lsn
	return !applied && now.Sub(w.moved) < schemaWaitStill && now.Sub(w.since) < schemaWaitMax
}

// New returns a monitor for the configured nodes.
func New(cfg *config.Config) *Monitor {
	m := &Monitor{history: diagnose.NewHistory(), now: time.Now, schemaChecks: map[string]schemaCheck{}, setChecks: map[string]setCheck{}, seqChecks: map[string]seqCheck{},
		setTables: memTables{}}
	m.SetConfig(cfg)
	return m
}

// SetConfig switches to a new configuration, keeping the connections and
// history of nodes whose name and settings did not change.
func (m *Monitor) SetConfig(cfg *config.Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := map[string]*probe.Prober{}
	oldNodes := map[string]config.Node{}
	if m.cfg != nil {
		for i, p := range m.probers {
			old[p.Node()] = p
			oldNodes[p.Node()] = m.cfg.Nodes[i]
		}
	}
	keep := map[string]bool{}
	probers := make([]*probe.Prober, 0, len(cfg.Nodes))
	for _, n := range cfg.Nodes {
		keep[n.Name] = true
		if p, ok := old[n.Name]; ok && sameNode(oldNodes[n.Name], n) && m.cfg.Probe.Timeout == cfg.Probe.Timeout {
			p.SetBackoff(cfg.Probe.MaxBackoff.D())
			probers = append(probers, p)
			delete(old, n.Name)
			continue
		}
		probers = append(probers, probe.NewProber(n, cfg.Probe.Timeout.D()))
		probers[len(probers)-1].SetBackoff(cfg.Probe.MaxBackoff.D())
	}
	for _, p := range old {
		p.Close(context.Background())
	}
	m.cfg, m.probers = cfg, probers
	m.history.Forget(keep)
}

func sameNode(a, b config.Node) bool {
	if a.Name != b.Name || a.DSN != b.DSN || (a.Password == nil) != (b.Password == nil) {
		return false
	}
	return a.Password == nil || *a.Password == *b.Password
}

// Config is the configuration in use.
func (m *Monitor) Config() *config.Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// Cycle probes every node concurrently and diagnoses the result.
func (m *Monitor) Cycle(ctx context.Context) (diagnose.Report, []probe.Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snaps := probe.ProbeAll(ctx, m.probers)
	now := m.now()
	m.history.Observe(snaps, now)
	cctx, cancel := context.WithTimeout(ctx, m.cfg.Probe.Timeout.D())
	defer cancel()
	cs := &conns{timeout: m.cfg.Probe.Timeout.D(), open: map[string]*pgx.Conn{}}
	defer cs.close(cctx)
	schema, left, unreadable := m.schema(cctx, cs, snaps, now)
	unreplicated := m.unreplicated(cctx, cs, snaps, now)
	seqs := m.sequences(cctx, cs, snaps, now)
	r := diagnose.Diagnose(diagnose.Input{Now: now, Thresholds: m.cfg.Thresholds, Snapshots: snaps, History: m.history,
		Schema: schema, LeftSets: left, Unreadable: unreadable, Unreplicated: unreplicated, Sequences: seqs, Declared: m.cfg.Subscriptions,
		ProviderWAL: m.providerWAL(cctx, snaps)})
	return r, snaps
}

// providerWAL reads again, after every node was probed, the WAL position of
// each provider that some subscriber's replication origin has passed in
// this cycle's snapshots. The nodes are probed at once, so a subscriber
// probed last can have applied a commit its provider wrote after its own
// probe; read afterwards, a provider's WAL ends past every change any
// subscriber applied from it, unless it was rewound (restored from a
// backup, failed over to a standby short of that WAL): diagnose's
// provider_rewound. Read through the provider's probe connection. Best
// effort: a provider that cannot be read is left out.
func (m *Monitor) providerWAL(ctx context.Context, snaps []probe.Snapshot) map[string]probe.LSN {
	byLocal := map[string]int{}
	for i, s := range snaps {
		if s.Up() && !s.InRecovery && s.LocalNode != "" && i < len(m.cfg.Nodes) {
			byLocal[s.LocalNode] = i
		}
	}
	var out map[string]probe.LSN
	for _, s := range snaps {
		if !s.Up() || s.InRecovery {
			continue
		}
		for _, sub := range s.Subscriptions {
			i, ok := byLocal[sub.ProviderNode]
			if !ok || !sub.OriginExists || sub.OriginRemoteLSN <= snaps[i].CurrentLSN {
				continue
			}
			if _, read := out[snaps[i].Node]; read {
				continue
			}
			l, err := m.probers[i].WALEnd(ctx)
			if err != nil {
				continue
			}
			if out == nil {
				out = map[string]probe.LSN{}
			}
			out[snaps[i].Node] = l
		}
	}
	return out
}

// unreplicated lists, for every node the configuration's replication sets
// are on, the tables those sets stand for that pglogical's sets there do
// not hold (package topology), read again at most every schemaEvery. Best
// effort: a node that cannot be read keeps its last answer.
func (m *Monitor) unreplicated(ctx context.Context, cs *conns, snaps []probe.Snapshot, now time.Time) map[string][]diagnose.UnreplicatedTable {
	out := map[string][]diagnose.UnreplicatedTable{}
	for i, s := range snaps {
		if i >= len(m.cfg.Nodes) {
			continue
		}
		var sets []config.ReplicationSet
		for _, rs := range m.cfg.ReplicationSets {
			if rs.Node == s.Node {
				sets = append(sets, rs)
			}
		}
		last, ok := m.setChecks[s.Node]
		switch {
		case len(sets) == 0 || !s.Up() || s.LocalNode == "":
			delete(m.setChecks, s.Node)
			continue
		case ok && now.Sub(last.at) < schemaEvery && slices.EqualFunc(last.sets, sets, sameSet):
			out[s.Node] = last.found
			continue
		}
		c, err := cs.get(ctx, m.cfg.Nodes[i])
		if err == nil {
			var found []diagnose.UnreplicatedTable
			if found, err = topology.Missing(ctx, c, sets); err == nil {
				m.setChecks[s.Node] = setCheck{at: now, sets: sets, found: found}
				out[s.Node] = found
				continue
			}
		}
		if ok {
			out[s.Node] = last.found
		}
	}
	return out
}

func sameSet(a, b config.ReplicationSet) bool {
	return a.Name == b.Name && slices.Equal(a.Tables, b.Tables) && slices.Equal(a.Schemas, b.Schemas)
}

// conns opens, at most once per cycle, the extra connections the table
// checks use (never the probe's own, which stays a single pipelined batch).
type conns struct {
	timeout time.Duration
	open    map[string]*pgx.Conn
}

func (cs *conns) get(ctx context.Context, n config.Node) (*pgx.Conn, error) {
	if c, ok := cs.open[n.Name]; ok {
		return c, nil
	}
	cfg, err := probe.ConnConfig(n, cs.timeout)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "pglmon schema check"
	c, err := probe.Open(ctx, n, cfg)
	if err == nil {
		cs.open[n.Name] = c
	}
	return c, err
}

func (cs *conns) close(ctx context.Context) {
	for _, c := range cs.open {
		c.Close(context.WithoutCancel(ctx))
	}
}

// schema compares the replicated tables of every subscription between its
// provider and its subscriber (package drift), and names the tables
// pglogical copied that left its sets (drift.LeftSets), at most every
// schemaEvery while the subscription's status and sets, the tables of its
// provider's sets, and the definitions of those tables on either side stay
// the same (schemaInputs); with them, the tables the role of its provider
// connection may not copy (drift.Unreadable).
// Best effort: a comparison that fails leaves the subscription out.
func (m *Monitor) schema(ctx context.Context, cs *conns, snaps []probe.Snapshot, now time.Time) (map[string][]diagnose.SchemaMismatch, map[string][]string, map[string]diagnose.CopyDenied) {
	byLocal := map[string]config.Node{}       // pglogical node name -> configured node that answered
	provSnaps := map[string]*probe.Snapshot{} // pglogical node name -> its snapshot
	for i, s := range snaps {
		if s.Up() && s.LocalNode != "" && i < len(m.cfg.Nodes) {
			byLocal[s.LocalNode] = m.cfg.Nodes[i]
			provSnaps[s.LocalNode] = &snaps[i]
		}
	}
	conn := func(n config.Node) (*pgx.Conn, error) { return cs.get(ctx, n) }
	out := map[string][]diagnose.SchemaMismatch{}
	left, unreadable := map[string][]string{}, map[string]diagnose.CopyDenied{}
	seen := map[string]bool{}
	kept := m.setTables.Version()
	for i, s := range snaps {
		if !s.Up() || i >= len(m.cfg.Nodes) {
			continue
		}
		for _, sub := range s.Subscriptions {
			key := s.Node + "/" + sub.Name
			seen[key] = true
			in := schemaInputs{status: sub.Status, sets: slices.Clone(sub.ReplicationSets), subDefs: s.TableDefs, kept: kept}
			ps := provSnaps[sub.ProviderNode]
			if ps != nil {
				in.provSets, in.provDefs = ps.SetTables, ps.TableDefs
			}
			// A connection string without a user leaves only the
			// walsender to say the role, and none streams while the
			// subscription reconnects: the role read last stands then.
			if in.role = sub.ProviderRole(ps); in.role == "" {
				in.role = m.schemaChecks[key].role
			}
			if c, ok := m.schemaChecks[key]; ok {
				if now.Sub(c.at) < schemaEvery && c.same(in) {
					out[key], left[key], unreadable[key] = c.found, c.left, c.unreadable
					continue
				}
				// Also when due again: a wait that began near the end of
				// the minute is not cut short by it.
				if putOff(&c, in, ps, sub, now) {
					m.schemaChecks[key] = c
					out[key], left[key], unreadable[key] = c.found, c.left, c.unreadable
					continue
				}
			}
			prov, ok := byLocal[sub.ProviderNode]
			if !ok {
				continue
			}
			pc, err := conn(prov)
			if err != nil {
				continue
			}
			sc, err := conn(m.cfg.Nodes[i])
			if err != nil {
				continue
			}
			got, err := drift.CheckSubscription(ctx, pc, sc, sub.Name, sub.ReplicationSets)
			if err != nil {
				continue
			}
			watch := got.Tables
			leftRels := got.Left
			if kept := m.keptOut(ctx, sc, s.Node, sub.Name, got.Tables, now); len(kept) > 0 {
				watch = append(slices.Clone(got.Tables), kept...)
				leftRels = append(leftRels, kept...)
				slices.SortFunc(leftRels, func(a, b drift.Relation) int { return strings.Compare(a.String(), b.String()) })
				leftRels = slices.Compact(leftRels)
			}
			var gone []string
			for _, r := range leftRels {
				gone = append(gone, r.String())
			}
			// Best effort too: a role the provider cannot tell about
			// leaves nothing to say.
			denied := diagnose.CopyDenied{Role: in.role}
			if rels, err := drift.Unreadable(ctx, pc, in.role, sub.ReplicationSets); err == nil {
				for _, r := range rels {
					denied.Tables = append(denied.Tables, r.String())
				}
			}
			if fs, err := drift.FilterDenied(ctx, pc, in.role, sub.ReplicationSets); err == nil {
				denied.Filters = fs
			}
			m.schemaChecks[key] = schemaCheck{at: now, schemaInputs: in, found: got.Mismatches, left: gone, unreadable: denied, tables: watch, queue: ps.DDLQueue}
			out[key], left[key], unreadable[key] = got.Mismatches, gone, denied
		}
		// The subscriber's next Snapshot.TableDefs covers its
		// subscriptions' tables as last compared, whether or not it has
		// their sync status.
		var watch []drift.Relation
		for _, sub := range s.Subscriptions {
			watch = append(watch, m.schemaChecks[s.Node+"/"+sub.Name].tables...)
		}
		slices.SortFunc(watch, func(a, b drift.Relation) int { return strings.Compare(a.String(), b.String()) })
		watch = slices.Compact(watch)
		schemas, names := make([]string, len(watch)), make([]string, len(watch))
		for j, r := range watch {
			schemas[j], names[j] = r.Schema, r.Name
		}
		m.probers[i].WatchTables(schemas, names)
	}
	for k := range m.schemaChecks {
		if !seen[k] {
			delete(m.schemaChecks, k)
		}
	}
	return out, left, unreadable
}

// keptOut returns the tables seen in the sets of subscription (on
// subscriber, read through sc) before, that the sets no longer hold (now)
// and the subscriber still has; those it no longer has are forgotten.
// Best effort: none when they cannot be read.
func (m *Monitor) keptOut(ctx context.Context, sc *pgx.Conn, subscriber, subscription string, now []drift.Relation, at time.Time) []drift.Relation {
	all, err := m.setTables.Note(subscriber, subscription, now, at)
	if err != nil {
		return nil
	}
	in := make(map[drift.Relation]bool, len(now))
	for _, r := range now {
		in[r] = true
	}
	out := slices.DeleteFunc(slices.Clone(all), func(r drift.Relation) bool { return in[r] })
	if len(out) == 0 {
		return nil
	}
	have, err := drift.Existing(ctx, sc, out)
	if err != nil {
		return nil
	}
	exists := map[drift.Relation]bool{}
	for _, r := range have {
		exists[r] = true
	}
	_ = m.setTables.Drop(subscriber, subscription, slices.DeleteFunc(out, func(r drift.Relation) bool { return exists[r] }))
	return have
}

// confirmed is how far slot has confirmed on the provider ps (0: not there).
func confirmed(ps *probe.Snapshot, slot string) probe.LSN {
	for _, sl := range ps.Slots {
		if sl.Name == slot {
			return sl.ConfirmedFlushLSN
		}
	}
	return 0
}

// Observe runs a cycle and returns its report.
func (m *Monitor) Observe(ctx context.Context) diagnose.Report {
	r, _ := m.Cycle(ctx)
	return r
}

// RoundTrips is the total of network round trips of the last cycle.
func (m *Monitor) RoundTrips() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, p := range m.probers {
		n += p.RoundTrips()
	}
	return n
}

// Close closes every connection.
func (m *Monitor) Close(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.probers {
		p.Close(ctx)
	}
}
