package probe

import (
	"strings"

	"github.com/pglmon/pglmon/internal/config"
)

// metaQuery identifies the server. pg_current_wal_lsn() fails on a standby.
const metaQuery = `SELECT current_setting('server_version_num')::int,
	current_database(),
	pg_is_in_recovery(),
	(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
	coalesce((SELECT extversion FROM pg_extension WHERE extname = 'pglogical'), ''),
	coalesce((SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pglmon' AND c.relname = 'heartbeat'), false),
	coalesce((SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pglmon' AND c.relname = 'heartbeat_position'), false),
	clock_timestamp()`

// HeartbeatTable and HeartbeatSet are where pglmon writes its heartbeats
// (package heartbeat): a table of pglmon's own on every node, in a
// replication set of its own on each provider, which one subscription per
// provider and subscriber carries.
const (
	HeartbeatTable = "pglmon.heartbeat"
	HeartbeatSet   = config.HeartbeatSet
)

// heartbeatQuery reads, per pglogical node name, the oldest and newest
// heartbeat pglmon.heartbeat holds: a provider's own, a subscriber's as
// applied from each provider. Queued only while the table exists and the
// role may read it (metaQuery, from the catalog: to_regclass raises an
// error for a schema the role may not use): a missing grant must not fail
// the probe.
const heartbeatQuery = `SELECT node, min(ts), max(ts) FROM pglmon.heartbeat GROUP BY node`

// heartbeatSetQuery: the table is in this node's pglmon_heartbeat set, so
// pglmon writes heartbeats here for its subscribers.
const heartbeatSetQuery = `SELECT EXISTS (SELECT 1 FROM pglogical.replication_set_table t
	JOIN pglogical.replication_set s ON s.set_id = t.set_id
	WHERE s.set_name = 'pglmon_heartbeat' AND t.set_reloid = to_regclass('pglmon.heartbeat'))`

// heartbeatSlotsQuery reads pglmon.heartbeat_position, where pglmon keeps
// the WAL position of every heartbeat it writes on this node (HeartbeatMark;
// never replicated). For each logical slot of this database that has
// confirmed a position: whether it confirmed the newest heartbeat's, the
// stamp of the newest heartbeat at or before the position it confirmed
// (NULL: before every one kept), and the oldest kept. Queued only while the
// table exists and the role may read it.
const heartbeatSlotsQuery = `WITH newest AS (SELECT lsn FROM pglmon.heartbeat_position ORDER BY lsn DESC LIMIT 1),
	oldest AS (SELECT ts FROM pglmon.heartbeat_position ORDER BY lsn LIMIT 1)
SELECT s.slot_name::text, s.confirmed_flush_lsn >= newest.lsn,
	(SELECT p.ts FROM pglmon.heartbeat_position p WHERE p.lsn <= s.confirmed_flush_lsn ORDER BY p.lsn DESC LIMIT 1),
	oldest.ts
FROM pg_replication_slots s CROSS JOIN newest CROSS JOIN oldest
WHERE s.database = current_database() AND s.confirmed_flush_lsn IS NOT NULL`

// slotsQuery lists the slots of this database (and physical slots, which
// retain WAL too) with the walsender streaming from each. Slots of other
// databases belong to other nodes.
const slotsQuery = `WITH cur AS (
	SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn)
SELECT s.slot_name::text, coalesce(s.plugin::text, ''), s.slot_type, s.active, coalesce(s.active_pid, 0),
	coalesce(s.restart_lsn::text, ''), coalesce(s.confirmed_flush_lsn::text, ''),
	coalesce(s.wal_status, ''), s.safe_wal_size,
	coalesce(pg_wal_lsn_diff(cur.lsn, s.restart_lsn), 0)::bigint,
	coalesce(pg_wal_lsn_diff(cur.lsn, coalesce(r.flush_lsn, s.confirmed_flush_lsn)), 0)::bigint,
	r.pid IS NOT NULL, coalesce(r.application_name, ''), coalesce(r.state, ''),
	coalesce(r.sent_lsn::text, ''), coalesce(r.write_lsn::text, ''), coalesce(r.flush_lsn::text, ''), coalesce(r.replay_lsn::text, ''),
	extract(epoch FROM r.write_lag)::float8, extract(epoch FROM r.flush_lag)::float8, extract(epoch FROM r.replay_lag)::float8,
	age(s.xmin)::bigint, age(s.catalog_xmin)::bigint,
	coalesce(host(r.client_addr), ''), coalesce(r.client_port, 0),
	extract(epoch FROM now() - r.backend_start)::float8, extract(epoch FROM now() - r.reply_time)::float8,
	coalesce(r.usename::text, '')
FROM pg_replication_slots s
CROSS JOIN cur
LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.database IS NULL OR s.database = current_database()
ORDER BY s.slot_name`

// slotStatsQuery reads the logical decoding counters of this database's
// slots (PostgreSQL 14+; queued after slotsQuery, whose slots it fills in).
const slotStatsQuery = `SELECT st.slot_name::text, st.spill_txns, st.spill_count, st.spill_bytes, st.total_txns, st.total_bytes
FROM pg_stat_replication_slots st
JOIN pg_replication_slots s ON s.slot_name = st.slot_name
WHERE s.database = current_database()`

// workersQuery counts the background workers running on the server (every
// pg_stat_activity row that is not one of PostgreSQL's own fixed processes
// or a client: pglogical's supervisor, managers, apply and sync workers,
// parallel query workers, the logical replication launcher...) against
// max_worker_processes, with pglogical's and parallel ones apart. Without
// pg_read_all_stats other users' rows hide their type: then unknown (NULL).
const workersQuery = `SELECT CASE WHEN bool_and(backend_type IS NOT NULL) THEN count(*) FILTER (WHERE backend_type NOT IN
		('autovacuum launcher', 'autovacuum worker', 'background writer', 'client backend', 'checkpointer',
		 'archiver', 'startup', 'walreceiver', 'walsender', 'walwriter', 'standalone backend')) END::int,
	count(*) FILTER (WHERE backend_type LIKE 'pglogical %')::int,
	count(*) FILTER (WHERE backend_type = 'parallel worker')::int,
	current_setting('max_worker_processes')::int,
	coalesce(bool_or(backend_type = 'pglogical manager ' || (SELECT oid FROM pg_database WHERE datname = current_database())), false),
	coalesce(bool_or(backend_type = 'pglogical supervisor'), false),
	extract(epoch FROM now() - pg_postmaster_start_time())::float8
FROM pg_stat_activity`

// capacityQuery counts the server's replication slots (every database's)
// and walsenders against their limits.
const capacityQuery = `SELECT (SELECT count(*) FROM pg_replication_slots)::int, current_setting('max_replication_slots')::int,
	(SELECT count(*) FROM pg_stat_replication)::int, current_setting('max_wal_senders')::int,
	(SELECT setting::int FROM pg_settings WHERE name = 'wal_sender_timeout')`

// originStatesQuery lists the replication origins holding one of the
// server's states (every database's), and how many there are. The
// pg_replication_origin_status grant that subscriptionsQuery needs.
const originStatesQuery = `SELECT coalesce(array_agg(coalesce(external_id, '') ORDER BY local_id), '{}'), current_setting('max_replication_slots')::int
FROM pg_replication_origin_status`

// oldestXactQuery finds the oldest transaction holding a transaction ID on
// the server, a session's or a prepared one, by the age of that ID. Its
// query text is not read: it can hold data.
const oldestXactQuery = `SELECT pid, gid, datname, usename, application_name, client_addr, state, secs, state_secs, xid_age FROM (
	SELECT a.pid, '' AS gid, coalesce(a.datname::text, '') AS datname, coalesce(a.usename::text, '') AS usename,
		coalesce(a.application_name, '') AS application_name, coalesce(host(a.client_addr), '') AS client_addr,
		coalesce(a.state, '') AS state, coalesce(extract(epoch FROM now() - a.xact_start), 0)::float8 AS secs,
		extract(epoch FROM now() - a.state_change)::float8 AS state_secs, age(a.backend_xid)::bigint AS xid_age
	FROM pg_stat_activity a WHERE a.backend_xid IS NOT NULL
  UNION ALL
	SELECT 0, p.gid, p.database::text, p.owner::text, '', '', 'prepared',
		extract(epoch FROM now() - p.prepared)::float8, NULL, age(p.transaction)::bigint
	FROM pg_prepared_xacts p
) x ORDER BY xid_age DESC LIMIT 1`

// barrierWaitsQuery finds the sessions waiting for every process to accept
// a ProcSignalBarrier, with pglogical's processes started before each
// statement (those it may wait for). Of the statement's text only its
// command and object are read ("DROP DATABASE scratch"), never more.
const barrierWaitsQuery = `SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''),
	coalesce(a.state, ''), coalesce(extract(epoch FROM now() - a.query_start), 0)::float8,
	coalesce(substring(a.query FROM '(?i)^\s*((?:drop|alter)\s+(?:database|tablespace)\s+(?:if\s+exists\s+)?(?:"[^"]{1,63}"|[^\s;]{1,63}))'), ''),
	coalesce(p.pids, '{}'), coalesce(p.types, '{}')
FROM pg_stat_activity a
LEFT JOIN LATERAL (SELECT array_agg(w.pid ORDER BY w.pid) AS pids, array_agg(w.backend_type::text ORDER BY w.pid) AS types
	FROM pg_stat_activity w WHERE w.backend_type LIKE 'pglogical %' AND w.backend_start <= a.query_start) p ON true
WHERE a.wait_event_type = 'IPC' AND a.wait_event = 'ProcSignalBarrier'
ORDER BY a.query_start`

// invalidDatabasesQuery: the databases an interrupted DROP DATABASE left
// invalid (PostgreSQL marks them before removing their files: 15.4, 14.9,
// 13.12, 12.16, 11.21 and later).
const invalidDatabasesQuery = `SELECT coalesce(array_agg(datname::text ORDER BY datname), '{}') FROM pg_database WHERE datconnlimit = -2`

// pglogicalNodeQuery reads the local pglogical node name (no row before
// create_node), a fingerprint of which tables are in which replication
// set, with their column lists and row filters (Snapshot.SetTables), one
// of the table copies' states (Snapshot.SyncStates), and one of the
// definitions of the tables in either (Snapshot.TableDefs): the count of
// the catalog's rows and the sum of their xmin, which an insert, an
// update or a delete changes.
//
// The definitions are the tables' rows in pg_class (their oid, schema,
// name and replica identity, not their xmin: a TRUNCATE or VACUUM FULL
// rewrites the row for a new relfilenode, and a workload that empties a
// table every few seconds would have the tables compared every cycle),
// pg_attribute (columns added, dropped, retyped, made NOT NULL or given a
// default), pg_index (a primary key or replica identity added or dropped)
// and pg_enum (a label added to the enum type of a column, of its array's
// elements, or under its domain, or of the domain's array's elements):
// the catalogs the schema_mismatch check reads. The
// tables are those of the node's replication sets (a provider's), those
// pglogical copied to it (a subscriber's), and those named by $1 (schemas)
// and $2 (names): the tables of its subscriptions' sets on their providers
// (Prober.WatchTables), which a subscriber may have without a sync status
// (added with synchronize_data := false, or after a DROP COLUMN: see
// Prober.WatchTables). Their rows are found by the array of the tables'
// oids, through the catalogs' indexes (pg_class's by a LATERAL lookup each:
// the planner scanned the whole of it otherwise), never a whole
// pg_attribute. Measured: ~0.2 ms more per node for 20 tables.
const pglogicalNodeQuery = `SELECT coalesce((SELECT n.node_name FROM pglogical.local_node l
	JOIN pglogical.node n ON n.node_id = l.node_id), ''),
	(SELECT count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text FROM pglogical.replication_set_table),
	(SELECT count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text FROM pglogical.local_sync_status),
	(WITH r AS (SELECT array_agg(rel) AS rels FROM (SELECT set_reloid AS rel FROM pglogical.replication_set_table
		UNION SELECT c.oid FROM (SELECT sync_nspname::text, sync_relname::text FROM pglogical.local_sync_status
				WHERE sync_relname IS NOT NULL
			UNION SELECT * FROM unnest($1::text[], $2::text[])) AS t(s, n)
		JOIN pg_namespace ns ON ns.nspname = t.s
		JOIN pg_class c ON c.relnamespace = ns.oid AND c.relname = t.n) AS u)
	SELECT (SELECT count(*)::text || ':' || coalesce(sum(hashtext(concat_ws('/', c.oid, c.relnamespace, c.relname, c.relreplident))::bigint), 0)::text
			FROM unnest((SELECT rels FROM r)::oid[]) AS u(rel)
			CROSS JOIN LATERAL (SELECT oid, relnamespace, relname, relreplident FROM pg_class WHERE oid = u.rel LIMIT 1) c)
		|| '/' || (SELECT count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text
			FROM pg_attribute WHERE attrelid = ANY ((SELECT rels FROM r)::oid[]) AND attnum > 0)
		|| '/' || (SELECT count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text
			FROM pg_index WHERE indrelid = ANY ((SELECT rels FROM r)::oid[]))
		|| '/' || (SELECT count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text
			FROM pg_enum WHERE enumtypid IN (SELECT x FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
				LEFT JOIN pg_type b ON b.oid = t.typbasetype, unnest(ARRAY[t.oid, t.typelem, b.oid, b.typelem]) AS x
				WHERE a.attrelid = ANY ((SELECT rels FROM r)::oid[]) AND a.attnum > 0))),
	` + ddlQueueSQL + `,
	CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_current_wal_insert_lsn()::text END`

// ddlQueueSQL fingerprints the end of pglogical.queue (Snapshot.DDLQueue):
// its size, and the count and sum of xmin of the rows on its last page,
// read by a TID range scan (PostgreSQL 14+): pglogical only appends to
// it, and never empties it (2ndQuadrant/pglogical#318), so a whole scan
// would grow with every DDL and TRUNCATE it ever queued.
const ddlQueueSQL = `(SELECT pg_relation_size('pglogical.queue')::text || ':' || count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text
		FROM pglogical.queue WHERE ctid >= (SELECT format('(%s,0)',
			greatest(pg_relation_size('pglogical.queue') / current_setting('block_size')::bigint - 1, 0))::tid))`

// pglogicalNodeQueryPG13 is pglogicalNodeQuery without the queue's
// fingerprint, which needs a TID range scan.
var pglogicalNodeQueryPG13 = strings.Replace(pglogicalNodeQuery, ddlQueueSQL, "''::text", 1)

// learnPglogicalQuery: pglogical's version ("" when not installed),
// whether this role may read the interfaces' connection strings, and
// whether pglogical is in shared_preload_libraries (set at a server start
// only, which ends the connection). That is read from pg_settings, which
// hides it from a role without pg_read_all_settings (false then), where
// current_setting would fail.
const learnPglogicalQuery = `SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'pglogical'), ''),
	coalesce((SELECT has_column_privilege(c.oid, 'if_dsn', 'SELECT') FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pglogical' AND c.relname = 'node_interface'), false),
	coalesce((SELECT setting ~ '(^|[\s,])"?pglogical"?($|[\s,])' FROM pg_settings WHERE name = 'shared_preload_libraries'), false)`

// subscriptionsQueryNoDSN is subscriptionsQuery for a role that may not
// read the interfaces' connection strings (which may hold a password).
var subscriptionsQueryNoDSN = strings.Replace(subscriptionsQuery, "coalesce(ni.if_dsn, '')", "''", 1)

// subscriptionsQuery lists subscriptions with status, origin and worker.
const subscriptionsQuery = `SELECT s.sub_name::text, s.sub_enabled, coalesce(st.status, ''),
	coalesce(n.node_name::text, ''), s.sub_slot_name::text, coalesce(s.sub_replication_sets, '{}'),
	o.roident IS NOT NULL, coalesce(os.remote_lsn::text, ''),
	coalesce((SELECT ls.sync_status::text FROM pglogical.local_sync_status ls
		WHERE ls.sync_subid = s.sub_id AND ls.sync_nspname IS NULL AND ls.sync_relname IS NULL LIMIT 1), ''),
	EXISTS (SELECT 1 FROM pg_stat_activity a
		WHERE 'pglogical apply ' || (SELECT oid FROM pg_database WHERE datname = current_database()) || ':' || s.sub_id
			IN (a.backend_type, a.application_name)),
	(SELECT oid FROM pg_database WHERE datname = current_database()) || ':' || s.sub_id,
	coalesce(ni.if_name::text, ''), coalesce(ni.if_dsn, ''),
	coalesce(extract(epoch FROM s.sub_apply_delay), 0)::float8,
	(SELECT extract(epoch FROM now() - max(a.backend_start))::float8 FROM pg_stat_activity a
		WHERE 'pglogical apply ' || (SELECT oid FROM pg_database WHERE datname = current_database()) || ':' || s.sub_id
			IN (a.backend_type, a.application_name)),
	coalesce(s.sub_forward_origins, '{}')
FROM pglogical.subscription s
LEFT JOIN pglogical.node n ON n.node_id = s.sub_origin
LEFT JOIN pglogical.node_interface ni ON ni.if_id = s.sub_origin_if
LEFT JOIN pglogical.show_subscription_status() st ON st.subscription_name = s.sub_name
LEFT JOIN pg_replication_origin o ON o.roname = s.sub_slot_name
LEFT JOIN pg_replication_origin_status os ON os.local_id = o.roident
ORDER BY s.sub_name`

// partitionsQuery lists, as a provider, the partitions that are in no
// replication set while a sibling partition (same parent) is: typically a
// partition created after the set was set up. pglogical replicates per
// partition, so its rows do not reach any subscriber.
const partitionsQuery = `SELECT n.nspname::text, c.relname::text, pn.nspname::text || '.' || pc.relname::text,
	string_agg(DISTINCT rs.set_name::text, ', ')
FROM pglogical.replication_set_table rst
JOIN pglogical.replication_set rs ON rs.set_id = rst.set_id
JOIN pg_inherits i ON i.inhrelid = rst.set_reloid
JOIN pg_class pc ON pc.oid = i.inhparent AND pc.relkind = 'p'
JOIN pg_namespace pn ON pn.oid = pc.relnamespace
JOIN pg_inherits sib ON sib.inhparent = i.inhparent
JOIN pg_class c ON c.oid = sib.inhrelid AND c.relkind = 'r'
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT EXISTS (SELECT 1 FROM pglogical.replication_set_table r2 WHERE r2.set_reloid = sib.inhrelid)
GROUP BY 1, 2, 3
ORDER BY 1, 2`

// tableSyncQuery lists the table-level sync rows that are not ready,
// whether the table is partitioned here (pglogical cannot copy one), and
// how far a copy into it has come (pglogical's sync worker COPYs the
// provider's rows in through a local connection).
const tableSyncQuery = `SELECT s.sub_name::text, ls.sync_nspname::text, ls.sync_relname::text, ls.sync_status::text,
	coalesce((SELECT c.relkind = 'p' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ls.sync_nspname AND c.relname = ls.sync_relname), false),
	cp.tuples, cp.bytes
FROM pglogical.local_sync_status ls
JOIN pglogical.subscription s ON s.sub_id = ls.sync_subid
` + copyProgressPG14 + `
WHERE ls.sync_relname IS NOT NULL AND ls.sync_status <> 'r'
ORDER BY 1, 2, 3`

// tableSyncQueryPG13 is tableSyncQuery for servers without pg_stat_progress_copy.
var tableSyncQueryPG13 = strings.Replace(tableSyncQuery, copyProgressPG14, copyProgressNone, 1)

// copyProgressPG14 reads pg_stat_progress_copy (PostgreSQL 14+; a role
// without pg_read_all_stats sees its own sessions' only, so none);
// copyProgressNone stands in for it on older servers.
const (
	copyProgressPG14 = `LEFT JOIN LATERAL (SELECT sum(p.tuples_processed)::bigint AS tuples, sum(p.bytes_processed)::bigint AS bytes
	FROM pg_stat_progress_copy p JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE p.command = 'COPY FROM' AND p.datname = current_database() AND n.nspname = ls.sync_nspname AND c.relname = ls.sync_relname
	HAVING count(*) > 0) cp ON true`
	copyProgressNone = `CROSS JOIN (SELECT NULL::bigint AS tuples, NULL::bigint AS bytes) cp`
)

// lockWaitsQuery lists the apply workers of this database that wait for a
// lock, with the sessions in their way: those blocking a worker, and those
// blocking them (a lock queue: an ALTER TABLE waiting behind a long
// transaction blocks the worker as much as the transaction does), four deep
// at most. The wait is read from pg_locks, which every role may read
// (pg_stat_activity hides wait events and backend types from roles without
// pg_read_all_stats; pglogical names its workers in application_name too);
// pg_blocking_pids is called for waiting workers only. pg_locks.waitstart
// exists from PostgreSQL 14 on; read through to_jsonb it is NULL before. A
// blocker's query text is not read: it can hold data.
const lockWaitsQuery = `WITH RECURSIVE waiting AS (
	SELECT a.pid, substr(coalesce(a.backend_type, a.application_name), length('pglogical apply ') + 1) AS worker,
		min(l.locktype) AS locktype, min((to_jsonb(l) ->> 'waitstart')::timestamptz) AS since
	FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
	WHERE coalesce(a.backend_type, a.application_name) LIKE 'pglogical apply %' AND a.datname = current_database()
	GROUP BY 1, 2
), w(worker, pid, depth) AS (
	SELECT waiting.pid, b.pid, 1 FROM waiting, unnest(pg_blocking_pids(waiting.pid)) b(pid)
  UNION
	SELECT w.worker, b.pid, w.depth + 1 FROM w, unnest(pg_blocking_pids(w.pid)) b(pid) WHERE w.depth < 4
)
SELECT x.worker, x.pid, x.locktype, extract(epoch FROM now() - x.since)::float8,
	coalesce((SELECT array_agg(DISTINCT n.nspname::text || '.' || c.relname::text)
		FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE l.pid = x.pid AND l.locktype = 'relation' AND c.relkind IN ('r', 'p')
			AND n.nspname NOT IN ('pg_catalog', 'pglogical')), '{}'),
	w.pid, w.depth, coalesce(b.usename::text, ''), coalesce(b.application_name, ''), coalesce(host(b.client_addr), ''),
	coalesce(b.state, ''), coalesce(b.backend_type, ''),
	EXISTS (SELECT 1 FROM pg_locks bl WHERE bl.pid = w.pid AND NOT bl.granted),
	extract(epoch FROM now() - b.xact_start)::float8, extract(epoch FROM now() - b.state_change)::float8
FROM w
JOIN waiting x ON x.pid = w.worker
LEFT JOIN pg_stat_activity b ON b.pid = w.pid
ORDER BY x.pid, w.depth, w.pid`
