// Package repair runs remedies for diagnosed pglogical failures as plans of
// idempotent steps, under a lock, after re-checking that they are still
// needed and safe, verifying the outcome and writing an audit trail. It never
// runs a step that can lose data: those remedies are written plans for a person.
package repair

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/shellword"
)

// Step is one database action of a plan.
type Step struct {
	// Node is the configured node the step runs on.
	Node string `json:"node"`
	// Action says what the step does, for people.
	Action string `json:"action"`
	SQL    string `json:"sql"`
	Args   []any  `json:"args"`
	// Done is a query returning true when the step's effect is already in
	// place (a re-run after a crash skips it).
	Done string `json:"-"`
	// Verify is a query that must return true after the step.
	Verify string `json:"-"`
	// WaitFor, when set, is a query polled until it returns true before the
	// step runs (bounded by the step timeout).
	WaitFor string `json:"-"`
}

// Plan is a remedy for one subscription (or one slot).
type Plan struct {
	Remedy       string `json:"remedy"`
	Subscription string `json:"subscription,omitempty"`
	Subscriber   string `json:"subscriber,omitempty"`
	Provider     string `json:"provider,omitempty"`
	Slot         string `json:"slot,omitempty"`
	Steps        []Step `json:"steps"`
	// Human plans are never executed by pglmon: Text tells a person what to do.
	Human bool   `json:"human,omitempty"`
	Text  string `json:"text,omitempty"`
	// WaitReplicating is set when the plan ends by waiting for `replicating`.
	WaitReplicating bool `json:"wait_replicating,omitempty"`
	// LSN is the position the plan moves the replication origin to
	// (rewind-origin), kept in the audit log so that a resumed attempt
	// moves it to the same one.
	LSN string `json:"lsn,omitempty"`
}

const (
	sqlDisable      = `SELECT pglogical.alter_subscription_disable($1, true)`
	sqlEnable       = `SELECT pglogical.alter_subscription_enable($1, true)`
	sqlIsDisabled   = `SELECT NOT sub_enabled FROM pglogical.subscription WHERE sub_name = $1`
	sqlIsEnabled    = `SELECT sub_enabled FROM pglogical.subscription WHERE sub_name = $1`
	sqlCreateOrigin = `SELECT pg_replication_origin_create($1)`
	sqlOriginExists = `SELECT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)`
	sqlDropSlot     = `SELECT pg_drop_replication_slot($1)`
	sqlSlotAbsent   = `SELECT NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`
	// sqlNever makes a step run every time (a restart must really disable).
	sqlNever = `SELECT false AND $1::text IS NULL`
)

// PlanFor builds the executable plan of remedy for a diagnosed subscription.
func PlanFor(remedy string, s diagnose.Subscription) (Plan, error) {
	p := Plan{Remedy: remedy, Subscription: s.Name, Subscriber: s.Subscriber, Provider: s.Provider, Slot: s.SlotName, WaitReplicating: true}
	disable := Step{Node: s.Subscriber, Action: "disable the subscription", SQL: sqlDisable, Args: []any{s.Name}, Done: sqlIsDisabled, Verify: sqlIsDisabled}
	enable := Step{Node: s.Subscriber, Action: "enable the subscription", SQL: sqlEnable, Args: []any{s.Name}, Done: sqlIsEnabled, Verify: sqlIsEnabled}
	switch remedy {
	case diagnose.RemedyRestart:
		disable.Done = sqlNever
		p.Steps = []Step{disable, enable}
	case diagnose.RemedyRecreateOrigin:
		if s.SlotName == "" {
			return Plan{}, fmt.Errorf("subscription %s: slot name unknown", s.Name)
		}
		p.Steps = []Step{disable,
			{Node: s.Subscriber, Action: "re-create the replication origin (named after the slot)", SQL: sqlCreateOrigin,
				Args: []any{s.SlotName}, Done: sqlOriginExists, Verify: sqlOriginExists},
			enable}
	case diagnose.RemedyEnable:
		p.Steps = []Step{enable}
	default:
		return Plan{}, fmt.Errorf("unknown remedy %q (known: restart, recreate-origin, enable, drop-orphan-slot, skip-transaction, rewind-origin)", remedy)
	}
	return p, nil
}

// Queries of skip-transaction; each takes (origin, LSN, apply worker).
const (
	sqlAdvanceOrigin = `SELECT pg_replication_origin_advance($1, $2::pg_lsn + 1) WHERE $3::text IS NOT NULL`
	sqlOriginPast    = `SELECT coalesce((SELECT s.remote_lsn > $2::pg_lsn FROM pg_replication_origin o
		JOIN pg_replication_origin_status s ON s.local_id = o.roident WHERE o.roname = $1), false) AND $3::text IS NOT NULL`
	sqlWorkerStopped = `SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pglogical apply ' || $3)
		AND $1::text IS NOT NULL AND $2::text IS NOT NULL`
)

// SkipTransactionPlan skips the provider transaction whose commit record is
// at lsn: with the subscription disabled and its apply worker gone, its
// replication origin is moved one byte past that commit, so the provider
// streams from the next transaction on (checked on pglogical 2.4: to the
// commit's own LSN replays it). The transaction's changes never reach the
// subscriber: only a person asks for this.
func SkipTransactionPlan(s diagnose.Subscription, lsn string) Plan {
	p := Plan{Remedy: diagnose.RemedySkipTransaction, Subscription: s.Name, Subscriber: s.Subscriber, Provider: s.Provider, Slot: s.SlotName, WaitReplicating: true}
	args := []any{s.SlotName, lsn, s.ApplyWorker}
	p.Steps = []Step{
		{Node: s.Subscriber, Action: "disable the subscription", SQL: sqlDisable, Args: []any{s.Name}, Done: sqlIsDisabled, Verify: sqlIsDisabled},
		{Node: s.Subscriber, Action: "move the replication origin just past the transaction's commit " + lsn, SQL: sqlAdvanceOrigin, Args: args,
			Done: sqlOriginPast, Verify: sqlOriginPast, WaitFor: sqlWorkerStopped},
		{Node: s.Subscriber, Action: "enable the subscription", SQL: sqlEnable, Args: []any{s.Name}, Done: sqlIsEnabled, Verify: sqlIsEnabled},
	}
	return p
}

// Queries of rewind-origin; each takes (origin, LSN, apply worker).
const (
	sqlRewindOrigin = `SELECT pg_replication_origin_advance($1, $2::pg_lsn) WHERE $3::text IS NOT NULL`
	sqlOriginAtMost = `SELECT coalesce((SELECT s.remote_lsn <= $2::pg_lsn FROM pg_replication_origin o
		JOIN pg_replication_origin_status s ON s.local_id = o.roident WHERE o.roname = $1), false) AND $3::text IS NOT NULL`
)

// RewindOriginPlan moves the replication origin of a provider_rewound
// subscription back to lsn, where its provider's slot confirmed: with the
// subscription disabled and its apply worker gone, the origin is set there
// (pg_replication_origin_advance goes backwards too), so that the provider
// streams every transaction committed after it, where it skipped those
// before its old end of WAL (measured with pglogical 2.4.2: the rows
// written while it was disabled, and after, arrived). The provider's
// logical decoding starts at the slot's confirmed position whatever is
// asked below it, so an lsn read before the disable is safe. done: an
// interrupted attempt found the subscription enabled again and no longer
// rewound: finished, nothing runs again (a second rewind would replay what
// was applied since and not yet confirmed to the slot: the provider never
// decodes again what its slot confirmed).
func RewindOriginPlan(s diagnose.Subscription, lsn string, done bool) Plan {
	p := Plan{Remedy: diagnose.RemedyRewindOrigin, Subscription: s.Name, Subscriber: s.Subscriber, Provider: s.Provider, Slot: s.SlotName, WaitReplicating: true, LSN: lsn}
	enable := Step{Node: s.Subscriber, Action: "enable the subscription", SQL: sqlEnable, Args: []any{s.Name}, Done: sqlIsEnabled, Verify: sqlIsEnabled}
	if done {
		p.Steps = []Step{enable}
		return p
	}
	args := []any{s.SlotName, lsn, s.ApplyWorker}
	p.Steps = []Step{
		{Node: s.Subscriber, Action: "disable the subscription", SQL: sqlDisable, Args: []any{s.Name}, Done: sqlIsDisabled, Verify: sqlIsDisabled},
		{Node: s.Subscriber, Action: "move the replication origin back to " + lsn + ", where the provider's slot confirmed", SQL: sqlRewindOrigin, Args: args,
			Done: sqlOriginAtMost, Verify: sqlOriginAtMost, WaitFor: sqlWorkerStopped},
		enable,
	}
	return p
}

// skipSteps is how to skip the transaction whose commit record is at lsn,
// by hand and through pglmon: an apply_error's way out when its change
// cannot be made to apply.
func skipSteps(s diagnose.Subscription, lsn string) string {
	return fmt.Sprintf(`    The error's CONTEXT names its commit record ("in commit before %[1]s"); the provider
    streams from the replication origin's position on, so move it just past that:
      -- on subscriber %[2]s
      SELECT pglogical.alter_subscription_disable(%[3]s, true);
      SELECT pg_replication_origin_advance(%[4]s, %[5]s::pg_lsn + 1);
      SELECT pglogical.alter_subscription_enable(%[3]s, true);
    which pglmon runs (with its lock, checks and audit) when asked:
      pglmon repair --config FILE --subscription %[6]s --remedy skip-transaction --lsn %[1]s`,
		lsn, s.Subscriber, pgident.Literal(s.Name), pgident.Literal(s.SlotName), pgident.Literal(lsn), shellword.Quote(s.Name))
}

// applyContextRE reads an apply error's CONTEXT: the operation, the table
// and the provider's transaction id.
var applyContextRE = regexp.MustCompile(`apply (INSERT|UPDATE) from remote relation (\S+) in commit before [0-9A-F]+/[0-9A-F]+, xid (\d+) `)

// conflictRows is option a) of the plan for an apply stopped at a conflict
// under pglogical.conflict_resolution = error: the rows the provider's
// transaction (the CONTEXT's xid) wrote, which the provider finds by their
// xmin while no later transaction changed them, and what to do on the
// subscriber. An INSERT's: take the subscriber's rows with those keys out
// of the way. An UPDATE's: the subscriber changed the row, and pglogical
// overwrites it only under another resolution (measured with pglogical
// 2.4.2: deleting it instead has the UPDATE skipped, "tuple not found",
// and the row missing).
func conflictRows(f diagnose.Finding, provider, subscriber, sub string) string {
	m := applyContextRE.FindStringSubmatch(f.Message)
	rows := ""
	if m != nil {
		rows = fmt.Sprintf(`
    The provider's transaction (xid %[3]s) wrote these rows of %[2]s, while no later
    transaction changed them:
      -- on provider %[1]s
      SELECT * FROM %[2]s WHERE xmin = '%[3]s'::xid;`, provider, pgident.RegclassOf(m[2]), m[3])
	}
	if m != nil && m[1] == "UPDATE" {
		return fmt.Sprintf(` a) the provider's rows win, this once.%[1]s
    The subscriber changed them, and pglogical overwrites a row written on the subscriber only
    under another resolution (deleting it instead would have the update skipped, "tuple not
    found", and the row missing): set pglogical.conflict_resolution = apply_remote on subscriber
    %[2]s (postgresql.conf or its RDS parameter group), reload, then:
      pglmon repair --config FILE --subscription %[3]s --remedy restart
    and once it replicates, set error again, reload, and restart the same way.`, rows, subscriber, sub)
	}
	return fmt.Sprintf(` a) take the subscriber's rows out of the way.%[1]s
    On subscriber %[2]s, delete or correct the rows with the keys the provider's change writes
    (keep what you need of them first), then:
      pglmon repair --config FILE --subscription %[3]s --remedy restart`, rows, subscriber, sub)
}

// CommitLSN is the LSN of the commit an apply_error's transaction fails
// in, read from its message ("" when not there).
func CommitLSN(f diagnose.Finding) string {
	if m := commitLSNRE.FindStringSubmatch(f.Message); m != nil {
		return m[1]
	}
	return ""
}

// DropOrphanSlotPlan drops an inactive slot on a provider. It frees retained
// WAL; a subscriber pglmon does not know about that still uses it loses
// changes, so it only runs with a person's explicit confirmation.
func DropOrphanSlotPlan(node, slot string) Plan {
	return Plan{Remedy: diagnose.RemedyDropOrphanSlot, Provider: node, Slot: slot, Steps: []Step{{
		Node: node, Action: "drop the inactive replication slot", SQL: sqlDropSlot, Args: []any{slot},
		Done: sqlSlotAbsent, Verify: sqlSlotAbsent,
	}}}
}

// commitLSNRE finds, in pglogical's apply error context, the end of the
// remote commit being applied.
var commitLSNRE = regexp.MustCompile(`in commit before ([0-9A-F]+/[0-9A-F]+)`)

// ResynchronizeAllSQL is the statement, run on the subscriber, that has
// pglogical copy every table of subscription sub again (each TRUNCATEd
// there first): the remedy of a failed first copy.
func ResynchronizeAllSQL(sub string) string {
	q := pgident.Literal(sub)
	return `SELECT pglogical.alter_subscription_resynchronize_table(` + q + `, format('%I.%I', sync_nspname, sync_relname)::regclass)
        FROM pglogical.local_sync_status
       WHERE sync_subid = (SELECT sub_id FROM pglogical.subscription WHERE sub_name = ` + q + `) AND sync_relname IS NOT NULL`
}

// decodingDeniedRE finds, in a provider_connection_failed message, a
// walsender that fails decoding a change for want of a privilege
// (serverlog.AnnotateDecoding), and the change's LSN.
var decodingDeniedRE = regexp.MustCompile(`fails decoding the change(?: at ([0-9A-F]+/[0-9A-F]+))? for the role`)

// deniedObjectRE finds what the role may not use in that message: kind
// and name, or the function's name.
var deniedObjectRE = regexp.MustCompile(`which may not (?:use (schema|table|sequence) (\S+)|execute (function) (\S+))`)

// withoutUser is a connection string (probe.SafeConninfo's keywords)
// without its user.
func withoutUser(conninfo string) string {
	var kept []string
	for _, kv := range strings.Fields(conninfo) {
		if !strings.HasPrefix(kv, "user=") {
			kept = append(kept, kv)
		}
	}
	return strings.Join(kept, " ")
}

// HumanPlan writes what a person would do about a finding pglmon must not
// fix alone, with what it costs.
func HumanPlan(f diagnose.Finding, s diagnose.Subscription) Plan {
	p := Plan{Remedy: "", Subscription: s.Name, Subscriber: s.Subscriber, Provider: s.Provider, Slot: s.SlotName, Human: true}
	q := pgident.Literal
	sh := shellword.Quote // a word of a pglmon or psql command line
	var b strings.Builder
	switch f.Code {
	case diagnose.CodeSlotMissing:
		fmt.Fprintf(&b, `The provider slot %[1]s is gone. Every change made on the provider since it was dropped
is lost to the subscriber; re-creating the slot resumes replication from now, not from then.
Choose one:
 a) keep the subscription, then resynchronise every table of its replication sets
    (each table is TRUNCATED on the subscriber and copied again):
      -- on provider %[2]s (it prints the slot's name and the LSN it starts at)
      SELECT pg_create_logical_replication_slot(%[3]s, 'pglogical_output');
      -- on subscriber %[4]s: disable it, and once its apply worker is gone move its origin to that
      -- LSN: after a restore or a failover the subscriber may have applied past the provider's WAL,
      -- and pglogical would skip what the provider commits until it gets there (provider_rewound)
      SELECT pglogical.alter_subscription_disable(%[5]s, true);
      SELECT pg_replication_origin_advance(%[3]s, '<the LSN it printed>');
      SELECT pglogical.alter_subscription_enable(%[5]s, true);
%[7]s
 b) re-create the subscription with a full copy:
      SELECT pglogical.alter_subscription_disable(%[5]s, true);  -- first, and wait until its apply worker is gone
      SELECT pglogical.drop_subscription(%[5]s);
      SELECT pglogical.create_subscription(%[5]s, %[8]s, replication_sets := %[9]s,
             synchronize_data := true);  -- existing rows must be removed first
Then check the data: pglmon verify --config FILE --subscription %[6]s`, s.SlotName, s.Provider, q(s.SlotName), s.Subscriber, q(s.Name), sh(s.Name),
			resyncEach(s, "      "), providerDSN(s), setArray(s))
	case diagnose.CodeSlotWALLost:
		fmt.Fprintf(&b, `The slot %[1]s lost WAL it needed (max_slot_wal_keep_size): the changes in it are gone.
Re-create the subscription with a full copy, or drop and re-create the slot and resynchronise every
table (each table is TRUNCATED on the subscriber and copied again):
  -- on subscriber %[2]s
  SELECT pglogical.alter_subscription_disable(%[3]s, true);
  -- on provider %[4]s
  SELECT pg_drop_replication_slot(%[5]s);
  SELECT pg_create_logical_replication_slot(%[5]s, 'pglogical_output');
  -- on subscriber %[2]s
  SELECT pglogical.alter_subscription_enable(%[3]s, true);
%[6]s
Consider raising max_slot_wal_keep_size, and alert on wal_retained_high before it happens again.`, s.SlotName, s.Subscriber, q(s.Name), s.Provider, q(s.SlotName),
			resyncEach(s, "  "))
	case diagnose.CodeInitFailed:
		fmt.Fprintf(&b, `The initial synchronisation of %[1]s stopped in a step that cannot resume.
Set the subscription up again (tables the copy touched may hold partial data: empty them first):
  -- on subscriber %[2]s
  SELECT pglogical.alter_subscription_disable(%[3]s, true);  -- first, and wait until its apply worker is gone
  SELECT pglogical.drop_subscription(%[3]s);
  TRUNCATE <each table of the replication sets>;
  SELECT pglogical.create_subscription(%[3]s, %[4]s, replication_sets := %[5]s, synchronize_data := true);`, s.Name, s.Subscriber, q(s.Name),
			providerDSN(s), setArray(s))
	case diagnose.CodeDataDivergence:
		fmt.Fprintf(&b, `pglmon verify found rows that differ between provider %[1]s and subscriber %[2]s:
%[4]s
Choose per table:
 a) resynchronise it; this TRUNCATES the table on the subscriber and copies it again
    (writes to it on the subscriber are lost; the table is empty meanwhile):
      -- on subscriber %[2]s
      SELECT pglogical.alter_subscription_resynchronize_table(%[3]s, 'schema.table');
 b) copy just the differing rows: this writes the psql script that does it (it reads them
    from the provider when it runs, deletes the extra keys on the subscriber and upserts
    the missing and different rows there, in one transaction); read it, then run it as it says:
      pglmon verify --config FILE --subscription %[5]s --table schema.table --copy-script rows.psql
    A table without primary key has its rows named by their contents: the script gives the
    subscriber as many copies of each listed row as the provider has.
A table whose replication set leaves out DELETE (an archive) or INSERT or UPDATE keeps rows
that differ as expected: resynchronising it undoes them; copy the differing rows instead.
Never resynchronise a table with a generated column pglogical replicates, which pglmon verify
marks "Do not resynchronise": pglogical 2.4.2's COPY of it is refused for ever, after the TRUNCATE.
Find out why first: writes made directly on the subscriber, conflict resolution
(pglogical.conflict_resolution), or an initial copy that did not complete.`, s.Provider, s.Subscriber, q(s.Name), f.Message, sh(s.Name))
	case diagnose.CodeTableCopyFailed:
		fmt.Fprintf(&b, `%[3]s.
Choose, on subscriber %[2]s:
 a) copy the table again: pglogical TRUNCATEs it on the subscriber first (rows written only there are
    lost; the table is empty meanwhile), so this copy does not meet rows already there:
      SELECT pglogical.alter_subscription_resynchronize_table(%[4]s, 'schema.table');
 b) keep the subscriber's rows and copy only the missing and different ones: this writes the
    psql script that does it (read it, then run it as it says):
      pglmon verify --config FILE --subscription %[5]s --table schema.table --copy-script rows.psql
The finding clears when pglogical next copies the table (a), or when a verification finds the table
equal (b): the daemon's scheduled one (verify.every), or pglmon verify run on the daemon's host with
its configuration.
A table that was replicating already when this copy started lost nothing to it (the COPY failed
whole): alter_subscription_synchronize copies again every table without a sync status, and
pglogical 2.4.2 deletes a table's sync status when a column of it is dropped on the subscriber.
Run b) first then: it finds such a table equal and writes nothing to copy.`, s.Provider, s.Subscriber, f.Message, q(s.Name), sh(s.Name))
	case diagnose.CodeInitialCopyFailed:
		fmt.Fprintf(&b, `%[3]s.
Choose, on subscriber %[2]s:
 a) copy every table of the subscription again: pglogical TRUNCATEs each on the subscriber first (rows
    written only there, such as those the failed COPY met, are lost; each table is empty meanwhile):
      %[4]s;
 b) keep the subscriber's rows and copy only what is missing: this writes the psql script
    that does it (read it, then run it as it says):
      pglmon verify --config FILE --subscription %[5]s --copy-script rows.psql
The finding clears when pglogical next copies the table whose COPY failed (a), when the subscription
initialises again (set up anew), or when a verification finds every table of it equal (b): the
daemon's scheduled one (verify.every), or pglmon verify run on the daemon's host with its
configuration.`, s.Provider, s.Subscriber, f.Message, ResynchronizeAllSQL(s.Name), sh(s.Name))
	case diagnose.CodeSubscriptionMissing:
		fmt.Fprintf(&b, `%[3]s.
Choose:
 a) it was taken apart for a major-version upgrade (pglmon upgrade prepare): put it back, without
    copying data, from the manifest prepare wrote:
      pglmon upgrade restore --config FILE --manifest <manifest>
 b) otherwise create it again as the configuration describes it:
      pglmon setup plan --config FILE     # shows the create_subscription apply would run
      pglmon setup apply --config FILE
    With synchronize_data (the default) pglogical copies every table of its sets again; its copy
    fails on rows already there and still marks the table ready (pglogical 2.4.2), so setup plan
    refuses until those tables are empty on subscriber %[2]s (TRUNCATE them). Or set
    synchronize_data: false for it, then resynchronise the tables that changed while it was gone
    (each TRUNCATED on the subscriber and copied again):
      SELECT pglogical.alter_subscription_resynchronize_table(%[4]s, 'schema.table');
    and compare: pglmon verify --config FILE --subscription %[5]s
    (one the configuration does not describe: add it to its subscriptions first, as it was:
    provider %[1]s, sets %[6]s; or create it by hand with pglogical.create_subscription)
 c) it was dropped on purpose: remove it from the configuration's subscriptions; one the
    configuration does not describe, which pglmon had seen:
      pglmon forget --config FILE --subscription %[5]s --subscriber %[7]s
A slot it left on provider %[1]s retains WAL until dropped (orphan_slot).`, s.Provider, s.Subscriber, f.Message, q(s.Name), sh(s.Name), strings.Join(s.ReplicationSets, ", "), sh(s.Subscriber))
	case diagnose.CodeSchemaMismatch:
		fmt.Fprintf(&b, `%[4]s.
Make the subscriber's tables match the provider's, on subscriber %[2]s: add each missing column with
the provider's type (psql -c '\d+ schema.table' on provider %[1]s shows it), e.g.
  ALTER TABLE schema.table ADD COLUMN column type;
create a missing table from the provider's definition (pg_dump --schema-only -t schema.table), and give
NOT NULL columns the provider does not send a default or drop the constraint.
%[7]sA generated column the
provider does not send crashes pglogical 2.4.2's apply worker, and the subscriber's server with it, at
the next change to the table: before any change arrives, have the provider send it (on provider %[1]s,
replication_set_remove_table, then replication_set_add_table with the column in columns := ARRAY[...]
and synchronize_data := false: pglogical then writes the provider's value), or make it a plain column
on subscriber %[2]s (rows arriving from then on get NULL in it):
  ALTER TABLE schema.table ALTER COLUMN column DROP EXPRESSION;
If the server already restarts in a loop, stop it (pg_ctl stop -m immediate: a fast shutdown may not
end a server in a crash loop), start it with pglogical left out of
shared_preload_libraries (RDS: a parameter group without it, and a reboot), disable the subscription
(UPDATE pglogical.subscription SET sub_enabled = false WHERE sub_name = %[3]s), fix the table, put
pglogical back, restart, and enable it. Then restart the
subscription (pglogical retries by itself, but backs off for minutes after repeated failures):
  pglmon repair --config FILE --subscription %[5]s --remedy restart
Next time, change replicated tables with pglogical.replicate_ddl_command on the provider, which runs
the DDL on the subscribers too, in order with the data:
%[6]s`, s.Provider, s.Subscriber, q(s.Name), f.Message, sh(s.Name), ddlCall(s), typeFix(s))
	case diagnose.CodeTableLeftSet:
		set := "'<set>'"
		if sets := tableSets(s); len(sets) > 0 {
			set = q(sets[0])
		}
		var put, copyAll, copyRows, forget strings.Builder
		var rels []drift.Relation
		for _, t := range s.TablesLeftSets {
			schema, name, _ := strings.Cut(t, ".")
			rels = append(rels, drift.Relation{Schema: schema, Name: name})
			rel := q(pgident.RegclassOf(t))
			fmt.Fprintf(&put, "      SELECT pglogical.replication_set_add_table(%s, %s, synchronize_data := false);\n", set, rel)
			fmt.Fprintf(&copyAll, "      SELECT pglogical.alter_subscription_resynchronize_table(%s, %s);\n", q(s.Name), rel)
			fmt.Fprintf(&copyRows, "      pglmon verify --config FILE --subscription %s --table %s --copy-script rows.psql\n", sh(s.Name), sh(pgident.RegclassOf(t)))
			fmt.Fprintf(&forget, "      pglmon forget --config FILE --subscription %s --subscriber %s --table %s\n", sh(s.Name), sh(s.Subscriber), sh(pgident.RegclassOf(t)))
		}
		fmt.Fprintf(&b, `%[3]s.
pglogical keeps the sync status of a table it copied, so putting such a table back copies nothing
(replication_set_add_table with synchronize_data := true and alter_subscription_add_replication_set
leave it as it is on the subscriber, measured with pglogical 2.4.2): the changes made while it was
out stay missing until copied. Choose per table:
 a) replicate it again: on provider %[1]s put it back in a set of the subscription
%[4]s    (or, if its set was taken from the subscription, give it back on subscriber %[2]s:
      SELECT pglogical.alter_subscription_add_replication_set(%[5]s, '<set>');)
    then copy what it missed, on subscriber %[2]s: the whole table (pglogical TRUNCATEs it there
    first; the table is empty meanwhile; never one with a generated column pglogical replicates,
    whose COPY pglogical 2.4.2 makes and PostgreSQL refuses, for ever)
%[6]s    or only the rows that differ (writes the psql script that does it; read it, then run it):
%[7]s    Then: pglmon verify --config FILE --subscription %[8]s
    With the table in the configuration's replication_sets, setup does it: pglmon setup plan
    asks for the table to be emptied on the subscriber, then pglmon setup apply puts it back
    and copies it.
 b) it was taken out on purpose: its copy on subscriber %[2]s no longer changes; drop it there once
    nothing needs it (the finding ends with it).
 c) it was taken out on purpose, and its copy stays as a table of the subscriber's own: make
    pglogical forget that it copied it, on subscriber %[2]s (pglogical deletes the same row
    itself when the table is dropped there; a table put in a set without its copy has none):
%[9]s;
    and pglmon forget that it saw it in the subscription's sets (the finding ends):
%[10]s    Put back in a set later, the table is copied again, onto the rows it holds (pglogical 2.4
    marks such a failed copy ready): empty it first, or put it back with
    synchronize_data := false and copy the rows that differ, as in a).`, s.Provider, s.Subscriber, f.Message, put.String(), q(s.Name), copyAll.String(), copyRows.String(), sh(s.Name), indent(drift.ForgetSQL(s.Name, rels), "      "), forget.String())
	case diagnose.CodeSequenceBehind:
		var send strings.Builder
		for _, sb := range s.SequencesBehind {
			fmt.Fprintf(&send, "  SELECT pglogical.synchronize_sequence(%s);\n", q(sb.Sequence))
		}
		fmt.Fprintf(&b, `%[3]s.
Send the provider's values now. Each goes to every subscription of the sequence's replication sets,
which sets it to the provider's value plus pglogical's margin (1000 or more); a subscriber that
hands out values of such a sequence itself (both sides taking writes) is set back to that value:
check that none does before you run it.
  -- on provider %[1]s
%[4]s
It reaches subscriber %[2]s as the subscription applies it; then check:
  pglmon verify --config FILE --subscription %[5]s
The finding goes at the next comparison, within a minute. pglmon setup apply sends such values
itself for the subscriptions it sets up, and pglmon upgrade restore after an upgrade.`, s.Provider, s.Subscriber, f.Message, strings.TrimSuffix(send.String(), "\n"), sh(s.Name))
	case diagnose.CodePartitionedTable:
		schema, name, _ := strings.Cut(f.Table, ".")
		set := "'<set>'" // the set that holds it
		if sets := tableSets(s); len(sets) == 1 {
			set = q(sets[0])
		}
		fmt.Fprintf(&b, `%[4]s.
On provider %[1]s, take the partitioned table out of the subscription's replication set
and put its partitions in (synchronize_data has subscriber %[2]s copy each one):
  SELECT pglogical.replication_set_remove_table(%[7]s, %[5]s);
  -- then each of its partitions: on provider %[1]s, this prints the statements to run there:
  SELECT format('SELECT pglogical.replication_set_add_table(%%L, %%L, true);', %[7]s, format('%%I.%%I', n.nspname, c.relname))
    FROM pg_partition_tree(%[5]s) p JOIN pg_class c ON c.oid = p.relid
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.isleaf AND p.level > 0;
(pglmon setup apply --config FILE adds the partitions when its replication_sets list the
table; the parent still has to be removed as above), then, on subscriber %[2]s, make pglogical
forget the parent's copy, which never ends (its sync worker stops; nothing is copied or emptied):
%[6]s
Not alter_subscription_synchronize(%[3]s, false): it also copies again each table of the
subscription without a sync status, onto the rows it holds, and pglogical 2.4.2 deletes a table's
sync status when a column of it is dropped on the subscriber.`, s.Provider, s.Subscriber, q(s.Name), f.Message, q(pgident.Regclass(schema, name)), forgetCopySQL(s.Name, f.Table), set)
	case diagnose.CodeTableCopyRefused:
		fmt.Fprintf(&b, `%[3]s.
Resynchronising it runs the same COPY again. Instead, on subscriber %[2]s, make pglogical forget the
table's copy: its sync worker stops, and the changes made on provider %[1]s reach the table from then
on (measured with pglogical 2.4.2):
%[4]s
and restart the subscription, whose apply worker may still take the table for one being copied
(and hold back its changes) when a sync worker was starting as the row went (measured):
  pglmon repair --config FILE --subscription %[5]s --remedy restart
Then copy the rows it lacks from provider %[1]s (the columns pglogical replicates; a generated column
is computed by subscriber %[2]s): read the script, then run it as printed:
  pglmon verify --config FILE --subscription %[5]s --table %[6]s --copy-script rows.psql
and compare again: pglmon verify --config FILE --subscription %[5]s --table %[6]s`,
			s.Provider, s.Subscriber, f.Message, forgetCopySQL(s.Name, f.Table), sh(s.Name), sh(pgident.RegclassOf(f.Table)))
	case diagnose.CodeApplyError:
		lsn := CommitLSN(f)
		if lsn == "" {
			lsn = "<LSN>"
		}
		if strings.Contains(f.Message, "pglogical.conflict_resolution is error") {
			fmt.Fprintf(&b, `%[3]s.
With pglogical.conflict_resolution = error, pglogical stops at a conflict instead of resolving
it, and applies the same change again at every start of the apply worker (5 s after a failure,
then every 180 s). Choose:
%[5]s
 b) skip that transaction: its changes never reach the subscriber.
%[6]s
    then: pglmon verify --config FILE --subscription %[4]s
 c) let pglogical resolve conflicts by itself: set pglogical.conflict_resolution on subscriber
    %[2]s to apply_remote (the provider's row wins; each resolution is logged, and the daemon
    counts them: apply_conflicts) in postgresql.conf or its RDS parameter group, reload, and
    restart as in a); then verify the tables.
A conflict comes from rows written on the subscriber to a replicated table: find what writes
there.`, s.Provider, s.Subscriber, f.Message, sh(s.Name), conflictRows(f, s.Provider, s.Subscriber, sh(s.Name)), skipSteps(s, lsn))
			break
		}
		if strings.Contains(f.Message, "through pglogical.replicate_ddl_command") {
			fmt.Fprintf(&b, `%[3]s.
pglogical runs DDL queued on the provider (pglogical.replicate_ddl_command, replication set
ddl_sql) on each subscriber, in the transaction that queued it, and runs it again at every start
of the apply worker (5 s after a failure, then every 180 s while it fails at once): the
subscription stays down until that statement succeeds on subscriber %[2]s. Choose:
 a) make the statement succeed there: create what it needs that only provider %[1]s has (the
    table or column it changes, as the provider had it), or take away what is in its way; then
    start the apply worker now rather than within 180 s:
      pglmon repair --config FILE --subscription %[4]s --remedy restart
 b) the subscriber has the change already (the statement was run there by hand too), or must
    not have it: skip the transaction that queued it. Whatever else that transaction wrote on
    the provider (replicate_ddl_command called inside a larger transaction) is skipped with it.
%[5]s
    then compare the definitions (pglmon status --config FILE --subscription %[4]s says where
    they differ) and the data: pglmon verify --config FILE --subscription %[4]s
Queue DDL that every subscriber of ddl_sql can run as the provider did: names with their schema,
on objects each of them has.`, s.Provider, s.Subscriber, f.Message, sh(s.Name), skipSteps(s, lsn))
			break
		}
		fmt.Fprintf(&b, `%[3]s.
pglogical applies the provider's transactions in commit order and retries the failing one at
every start, so the subscription stays down until that change can be applied. Choose:
 a) make the change applicable on subscriber %[2]s: fix what the error names (a constraint only
    the subscriber has, a row in the way of another unique index, a column too narrow, a trigger
    of the subscriber's that fires on replicated rows, set ENABLE ALWAYS or ENABLE REPLICA), then:
      pglmon repair --config FILE --subscription %[4]s --remedy restart
 b) skip that transaction: its changes never reach the subscriber (compare and copy the rows
    afterwards).
%[5]s
    then: pglmon verify --config FILE --subscription %[4]s`, s.Provider, s.Subscriber, f.Message, sh(s.Name), skipSteps(s, lsn))
	case diagnose.CodeApplyBlocked:
		pids := "<pid>"
		if w := s.LockWait; w != nil {
			var ps []string
			for _, bl := range w.Heads() {
				ps = append(ps, fmt.Sprint(bl.PID))
			}
			if len(ps) > 0 {
				pids = strings.Join(ps, ", ")
			}
		}
		fmt.Fprintf(&b, `%[3]s.
The subscription itself is fine: it goes on by itself the moment the lock is released; restarting
it would not help (the new worker waits for the same lock). On subscriber %[1]s:
 1) see what the session does (its query can hold data: this is for you, not for pglmon):
      SELECT pid, usename, application_name, client_addr, state, now() - xact_start AS in_transaction, query
      FROM pg_stat_activity WHERE pid IN (%[4]s);
 2) ask its owner to commit or roll back; or, if losing its open transaction is acceptable:
      SELECT pg_cancel_backend(pid);     -- cancels its current statement (enough for a long statement)
      SELECT pg_terminate_backend(pid);  -- ends the session, rolling back its transaction
 3) watch the subscription catch up: pglmon status --config FILE --subscription %[5]s
If its apply worker gives up after lock_timeout (the subscriber's log says "canceling statement due
to lock timeout"), it is started again every 5 s or so and seldom caught waiting: find the sessions
holding locks on the table the finding names, on subscriber %[1]s:
      SELECT l.pid, l.mode, a.usename, a.state, now() - a.xact_start AS in_transaction
      FROM pg_locks l JOIN pg_stat_activity a USING (pid)
      WHERE l.granted AND l.relation = 'schema.table'::regclass;
    and where lock_timeout is set for it (a database or every role; else postgresql.conf, or the
    RDS parameter group):
      SELECT coalesce(d.datname, '(every database)'), coalesce(r.rolname, '(every role)'), s.setconfig
      FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
      LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE array_to_string(s.setconfig, ',') LIKE '%%lock_timeout%%';
    A migration's own SET lock_timeout is fine; set for the database it reaches pglogical too.
To prevent it: set idle_in_transaction_session_timeout for the roles that write on the subscriber,
lock_timeout for migrations, and change replicated tables with pglogical.replicate_ddl_command on
the provider:
%[6]s`, s.Subscriber, s.Name, f.Message, pids, sh(s.Name), ddlCall(s))
	case diagnose.CodeSlotInUse:
		fmt.Fprintf(&b, `%[4]s.
Only one process can stream from a slot; restarting %[5]s would not help (its new worker fails the
same way). On provider %[1]s, see who holds it:
  SELECT s.active_pid, r.application_name, r.client_addr, r.backend_start, r.reply_time
  FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
  WHERE s.slot_name = %[6]s;
 a) a copy of subscriber %[2]s (restored snapshot, promoted replica, cloned volume) replicating
    with the same subscription: on that copy, stop it WITHOUT dropping it (drop_subscription
    would drop the slot on the provider, and %[5]s with it):
      SELECT pglogical.alter_subscription_disable(%[3]s, true);
 b) another tool (pg_recvlogical, a CDC connector): stop it, and give it a slot of its own.
 c) a walsender whose consumer is gone (no reply for a long time): end it on provider %[1]s:
      SELECT pg_terminate_backend(<active_pid>);
%[5]s takes its slot back when its apply worker next starts: pglogical may wait up to 180 s;
once the slot is free (active_pid empty above), skip the wait with
  pglmon repair --config FILE --subscription %[7]s --remedy restart
The daemon makes that restart itself once %[5]s is down for down_grace.
(watch: pglmon status --config FILE --subscription %[7]s).
Whatever the other process confirmed while it held the slot was not applied on %[2]s:
  pglmon verify --config FILE --subscription %[7]s
and resynchronise the tables that differ (pglmon repair prints how for data_divergence).`, s.Provider, s.Subscriber, q(s.Name), f.Message, s.Name, q(s.SlotName), sh(s.Name))
	case diagnose.CodeProviderConnectFailed:
		if strings.Contains(f.Message, " refuses to stream to it: ") {
			fmt.Fprintf(&b, `%[2]s
The connection string is right: the provider accepts the connection, then refuses to start
streaming. Give the role what the error names, on the provider (above), then start the
worker at once rather than at pglogical's next try (it backs off up to 180 s):
  pglmon repair --config FILE --subscription %[1]s --remedy restart
Nothing is lost meanwhile: the provider's slot keeps the changes (watch its retained WAL).`,
				sh(s.Name), f.Message)
			break
		}
		iface := s.ProviderInterface
		if iface == "" {
			iface = "<interface>"
		}
		conninfo := s.ProviderConninfo
		if conninfo == "" {
			conninfo = "host=... port=... dbname=... user=..."
		}
		if m := decodingDeniedRE.FindStringSubmatch(f.Message); m != nil {
			lsn := m[1]
			if lsn == "" {
				lsn = "<the LSN of the change>"
			}
			role := "<role>"
			if s.ProviderRole != "" {
				role = pgident.Ident(s.ProviderRole)
			}
			// What the role may not use (schema pglogical when the
			// message does not say).
			kind, name := "schema", "pglogical"
			if d := deniedObjectRE.FindStringSubmatch(f.Message); d != nil {
				kind, name = d[1]+d[3], d[2]+d[4]
			}
			var a, owner string
			switch kind {
			case "function":
				a = fmt.Sprintf(` a) grant it on provider %s, for the changes made from now on (b is needed whatever it does):
      GRANT EXECUTE ON FUNCTION %s TO %s;
 b) the changes made while it could not execute the function fail for it for ever, also after the
    grant (measured with pglogical 2.4.2, for a role that never could as well): its walsender reads
    the function's privileges as they were then. Let a role that could execute it then decode them,
    through an interface of its own:
      -- on provider %s: who owns the function (or use a superuser; on RDS, the master user)
`, s.Provider, name, role, s.Provider)
				owner = "SELECT DISTINCT proowner::regrole FROM pg_proc WHERE proname = " + q(name) + ";"
			default:
				grant := "      -- the privilege the error names, on " + kind + " " + name + ", to " + role
				owner = "SELECT relowner::regrole FROM pg_class WHERE oid = " + q(name) + "::regclass;"
				if kind == "schema" {
					grant = "      GRANT USAGE ON SCHEMA " + pgident.Ident(name) + " TO " + role + ";"
					owner = "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = " + q(name) + ";"
				}
				a = fmt.Sprintf(` a) the role lacks the privilege now: grant it on provider %s:
%s
    then start the worker at once:
      pglmon repair --config FILE --subscription %s --remedy restart
 b) it has it again, but lacked it when the changes were made (revoked, then granted): its
    walsender reads the catalogs as they were then, so those changes fail for it for ever.
    Let a role that could use the %s then decode them, through an interface of its own:
      -- on provider %s: who owns the %s (or use a superuser; on RDS, the master user)
`, s.Provider, grant, sh(s.Name), kind, s.Provider, kind)
			}
			fmt.Fprintf(&b, `%[1]s.
%[11]s      %[12]s
      -- on subscriber %[4]s; the password is stored in the catalog (superusers can read it)
      SELECT pglogical.alter_node_add_interface(%[5]s, %[6]s, '%[7]s user=<owner> password=<its password>');
      SELECT pglogical.alter_subscription_interface(%[8]s, %[6]s);
    then start its worker at once (after failures pglogical starts it only every 180 s):
      pglmon repair --config FILE --subscription %[3]s --remedy restart
    Once it replicates and its origin_remote_lsn (pglmon status --output json) is past %[9]s,
    move it back, and take that interface out:
      SELECT pglogical.alter_subscription_interface(%[8]s, %[10]s);
      SELECT pglogical.alter_node_drop_interface(%[5]s, %[6]s);
Nothing is lost meanwhile: the provider's slot keeps the changes (watch its retained WAL).`,
				f.Message, s.Provider, sh(s.Name), s.Subscriber, q(s.ProviderNode), q(iface+"_owner"),
				strings.ReplaceAll(withoutUser(conninfo), "'", "''"), q(s.Name), lsn, q(iface), a, owner)
			break
		}
		fmt.Fprintf(&b, `%[4]s.
Fix the cause on the provider or on the way to it (pg_hba.conf, the role, DNS, security group),
or give the subscription a corrected connection string. It lives on subscriber %[2]s, in
pglogical.node_interface (interface %[5]s of provider node %[6]s); pglogical cannot edit one, so
add another and move the subscription to it:
  -- on subscriber %[2]s; the password is stored in the catalog (superusers can read it)
  SELECT pglogical.alter_node_add_interface(%[7]s, %[8]s, '%[9]s password=<current password>');
  SELECT pglogical.alter_subscription_interface(%[3]s, %[8]s);  -- the worker restarts on it
  -- once it replicates (pglmon status --config FILE --subscription %[1]s), take the old one out:
  SELECT pglogical.alter_node_drop_interface(%[7]s, %[10]s);
After fixing it on the provider's side instead, skip pglogical's backoff (up to 180 s) with:
  pglmon repair --config FILE --subscription %[1]s --remedy restart
Nothing is lost meanwhile: the provider's slot keeps the changes (watch its retained WAL).
A password rotation must update this connection string too; the rotation job can run the same calls.`,
			sh(s.Name), s.Subscriber, q(s.Name), f.Message, iface, s.ProviderNode, q(s.ProviderNode), q(iface+"_new"), strings.ReplaceAll(conninfo, "'", "''"), q(iface))
	case diagnose.CodeNotStreaming:
		conninfo := s.ProviderConninfo
		if conninfo == "" {
			conninfo = "host=... port=... dbname=... user=..."
		}
		fmt.Fprintf(&b, `%[4]s.
pglogical counts a subscription as replicating while its apply worker runs, also while that
worker waits for a connection that never completes; restarting it waits the same way. Find
where the connection stops, from the subscriber's host (%[2]s), with the connection string
of its interface:
  psql %[5]s -c 'SELECT 1'
 - it times out: packets are dropped on the way. Check the provider's security group or
   firewall (the subscriber's address must reach the port), network ACLs and routes, and
   whether the host name resolves to the provider's current address on the subscriber
   (a replaced instance or endpoint keeps its name, not its address).
 - it answers: the apply worker connects elsewhere or with other settings; compare the
   interface's connection string with the provider's address (pglogical.node_interface on
   %[2]s) and see the subscriber's log for the worker's errors.
Nothing is lost meanwhile: provider %[1]s keeps the changes in the slot (watch its retained
WAL). Once the path is open, pglogical connects at its next attempt, or at once with:
  pglmon repair --config FILE --subscription %[3]s --remedy restart`, s.Provider, s.Subscriber, sh(s.Name), f.Message, sh(conninfo+" connect_timeout=5"))
	case diagnose.CodeProviderElsewhere:
		conninfo := s.ProviderConninfo
		if conninfo == "" {
			conninfo = "host=... port=... dbname=... user=..."
		}
		fmt.Fprintf(&b, `%[4]s.
Tell which server the subscription streams from: from the subscriber's host (%[2]s), ask the
server of its interface's connection string, then the one of pglmon's dsn for %[1]s, who they
are and whether they hold the slot:
  psql %[5]s -c "SELECT inet_server_addr(), system_identifier, pg_is_in_recovery() FROM pg_control_system(); SELECT slot_name, active FROM pg_replication_slots WHERE slot_name = %[6]s"
The first holds the slot, active. Then:
 a) pglmon's dsn for %[1]s is not that server (a replica, a reader endpoint, another database):
    point it at the server and database the subscription streams from, then
      pglmon check-config --config FILE --connect
    Nothing changes on the databases.
 b) the subscription follows an old server, and the writes now go to %[1]s: nothing made on
    %[1]s since reaches %[2]s. Its position (its origin's remote_lsn) is one in the old server's
    WAL, meaningless on %[1]s, so moving the subscription (alter_subscription_interface) would
    skip or repeat changes: create it again against %[1]s and copy its tables. On %[2]s:
      SELECT pglogical.drop_subscription(%[3]s);  -- drops its slot on the old server too
    then empty its tables there and create it with synchronize_data (with the subscription in
    pglmon's configuration: pglmon setup plan, then pglmon setup apply), and compare:
      pglmon verify --config FILE --subscription %[7]s
    Until then the old server keeps WAL for the slot, if it still runs.`, s.Provider, s.Subscriber, q(s.Name), f.Message, sh(conninfo+" connect_timeout=5"), q(s.SlotName), sh(s.Name))
	case diagnose.CodeForwardLoop:
		conninfo := s.ProviderConninfo
		if conninfo == "" {
			conninfo = "host=... port=... dbname=... user=..."
		}
		sets := make([]string, len(s.ReplicationSets))
		for i, rs := range s.ReplicationSets {
			sets[i] = q(rs)
		}
		fmt.Fprintf(&b, `%[3]s.
pglogical cannot change a subscription's forward_origins: create %[4]s again with
forward_origins '{}'. On subscriber %[2]s (drop_subscription drops its slot on %[1]s too; the
connection string is the interface's, without its password: add it if the server asks for one):
  SELECT pglogical.drop_subscription(%[5]s);
  SELECT pglogical.create_subscription(subscription_name := %[5]s, provider_dsn := %[6]s, replication_sets := ARRAY[%[7]s]::text[], synchronize_data := false, forward_origins := '{}');
Do the same for every subscription the finding names on the way that forwards, if it is said
there too. Changes made on %[1]s between the drop and the new subscription's start are not sent
to %[2]s (the new slot starts at its creation): stop writes there meanwhile, or compare afterwards
and copy what differs:
  pglmon verify --config FILE --subscription %[8]s
Rows the round trip set back to an older value look like any other row to pglmon: check the
tables written while it ran.`, s.Provider, s.Subscriber, f.Message, s.Name, q(s.Name), q(conninfo), strings.Join(sets, ", "), sh(s.Name))
	case diagnose.CodeWorkerSlotsExhausted:
		fmt.Fprintf(&b, `%[2]s.
max_worker_processes takes effect at a server start only. On subscriber %[1]s:
  self-managed:  ALTER SYSTEM SET max_worker_processes = <more>;  then restart PostgreSQL
                 (systemctl restart postgresql@15-main, or pg_ctl restart)
  RDS:           aws rds modify-db-parameter-group --db-parameter-group-name <group> \
                   --parameters ParameterName=max_worker_processes,ParameterValue=<more>,ApplyMethod=pending-reboot
                 aws rds reboot-db-instance --db-instance-identifier <instance>
Size it: 1 for pglogical's supervisor, 1 manager per database with pglogical, 1 per subscription,
1 per table copied at once (resynchronisations), PostgreSQL's logical replication launcher, any
other extension's workers, plus max_parallel_workers for parallel queries.
While the subscription is down its provider's slot keeps the changes (watch its retained WAL);
it replicates again once the server is up with the new setting (pglmon status --config FILE).`, s.Subscriber, f.Message)
	case diagnose.CodeOriginSlotsExhausted:
		fmt.Fprintf(&b, `%[2]s.
max_replication_slots sizes the server's replication origin states as well as its slots, and
takes effect at a server start only. On subscriber %[1]s, which origins hold the states, and whose:
  SELECT o.local_id, o.external_id, s.sub_name, s.sub_enabled
    FROM pg_replication_origin_status o LEFT JOIN pglogical.subscription s ON s.sub_slot_name = o.external_id ORDER BY 1;
(an origin of no subscription there may be another database's: run it in each; pg_<number> are
PostgreSQL's own subscriptions'; <slot>_<8 hex digits> a pglogical table copy under way.) Then either
  self-managed:  ALTER SYSTEM SET max_replication_slots = <more>;  then restart PostgreSQL
                 (systemctl restart postgresql@15-main, or pg_ctl restart)
  RDS:           aws rds modify-db-parameter-group --db-parameter-group-name <group> \
                   --parameters ParameterName=max_replication_slots,ParameterValue=<more>,ApplyMethod=pending-reboot
                 aws rds reboot-db-instance --db-instance-identifier <instance>
Size it: one state per subscription on the server (disabled ones hold theirs) and one per table
copied at once; the same setting also bounds, separately, the server's slots if it is a provider
too. Never set it below the states held: PostgreSQL then does not start ("could not find free replication state,
increase max_replication_slots", measured).
Or, without a restart, drop an origin nothing uses (a subscription dropped without its origin, a
tool no longer run; never a subscription's own, whose apply worker then stops: origin_missing):
  SELECT pg_replication_origin_drop('<origin>');
pglogical starts the failing worker again by itself: once a state is free, it takes it (watch
pglmon status --config FILE).`, s.Subscriber, f.Message)
	case diagnose.CodeTableSyncError:
		fmt.Fprintf(&b, `%[3]s.
Remove the cause the error names: pglogical's sync worker tries again by itself, within a
second, and copies the table once it can (watch: pglmon status --config FILE --subscription %[4]s).
Resynchronising the table runs the same copy, which fails the same way. Causes to look for:
 - permission denied, on provider %[1]s: the role of the subscription's provider connection may
   not read the table (GRANT SELECT ON <table> TO <role>) or use its schema (GRANT USAGE ON
   SCHEMA <schema> TO <role>); a table created after the role's grants has none;
 - the provider's limits: each copy takes a replication slot and a walsender of its own besides
   the subscription's (all replication slots are in use, max_wal_senders: replication_capacity_low),
   and a connection (too many connections);
 - the table, or a column the provider sends, missing on subscriber %[2]s (schema_mismatch).
Once the table is ready, compare it:
  pglmon verify --config FILE --subscription %[4]s --table %[5]s`, s.Provider, s.Subscriber, f.Message, sh(s.Name), sh(pgident.RegclassOf(f.Table)))
	case diagnose.CodeCopyNotPermitted:
		fmt.Fprintf(&b, `%[2]s.
Nothing is lost now: the changes of those tables replicate. Run the GRANTs on provider %[1]s
before the next copy of one is needed (a resynchronisation after verify finds it differing, a
table added again, an upgrade's restore); then check:
  pglmon status --config FILE --subscription %[3]s
The daemon compares again within a minute.`, s.Provider, f.Message, sh(s.Name))
	case diagnose.CodeRowFilterNotPermitted:
		fmt.Fprintf(&b, `%[2]s.
Run the GRANTs on provider %[1]s now, before the next change to one of those tables (or grant
EXECUTE to a role that the provider connection's role is a member of). Then check:
  pglmon status --config FILE --subscription %[3]s
The daemon compares again within a minute. If a change was made already, %[4]s is down and
its finding (provider_connection_failed) names the change; its plan (pglmon repair --subscription
%[3]s) is the way out: the GRANT does not help that change.`, s.Provider, f.Message, sh(s.Name), s.Name)
	case diagnose.CodeTableSyncStalled:
		fmt.Fprintf(&b, `A table of %[1]s has not finished its initial copy. Look in the subscriber's log for the
table-sync worker's error (often a missing column, a constraint, or a lock). Once fixed,
resynchronise it; this TRUNCATES the table on the subscriber and copies it again:
  -- on subscriber %[2]s
  SELECT pglogical.alter_subscription_resynchronize_table(%[3]s, 'schema.table');`, s.Name, s.Subscriber, q(s.Name))
	case diagnose.CodeProviderRewound:
		if s.Rewound == nil {
			// Held by the daemon: over, what was skipped stays lost.
			fmt.Fprintf(&b, `Provider %[1]s was behind what subscriber %[2]s had applied from it: it was restored from a backup or
snapshot, or failed over to a standby that had not received the last WAL. %[2]s holds changes %[1]s
lost, and pglogical skipped, silently, what %[1]s committed until its WAL passed what %[2]s had applied.
`, s.Provider, s.Subscriber)
		} else {
			fmt.Fprintf(&b, `Provider %[1]s is behind what subscriber %[2]s applied from it: it was restored from a backup or
snapshot, or failed over to a standby that had not received the last WAL. %[2]s holds changes %[1]s
lost, and pglogical skips, silently, what %[1]s commits until its WAL passes what %[2]s applied.
`, s.Provider, s.Subscriber)
			fmt.Fprintf(&b, `Decide first which side is right:
 a) follow the restored provider: stop the skipping now (its origin goes back to where the
    provider's slot confirmed; what was skipped until then stays lost):
      pglmon repair --config FILE --subscription %[1]s --remedy rewind-origin
 b) keep the subscriber's data (it may hold the only copy of what the provider lost): disable
    the subscription, so nothing more of the provider's is applied over it, and decide later:
      -- on subscriber %[2]s
      SELECT pglogical.alter_subscription_disable(%[3]s, true);
`, sh(s.Name), s.Subscriber, q(s.Name))
		}
		fmt.Fprintf(&b, `Then compare the tables; the rows only the subscriber holds are what the provider lost, and
the rows it lacks were skipped:
  pglmon verify --config FILE --subscription %[1]s
  pglmon verify --config FILE --subscription %[1]s --copy-script rows.psql   (copies the provider's rows over: read it first)`, sh(s.Name))
	case diagnose.CodeSubscriberRewound:
		fmt.Fprintf(&b, `Subscriber %[2]s lost changes it had applied from provider %[1]s (restored from a backup or snapshot,
or failed over to a standby short of its WAL), and %[1]s's slot had confirmed them, so %[1]s never
sends them again: pglogical went on from the slot. Nothing pglogical does brings them back.
Compare the tables and copy what differs from the provider (rows changed on %[1]s in that span are
missing or out of date on %[2]s; rows written on %[2]s since its restore are yours to judge):
`, s.Provider, s.Subscriber)
		verifyOrResync(&b, s)
	case diagnose.CodeSlotAdvanced:
		fmt.Fprintf(&b, `Provider %[1]s's slot %[5]s moved on while subscription %[3]s could not consume it
(pg_replication_slot_advance, or pg_logical_slot_get_changes): the changes %[1]s committed in between
never reach subscriber %[2]s. Nothing pglogical does brings them back. To free the WAL a slot holds
without losing changes, get the subscription streaming, or drop the subscription (and copy its
tables again) instead. Compare the tables and copy what differs from the provider:
`, s.Provider, s.Subscriber, sh(s.Name), q(s.Name), f.Slot)
		verifyOrResync(&b, s)
	case diagnose.CodeHeartbeatsLost:
		fmt.Fprintf(&b, `The heartbeats pglmon writes on provider %[1]s differ between %[1]s and subscriber %[2]s where
both keep them (the message says which and when): heartbeats %[1]s wrote that %[2]s lacks, while it holds later
ones, are transactions pglogical skipped or %[2]s lost (a restore, a failover short of WAL, a slot
advanced); heartbeats %[2]s holds that %[1]s no longer has are transactions %[1]s lost after
%[2]s applied them. Your tables lost changes of the same span. Nothing pglogical does brings them
back. Compare the tables: rows %[2]s lacks were lost to it, rows only %[2]s holds may be what
%[1]s lost (decide which side is right before copying):
`, s.Provider, s.Subscriber)
		verifyOrResync(&b, s)
		if len(f.Subscriptions) > 0 {
			fmt.Fprintf(&b, `
The other subscriptions from %s on %s do not carry the heartbeats, so pglmon cannot tell whether
they lost the same span; unless only the slot of %s was advanced, they did. Verify them too:
`, s.Provider, s.Subscriber, s.Name)
			for _, o := range f.Subscriptions {
				fmt.Fprintf(&b, "  pglmon verify --config FILE --subscription %s\n", shellword.Quote(o))
			}
		}
	case diagnose.CodeProviderTimelineChanged:
		fmt.Fprintf(&b, `Provider %[1]s went on to a new timeline (a failover or switchover, or a point-in-time restore), and
pglmon could not tell whether subscriber %[2]s had applied changes %[1]s lost with the old one (the
message says why). If it had, pglogical skipped what %[1]s committed until its WAL passed them.
Compare the tables; rows only the subscriber holds are what the provider lost, and rows it lacks
were skipped:
  pglmon verify --config FILE --subscription %[3]s
  pglmon verify --config FILE --subscription %[3]s --copy-script rows.psql   (copies the provider's rows over: read it first)
A verification that finds every table equal puts this finding behind.`, s.Provider, s.Subscriber, sh(s.Name))
	default:
		fmt.Fprintf(&b, "%s: %s\nNo pglmon remedy applies; read the message and the server logs.", f.Code, f.Message)
	}
	p.Text = b.String()
	return p
}

// Render prints a plan with its SQL for people.
func (p Plan) Render() string {
	var b strings.Builder
	if p.Human {
		fmt.Fprintf(&b, "This needs a person; pglmon will not run it.\n%s\n", p.Text)
		return b.String()
	}
	what := p.Subscription
	if what == "" {
		what = "slot " + p.Slot
	}
	fmt.Fprintf(&b, "Plan %s for %s:\n", p.Remedy, what)
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "  %d. on %s: %s\n     %s;  -- $1 = %v\n", i+1, s.Node, s.Action, s.SQL, s.Args[0])
	}
	if p.WaitReplicating {
		b.WriteString("  then wait until the subscription is replicating and its provider slot is active.\n")
	}
	return b.String()
}

// setArray is the subscription's replication sets as an SQL array, for
// create_subscription; a placeholder when they are not known.
func setArray(s diagnose.Subscription) string {
	if len(s.ReplicationSets) == 0 {
		return "ARRAY[<its sets>]"
	}
	items := make([]string, len(s.ReplicationSets))
	for i, set := range s.ReplicationSets {
		items[i] = pgident.Literal(set)
	}
	return "ARRAY[" + strings.Join(items, ", ") + "]"
}

// providerDSN is the connection string the subscription connects to its
// provider with (without its password), for create_subscription.
func providerDSN(s diagnose.Subscription) string {
	if s.ProviderConninfo == "" {
		return "'<provider dsn>'"
	}
	return pgident.Literal(s.ProviderConninfo) + " /* add its password if it needs one */"
}

// forgetCopySQL is the DELETE, indented for a plan, that makes pglogical
// forget subscription sub's copy of table (schema.table) on the subscriber,
// whatever its sync status: its sync worker stops.
func forgetCopySQL(sub, table string) string {
	schema, name, _ := strings.Cut(table, ".")
	q := pgident.Literal
	return `  DELETE FROM pglogical.local_sync_status s USING pglogical.subscription sub
  WHERE sub.sub_id = s.sync_subid AND sub.sub_name = ` + q(sub) + `
    AND s.sync_nspname = ` + q(schema) + ` AND s.sync_relname = ` + q(name) + `;`
}

// tableSets are the subscription's sets that can hold a table of rows: not
// the heartbeat's (inserts only), pglogical's DDL queue or its insert-only
// default.
func tableSets(s diagnose.Subscription) []string {
	var out []string
	for _, rs := range s.ReplicationSets {
		if rs != "pglmon_heartbeat" && rs != "ddl_sql" && rs != "default_insert_only" {
			out = append(out, rs)
		}
	}
	return out
}

// resyncEach is the query, run on the provider, that prints the
// resynchronisation of each table of the subscription's sets, to run on
// the subscriber; each line indented by indent.
func resyncEach(s diagnose.Subscription, indent string) string {
	if len(s.ReplicationSets) == 0 {
		return indent + "SELECT pglogical.alter_subscription_resynchronize_table(" + pgident.Literal(s.Name) + ", 'schema.table');  -- per table"
	}
	sets := make([]string, len(s.ReplicationSets))
	for i, set := range s.ReplicationSets {
		sets[i] = pgident.Literal(set)
	}
	return indent + "-- then each table of its sets: on provider " + s.Provider + ", this prints the statements to run on subscriber " + s.Subscriber + ":\n" +
		indent + "SELECT format('SELECT pglogical.alter_subscription_resynchronize_table(%L, %L);', " + pgident.Literal(s.Name) + ", format('%I.%I', n.nspname, c.relname))\n" +
		indent + "  FROM pglogical.replication_set_table rt JOIN pglogical.replication_set rs ON rs.set_id = rt.set_id\n" +
		indent + "  JOIN pg_class c ON c.oid = rt.set_reloid JOIN pg_namespace n ON n.oid = c.relnamespace\n" +
		indent + "  WHERE rs.set_nodeid = (SELECT node_id FROM pglogical.local_node) AND rs.set_name IN (" + strings.Join(sets, ", ") + ") ORDER BY 1;"
}

// indent puts prefix before each line of text.
func indent(text, prefix string) string {
	return prefix + strings.ReplaceAll(text, "\n", "\n"+prefix)
}

// ddlCall is the replicate_ddl_command call that reaches subscription s:
// the DDL is queued for the sets named (by default ddl_sql, which
// create_subscription gives a subscription unless told its sets) and
// reaches the subscriptions that have one of them; to the others it
// never comes, while it ran on the provider (measured on pglogical 2.4.2).
// typeFix gives each column of schema_mismatch whose type differs the
// provider's type on the subscriber.
func typeFix(s diagnose.Subscription) string {
	var b strings.Builder
	keyFix(&b, s)
	if len(s.ColumnTypes) == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, `Give each column of another type the provider's type, and an enum the provider's labels, on
subscriber %s (a change that stopped the apply is applied once the subscription restarts; values
already rounded or shifted stay so until copied again: pglmon verify --config FILE --subscription
%s --copy-script rows.psql):
`, s.Subscriber, shellword.Quote(s.Name))
	shifted := false
	for _, d := range s.ColumnTypes {
		if len(d.MissingLabels) > 0 {
			// The same enum, short of labels: add them.
			for i, l := range d.MissingLabels {
				pos := ""
				if i < len(d.LabelPositions) && d.LabelPositions[i] != "" {
					pos = " " + d.LabelPositions[i]
				}
				fmt.Fprintf(&b, "  ALTER TYPE %s ADD VALUE IF NOT EXISTS %s%s;   -- column %s of %s\n", d.Enum, pgident.Literal(l), pos, d.Column, d.Table)
			}
			continue
		}
		c := pgident.Ident(d.Column)
		fmt.Fprintf(&b, "  ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s;   -- %s there now\n", pgident.RegclassOf(d.Table), c, d.Provider, c, d.Provider, d.Subscriber)
		shifted = shifted || d.Effect == diagnose.TypeShifts
	}
	if shifted {
		b.WriteString("(with SET TimeZone = 'UTC' first in that session: pglogical wrote UTC times into a timestamp\nwithout time zone, and a timestamptz holds UTC)\n")
	}
	b.WriteString(`Between servers of the same major version pglogical sends values in binary, so a column of any
other type, a wider one too (integer into bigint), stops the apply at the first change: change a
replicated column's type on both sides at one point of the stream, with replicate_ddl_command
(below), never on one side first.
`)
	return b.String()
}

// keyFix gives each table of schema_mismatch whose subscriber finds rows
// by another key the provider's key.
func keyFix(b *strings.Builder, s diagnose.Subscription) {
	if len(s.Keys) == 0 {
		return
	}
	fmt.Fprintf(b, "Give each table the provider's key on subscriber %s, the key pglogical finds rows by:\n", s.Subscriber)
	for _, k := range s.Keys {
		cols := make([]string, len(k.Provider))
		for i, c := range k.Provider {
			cols[i] = pgident.Ident(c)
		}
		t := pgident.RegclassOf(k.Table)
		if k.Effect == diagnose.KeyMissing {
			fmt.Fprintf(b, "  ALTER TABLE %s ADD PRIMARY KEY (%s);\n", t, strings.Join(cols, ", "))
			continue
		}
		fmt.Fprintf(b, "  ALTER TABLE %s DROP CONSTRAINT <its primary key: \\d %s names it>, ADD PRIMARY KEY (%s);   -- (%s) there now\n",
			t, t, strings.Join(cols, ", "), strings.Join(k.Subscriber, ", "))
	}
	fmt.Fprintf(b, `(a table given REPLICA IDENTITY USING INDEX: ALTER TABLE ... REPLICA IDENTITY DEFAULT once it
has that primary key). The deletes and updates skipped meanwhile, and rows written over one
another, stay as they are until copied again: pglmon verify --config FILE --subscription %s
--copy-script rows.psql, then run the script it writes.
`, shellword.Quote(s.Name))
}

func ddlCall(s diagnose.Subscription) string {
	var sets []string
	for _, rs := range s.ReplicationSets {
		if rs == "ddl_sql" {
			return "  SELECT pglogical.replicate_ddl_command('ALTER TABLE schema.table ...');"
		}
		if rs != "pglmon_heartbeat" {
			sets = append(sets, pgident.Literal(rs))
		}
	}
	if len(sets) == 0 {
		sets = []string{"'<set>'"}
	}
	return fmt.Sprintf(`  SELECT pglogical.replicate_ddl_command('ALTER TABLE schema.table ...', replication_sets := ARRAY[%s]);
naming a set of every subscription that replicates the table: the default, ddl_sql, is not one of
%s's sets, and DDL queued for it alone runs on the provider and never reaches %s (measured
with pglogical 2.4.2), whose next change to the table then stops it.`, strings.Join(sets, ", "), s.Name, s.Name)
}

// verifyOrResync ends the plan of a finding whose lost changes a person
// puts right: the verification that names (and copies) the rows that
// differ, or a table's resynchronisation.
func verifyOrResync(b *strings.Builder, s diagnose.Subscription) {
	fmt.Fprintf(b, `  pglmon verify --config FILE --subscription %[2]s
  pglmon verify --config FILE --subscription %[2]s --copy-script rows.psql   (copies the provider's rows over: read it first)
or resynchronise a table (TRUNCATES it on %[1]s, then copies it):
  -- on subscriber %[1]s
  SELECT pglogical.alter_subscription_resynchronize_table(%[3]s, 'schema.table');
A verification that finds every table equal puts this finding behind.`, s.Subscriber, shellword.Quote(s.Name), pgident.Literal(s.Name))
}
