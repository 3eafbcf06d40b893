package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pglmon/pglmon/internal/config"
)

// Prober probes one node, keeping one connection open between cycles.
// It is not safe for concurrent use; ProbeAll runs one goroutine per Prober.
type Prober struct {
	node    config.Node
	timeout time.Duration
	connect ConnectFunc

	conn         *pgx.Conn
	hasPglogical bool
	// hasHeartbeat: pglmon.heartbeat exists (package heartbeat), and
	// hasPositions: pglmon.heartbeat_position too.
	hasHeartbeat, hasPositions bool
	// pg14: the server has pg_stat_replication_slots and
	// pg_stat_progress_copy (PostgreSQL 14+).
	pg14 bool
	// readDSN: the role may read pglogical.node_interface.if_dsn.
	readDSN bool
	// preloaded: pglogical is in shared_preload_libraries (as far as
	// this role may see).
	preloaded bool
	// Backoff after failures: the last failed snapshot is returned until retryAt.
	maxBackoff time.Duration
	failures   int
	retryAt    time.Time
	lastFailed Snapshot
	writes     atomic.Int64
	lastWrites int64
	// noTimeline: the server does not tell its timeline (learnTimeline).
	noTimeline bool
	// The timeline history last read (readTimeline): of timeline histTLI,
	// at histAt, or why it could not be.
	histTLI uint32
	hist    []TimelineSwitch
	histErr string
	histAt  time.Time
	// watchSchemas and watchNames: WatchTables'.
	watchSchemas, watchNames []string
}

// WatchTables names the tables, beyond those of its replication sets and
// those pglogical copied to it, whose definitions Snapshot.TableDefs
// fingerprints: the tables of the node's subscriptions' sets on their
// providers (package monitor, from its last comparison). pglogical 2.4.2
// deletes a table's sync status on a subscriber when one of its columns is
// dropped there (its object-access hook treats the column as the table),
// so the sync status alone would lose the table. Not safe to call during
// Probe.
func (p *Prober) WatchTables(schemas, names []string) {
	p.watchSchemas, p.watchNames = schemas, names
}

// ConnectFunc opens a connection with the prepared configuration; tests and
// the credentials layer may replace it.
type ConnectFunc func(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error)

// NewProber returns a prober for node; timeout bounds each cycle and is also
// the server-side statement_timeout.
func NewProber(node config.Node, timeout time.Duration) *Prober {
	return &Prober{node: node, timeout: timeout, connect: pgx.ConnectConfig}
}

// SetBackoff makes a failing node wait base, 2*base, 4*base ... up to max
// between attempts; the cycles in between report the last failure again.
func (p *Prober) SetBackoff(max time.Duration) { p.maxBackoff = max }

// Failures is the number of consecutive failed probes.
func (p *Prober) Failures() int { return p.failures }

// Node is the name of the probed node.
func (p *Prober) Node() string { return p.node.Name }

// RoundTrips is how many times the last Probe wrote to the network: with
// pipelining each write is followed by one wait for the server.
func (p *Prober) RoundTrips() int64 { return p.lastWrites }

// Close closes the connection.
func (p *Prober) Close(ctx context.Context) {
	if p.conn != nil {
		_ = p.conn.Close(ctx)
		p.conn = nil
	}
}

// lostConn says whether the connection is gone (a FATAL error or a broken
// socket closes it; an error of a statement leaves it open).
func (p *Prober) lostConn() bool { return p.conn == nil || p.conn.IsClosed() }

// WALEnd reads where the server's WAL ends now, through the connection
// the last probe used (none is opened): for a reading that must come after
// other nodes' probes (package monitor, provider_rewound). A failure
// closes the connection, which the next probe opens again.
func (p *Prober) WALEnd(ctx context.Context) (LSN, error) {
	if p.conn == nil {
		return 0, errors.New("not connected")
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var s string
	if err := p.conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		p.Close(context.Background())
		return 0, err
	}
	return ParseLSN(s)
}

// Probe gathers one snapshot. A node that cannot be reached gives a snapshot
// with Err set; the error never holds a password.
func (p *Prober) Probe(ctx context.Context) Snapshot {
	start := time.Now()
	if p.failures > 0 && start.Before(p.retryAt) {
		s := p.lastFailed
		s.Skipped = true
		p.lastWrites = 0
		return s
	}
	snap := Snapshot{Node: p.node.Name, Time: start}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	before := p.writes.Load()
	reused := p.conn != nil
	err := p.probe(ctx, &snap)
	if err != nil && reused && p.lostConn() && ctx.Err() == nil {
		// The connection kept since the last cycle was closed meanwhile
		// (the server restarted, idle_session_timeout, a proxy's idle
		// limit): a node that answers a new one is not unreachable.
		p.Close(context.Background())
		snap = Snapshot{Node: p.node.Name, Time: start}
		err = p.probe(ctx, &snap)
	}
	if err != nil && p.conn != nil && isMissingPglogical(err) && (p.hasPglogical || p.hasHeartbeat || p.hasPositions) {
		// The extension or the heartbeat table was dropped since the last
		// cycle: ask again without them (the batch says what is there).
		p.hasPglogical, p.hasHeartbeat, p.hasPositions = false, false, false
		snap = Snapshot{Node: p.node.Name, Time: start}
		err = p.probe(ctx, &snap)
	}
	p.lastWrites = p.writes.Load() - before
	snap.Duration = time.Since(start)
	if err != nil {
		p.Close(context.Background())
		snap = Snapshot{Node: p.node.Name, Time: start, Duration: snap.Duration, Err: err}
		p.failures++
		if p.maxBackoff > 0 {
			wait := min(p.timeout<<min(p.failures-1, 20), p.maxBackoff)
			p.retryAt = start.Add(wait)
		}
		p.lastFailed = snap
		return snap
	}
	p.failures = 0
	return snap
}

func (p *Prober) probe(ctx context.Context, snap *Snapshot) error {
	if p.conn == nil {
		if err := p.dial(ctx); err != nil {
			return err
		}
	}
	b := &pgx.Batch{}
	var curLSN, version string
	var hbTable, hbPositions bool
	var clock time.Time
	var waits map[string]*LockWait
	b.Queue(metaQuery).QueryRow(func(row pgx.Row) error {
		return row.Scan(&snap.ServerVersion, &snap.Database, &snap.InRecovery, &curLSN, &version, &hbTable, &hbPositions, &clock)
	})
	var hb *Heartbeat
	if p.hasHeartbeat {
		hb = &Heartbeat{Nodes: map[string]HeartbeatSpan{}}
		b.Queue(heartbeatQuery).Query(func(rows pgx.Rows) error {
			var node string
			var span HeartbeatSpan
			_, err := pgx.ForEachRow(rows, []any{&node, &span.Oldest, &span.Newest}, func() error {
				hb.Nodes[node] = span
				return nil
			})
			return err
		})
		if p.hasPglogical {
			b.Queue(heartbeatSetQuery).QueryRow(func(row pgx.Row) error { return row.Scan(&hb.Provides) })
		}
		if p.hasPositions {
			hb.Positions = true
			b.Queue(heartbeatSlotsQuery).Query(func(rows pgx.Rows) error {
				hb.Slots = map[string]SlotHeartbeat{}
				var slot string
				var sh SlotHeartbeat
				_, err := pgx.ForEachRow(rows, []any{&slot, &sh.Newest, &sh.Confirmed, &sh.Oldest}, func() error {
					hb.Slots[slot] = sh
					sh.Confirmed = nil
					return nil
				})
				return err
			})
		}
	}
	b.Queue(slotsQuery).Query(func(rows pgx.Rows) error {
		var err error
		snap.Slots, err = scanSlots(rows)
		return err
	})
	if p.pg14 {
		b.Queue(slotStatsQuery).Query(func(rows pgx.Rows) error {
			stats, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (slotStats, error) {
				var st slotStats
				err := row.Scan(&st.slot, &st.s.SpillTxns, &st.s.SpillCount, &st.s.SpillBytes, &st.s.TotalTxns, &st.s.TotalBytes)
				return st, err
			})
			for _, st := range stats {
				for i := range snap.Slots {
					if snap.Slots[i].Name == st.slot {
						d := st.s
						snap.Slots[i].Decoding = &d
					}
				}
			}
			return err
		})
	}
	var tli int64
	if !p.noTimeline {
		b.Queue(timelineQuery).QueryRow(func(row pgx.Row) error { return row.Scan(&tli) })
	}
	b.Queue(invalidDatabasesQuery).QueryRow(func(row pgx.Row) error { return row.Scan(&snap.InvalidDatabases) })
	b.Queue(capacityQuery).QueryRow(func(row pgx.Row) error {
		var c Capacity
		if err := row.Scan(&c.Slots, &c.MaxSlots, &c.Senders, &c.MaxSenders, &c.SenderTimeoutMS); err != nil {
			return err
		}
		snap.Capacity = &c
		return nil
	})
	b.Queue(workersQuery).QueryRow(func(row pgx.Row) error {
		var w Workers
		var inUse *int
		if err := row.Scan(&inUse, &w.Pglogical, &w.Parallel, &w.Max, &w.ManagerRunning, &w.SupervisorRunning, &w.UptimeSeconds); err != nil {
			return err
		}
		w.Preloaded = p.preloaded
		if inUse != nil {
			w.InUse = *inUse
			snap.Workers = &w
		}
		return nil
	})
	b.Queue(oldestXactQuery).Query(func(rows pgx.Rows) error {
		xs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Xact, error) {
			var x Xact
			err := row.Scan(&x.PID, &x.GID, &x.Database, &x.User, &x.Application, &x.ClientAddr, &x.State, &x.XactSeconds, &x.StateSeconds, &x.XidAge)
			return x, err
		})
		if len(xs) > 0 {
			snap.OldestXact = &xs[0]
		}
		return err
	})
	b.Queue(barrierWaitsQuery).Query(func(rows pgx.Rows) error {
		var err error
		snap.BarrierWaits, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (BarrierWait, error) {
			var w BarrierWait
			var pids []int32
			var types []string
			err := row.Scan(&w.PID, &w.User, &w.Application, &w.ClientAddr, &w.State, &w.Seconds, &w.Statement, &pids, &types)
			for i := range min(len(pids), len(types)) {
				w.Pglogical = append(w.Pglogical, Process{PID: int(pids[i]), Type: types[i]})
			}
			return w, err
		})
		return err
	})
	if p.hasPglogical {
		schemas, names := p.watchSchemas, p.watchNames
		if schemas == nil {
			schemas, names = []string{}, []string{}
		}
		q := pglogicalNodeQuery
		if !p.pg14 {
			q = pglogicalNodeQueryPG13
		}
		b.Queue(q, schemas, names).QueryRow(func(row pgx.Row) error {
			var insert string
			if err := row.Scan(&snap.LocalNode, &snap.SetTables, &snap.SyncStates, &snap.TableDefs, &snap.DDLQueue, &insert); err != nil {
				return err
			}
			snap.InsertLSN, _ = ParseLSN(insert)
			return nil
		})
		q = subscriptionsQuery
		if !p.readDSN {
			q = subscriptionsQueryNoDSN
		}
		b.Queue(q).Query(func(rows pgx.Rows) error {
			var err error
			snap.Subscriptions, err = scanSubscriptions(rows)
			return err
		})
		b.Queue(originStatesQuery).QueryRow(func(row pgx.Row) error {
			var o OriginStates
			if err := row.Scan(&o.Held, &o.Max); err != nil {
				return err
			}
			snap.Origins = &o
			return nil
		})
		b.Queue(lockWaitsQuery).Query(func(rows pgx.Rows) error {
			var err error
			waits, err = scanLockWaits(rows)
			return err
		})
		q = tableSyncQuery
		if !p.pg14 {
			q = tableSyncQueryPG13
		}
		b.Queue(q).Query(func(rows pgx.Rows) error {
			var err error
			snap.TableSync, err = scanTableSync(rows)
			return err
		})
		b.Queue(partitionsQuery).Query(func(rows pgx.Rows) error {
			var err error
			snap.UnreplicatedPartitions, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Partition, error) {
				var p Partition
				err := row.Scan(&p.Schema, &p.Table, &p.Parent, &p.Sets)
				return p, err
			})
			return err
		})
	}
	sent := time.Now()
	if err := p.conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("probe %s: %w", p.node.Name, err)
	}
	snap.CurrentLSN, _ = ParseLSN(curLSN)
	snap.PglogicalVersion = version
	snap.Timeline = uint32(tli)
	p.readTimeline(ctx, snap)
	if hb != nil {
		hb.Clock, hb.ReadAt = clock, sent
		snap.Heartbeat = hb
	}
	for i, s := range snap.Subscriptions {
		snap.Subscriptions[i].LockWait = waits[s.ApplyWorker]
	}
	if (version != "") != p.hasPglogical || hbTable != p.hasHeartbeat || hbPositions != p.hasPositions {
		// pglogical or a heartbeat table was installed or removed since
		// the connection was opened: ask again for what is now there.
		added := hbTable && !p.hasHeartbeat || hbPositions && !p.hasPositions
		p.hasHeartbeat, p.hasPositions = hbTable, hbPositions
		if (version != "") != p.hasPglogical {
			if err := p.learnPglogical(ctx); err != nil {
				return fmt.Errorf("probe %s: %w", p.node.Name, err)
			}
			added = added || p.hasPglogical
		}
		if added {
			return p.probe(ctx, snap)
		}
	}
	return nil
}

func (p *Prober) dial(ctx context.Context) error {
	cfg, err := p.connConfig()
	if err != nil {
		return err
	}
	conn, err := openWith(ctx, p.node, cfg, p.connect)
	if err != nil {
		return err
	}
	p.conn = conn
	// Learn whether pglogical is installed; later cycles learn it from the batch.
	if err := p.learnPglogical(ctx); err != nil {
		return fmt.Errorf("probe %s: %w", p.node.Name, err)
	}
	p.pg14 = serverMajor(conn.PgConn().ParameterStatus("server_version")) >= 14
	p.learnTimeline(ctx)
	return nil
}

// learnPglogical reads whether pglogical is installed, and whether this
// role may read the connection strings of its interfaces (a watching role
// need not: they may hold passwords).
func (p *Prober) learnPglogical(ctx context.Context) error {
	var version string
	if err := p.conn.QueryRow(ctx, learnPglogicalQuery).Scan(&version, &p.readDSN, &p.preloaded); err != nil {
		return err
	}
	p.hasPglogical = version != ""
	return nil
}

// slotStats is a row of slotStatsQuery.
type slotStats struct {
	slot string
	s    Decoding
}

// serverMajor is the major version in a server_version parameter ("15.2
// (Debian 15.2-1.pgdg110+1)"), 0 when unreadable.
func serverMajor(v string) int {
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// ConnConfig parses the node's DSN and adds its password and pglmon's session settings.
func ConnConfig(node config.Node, timeout time.Duration) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(node.DSN)
	if err != nil {
		// pgx errors may quote the connection string; say only which node.
		return nil, fmt.Errorf("node %s: invalid dsn: %s", node.Name, config.DSNReason(err))
	}
	// AWS-held passwords may need a network call: bounded like the rest.
	pctx, cancel := context.WithTimeout(context.Background(), max(timeout, 5*time.Second))
	defer cancel()
	pw, err := node.ResolvePasswordContext(pctx)
	if err != nil {
		return nil, err
	}
	if pw != "" {
		cfg.Password = pw.Reveal()
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "pglmon"
	}
	ms := strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)
	cfg.RuntimeParams["statement_timeout"] = ms
	cfg.RuntimeParams["lock_timeout"] = ms
	cfg.RuntimeParams["idle_in_transaction_session_timeout"] = "60000"
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > timeout {
		cfg.ConnectTimeout = timeout
	}
	return cfg, nil
}

// Connect opens a connection to node with pglmon's session settings.
func Connect(ctx context.Context, node config.Node, timeout time.Duration) (*pgx.Conn, error) {
	cfg, err := ConnConfig(node, timeout)
	if err != nil {
		return nil, err
	}
	return Open(ctx, node, cfg)
}

// Open connects with a prepared configuration. The error never holds the
// password that was sent, and a refused password drops a cached secret so
// the next connection fetches it again (rotation).
func Open(ctx context.Context, node config.Node, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	return openWith(ctx, node, cfg, pgx.ConnectConfig)
}

func openWith(ctx context.Context, node config.Node, cfg *pgx.ConnConfig, connect ConnectFunc) (*pgx.Conn, error) {
	conn, err := connect(ctx, cfg)
	if err != nil {
		if IsAuthFailure(err) {
			node.ForgetPassword()
		}
		return nil, RedactError(fmt.Errorf("connect to %s: %w", node.Name, err), config.Secret(cfg.Password))
	}
	return conn, nil
}

func (p *Prober) connConfig() (*pgx.ConnConfig, error) {
	cfg, err := ConnConfig(p.node, p.timeout)
	if err != nil {
		return nil, err
	}
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, writes: &p.writes}, nil
	}
	return cfg, nil
}

// RedactError returns err with every occurrence of secret replaced.
func RedactError(err error, secret config.Secret) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if s := secret.Reveal(); s != "" && strings.Contains(msg, s) {
		msg = strings.ReplaceAll(msg, s, "<secret>")
		return errors.New(msg)
	}
	return err
}

// countingConn counts writes so a benchmark can report round trips.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// IsAuthFailure reports whether the server refused the password (28P01) or
// the authorization (28000).
func IsAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
}

func isMissingPglogical(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42P01", "3F000", "42883": // undefined table, schema, function
			return true
		}
	}
	return false
}

// ProbeAll probes every node concurrently; a slow node never holds up the others.
func ProbeAll(ctx context.Context, probers []*Prober) []Snapshot {
	out := make([]Snapshot, len(probers))
	var wg sync.WaitGroup
	for i, p := range probers {
		wg.Go(func() { out[i] = p.Probe(ctx) })
	}
	wg.Wait()
	return out
}

// ParseLSN parses "16/B374D848"; "" is 0.
func ParseLSN(s string) (LSN, error) {
	if s == "" {
		return 0, nil
	}
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	return LSN(h<<32 | l), nil
}
