// Package rowcopy writes the psql script that copies the rows pglmon verify
// found differing from a subscription's provider to its subscriber: the
// remedy that keeps the rest of the table, where resynchronising it would
// truncate it first. It is for a person to read and run; pglmon never runs
// it.
//
// The script reads the rows from the provider when it runs, not when it
// was written (it holds the rows' keys, not their other columns): on the
// provider, a COPY of the rows with the listed keys into a CSV file; on
// the subscriber, in one transaction, the listed keys the provider no longer
// has deleted and the provider's rows upserted by key, replicated columns
// only. A table without primary key has its rows named by their contents,
// which are then in the script: the provider's count of copies of each is
// read, and the subscriber given as many. Every statement is safe to run
// again: a second run finds the rows already equal and writes them the same
// (or, without key, nothing).
package rowcopy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/shellword"
	"github.com/pglmon/pglmon/internal/verify"
)

// Node is where the script connects: a node's name in the configuration
// and its connection string without password (probe.ClientConninfo).
type Node struct{ Name, Conninfo string }

// Subscription is one verified subscription and what differed in it.
type Subscription struct {
	Name                 string
	Provider, Subscriber Node
	Tables               []verify.TableResult
}

// Script is a written script and what it covers.
type Script struct {
	Text string
	// Tables lists the tables whose differing rows it copies
	// (subscription/schema.table), Rows how many keys it names.
	Tables []string
	Rows   int
	// Partial names the tables with more differing rows than verify listed
	// (verify.max_keys): the script copies the listed ones only.
	Partial []string
	// Left names, with why, the differing tables it does not copy.
	Left []string
	// Files are the CSV files it writes while it runs (removed at its end).
	Files []string
	// Connect is the first node the script connects to: psql needs a
	// connection to start with (psql -d).
	Connect Node
}

// sessionSettings make values read as text on one server read back the
// same on the other (the settings of verify's own sessions), and string
// literals mean what they say.
const sessionSettings = `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; ` +
	`SET extra_float_digits = 1; SET bytea_output = 'hex'; SET lc_monetary = 'C'; SET standard_conforming_strings = on;`

// asApply makes the subscriber's session write as pglogical's apply worker
// does, when the person running the script sets as_apply: no ordinary
// triggers, no foreign-key checks (session_replication_role = replica,
// which only a superuser or RDS's rds_superuser may set).
const asApply = "\\if :{?as_apply}\n\\set QUIET on\nSET session_replication_role = replica;\n\\set QUIET off\n\\endif\n"

// settings sets up a session: sessionSettings and extra, quietly.
func settings(extra string) string {
	return "\\set QUIET on\n" + sessionSettings + "\n" + extra + "\n\\set QUIET off\n"
}

// Build writes the script for the subscriptions' differing tables, to be
// kept at path: an absolute path, which names the CSV files the script
// writes while it runs (path.1.csv, ...; psql's \copy would read a
// relative name from where psql runs). It holds no quote, backslash or
// line break (\copy takes its file name as written).
func Build(subs []Subscription, path string, written time.Time, version string) (Script, error) {
	if strings.ContainsAny(path, "'\\\n\r") {
		return Script{}, fmt.Errorf("%q: a path holding a quote, a backslash or a line break cannot be named in psql's \\copy", path)
	}
	var s Script
	var body strings.Builder
	vars := map[string]string{} // psql variable -> conninfo
	var order []string
	variable := func(n Node) string {
		v := psqlVariable(n.Name)
		for other, ok := vars[v]; ok && other != n.Conninfo; other, ok = vars[v] {
			v += "_"
		}
		if _, ok := vars[v]; !ok {
			vars[v] = n.Conninfo
			order = append(order, v)
		}
		return v
	}
	file := 0
	for _, sub := range subs {
		if sub.Provider.Conninfo == "" || sub.Subscriber.Conninfo == "" {
			for _, t := range sub.Tables {
				if tb, why := eligible(t); why != "" || tb.keys != nil {
					s.Left = append(s.Left, sub.Name+"/"+t.Table+": no connection string of its provider or subscriber to write in the script")
				}
			}
			continue
		}
		var tables []table
		for _, t := range sub.Tables {
			tb, why := eligible(t)
			if why != "" {
				s.Left = append(s.Left, sub.Name+"/"+t.Table+": "+why)
				continue
			}
			if tb.keys == nil {
				continue // equal
			}
			file++
			tb.n = file
			tb.csv = fmt.Sprintf("%s.%d.csv", path, file)
			tables = append(tables, tb)
			s.Tables = append(s.Tables, sub.Name+"/"+t.Table)
			s.Rows += len(t.Keys)
			s.Files = append(s.Files, tb.csv)
			if int64(len(t.Keys)) < t.DifferingRows {
				s.Partial = append(s.Partial, fmt.Sprintf("%s/%s: %d of its %d differing rows", sub.Name, t.Table, len(t.Keys), t.DifferingRows))
			}
		}
		if len(tables) == 0 {
			continue
		}
		if s.Connect.Name == "" {
			s.Connect = sub.Provider
		}
		pv, sv := variable(sub.Provider), variable(sub.Subscriber)
		fmt.Fprintf(&body, "\n-- Subscription %s: read the rows from provider %s.\n", comment(sub.Name), comment(sub.Provider.Name))
		fmt.Fprintf(&body, "\\connect :%s\n%sBEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n", pv, settings("SET default_transaction_read_only = on;"))
		for _, t := range tables {
			fmt.Fprintf(&body, "-- %s: %s\n%s\n%s\nSELECT %s AS %s \\gset\n", comment(t.name), t.summary(), t.createFile(), t.copyOut(), t.digest(), t.readVar())
		}
		body.WriteString("COMMIT;\n")
		fmt.Fprintf(&body, "\n-- Write them on subscriber %s, every table in one transaction: the keys the provider\n", comment(sub.Subscriber.Name))
		fmt.Fprintf(&body, "-- no longer has deleted, the provider's rows inserted or updated by key (replicated columns only).\n")
		fmt.Fprintf(&body, "\\connect :%s\n%s%sBEGIN;\n", sv, settings("SET lock_timeout = '30s';"), asApply)
		for i, t := range tables {
			fmt.Fprintf(&body, "-- %s\n%s", comment(t.name), t.copyIn(fmt.Sprintf("pglmon_rows_%d", i+1)))
		}
		body.WriteString("COMMIT;\n")
		fmt.Fprintf(&body, "\n-- Read the rows on provider %s again: one it changed while the script copied it may have\n", comment(sub.Provider.Name))
		body.WriteString("-- reached the subscriber before the script's write, which then put its older values back.\n")
		fmt.Fprintf(&body, "\\connect :%s\n%s", pv, settings("SET default_transaction_read_only = on;"))
		for _, t := range tables {
			fmt.Fprintf(&body, "SELECT %s IS DISTINCT FROM :'%s' AS pglmon_changed \\gset\n\\if :pglmon_changed\n\\warn %s\n\\set pglmon_rows_changed on\n\\endif\n",
				t.digest(), t.readVar(), psqlArg(fmt.Sprintf("%s (subscription %s): the provider changed rows of it while the script copied them", t.name, sub.Name)))
		}
	}
	if len(s.Tables) == 0 {
		return s, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- Written by pglmon %s (pglmon verify --copy-script) at %s.\n", version, written.UTC().Format(time.RFC3339))
	b.WriteString(`-- Copies the rows pglmon verify found differing from the provider to the subscriber:
--   ` + comment(strings.Join(s.Tables, ", ")) + `
-- Read it before running it. It reads the provider's rows when it runs, and on the subscriber,
-- in one transaction, deletes the listed keys the provider no longer has and inserts or
-- updates the others with the provider's values (the columns the replication set replicates;
-- the subscriber's other columns are kept). The writes fire the subscriber's ordinary triggers
-- and foreign-key checks, as a local write does; pglogical's apply does not: to write as it
-- does (session_replication_role = replica, which a superuser or rds_superuser may set), add
-- -v as_apply=1 to the command below. At its end it reads the provider's rows again: if the
-- provider changed one of them while the script copied it, the subscriber may hold its older
-- values; the script then says which table and ends with an error (psql exits with 3): run it
-- again. Afterwards run pglmon verify again; it should find the tables equal.
-- Passwords are not in this file: psql asks for them, or reads ~/.pgpass. To connect otherwise
-- (another role, one that may write on the subscriber), set the variables below, e.g.
--   psql -X -v ` + order[len(order)-1] + `='host=... dbname=... user=...' ...
-- Run:
--   ` + comment("psql -X -d "+shellword.Quote(s.Connect.Conninfo)+" -f "+shellword.Quote(path)) + `
-- While it runs it keeps the rows in ` + strings.Join(s.Files, ", ") + `
-- (readable by you only; removed at its end, left there if it stops on an error: remove them then).
\set ON_ERROR_STOP on
`)
	for _, v := range order {
		fmt.Fprintf(&b, "\\if :{?%s}\n\\else\n\\set %s %s\n\\endif\n", v, v, psqlArg(vars[v]))
	}
	b.WriteString(body.String())
	b.WriteString("\n\\! rm -f --")
	for _, f := range s.Files {
		b.WriteString(" " + shellword.Quote(f))
	}
	b.WriteString("\n\\if :{?pglmon_rows_changed}\n" +
		"DO $$ BEGIN RAISE EXCEPTION 'rows changed on the provider while this script copied them (see above): the subscriber may hold their older values; run the script again'; END $$;\n" +
		"\\else\n\\echo 'Done: now run pglmon verify again; it should find the tables equal.'\n\\endif\n")
	s.Text = b.String()
	return s, nil
}

// table is one differing table as the script copies it.
type table struct {
	name   string // schema.table
	ident  string // quoted
	cols   []string
	names  []string // cols unquoted
	key    []string // quoted key columns
	filter string
	keys   [][]string
	kinds  map[string]int
	csv    string
	n      int // the table's number in the script: its CSV file's and psql variable's
	// rowText, for a table without primary key, is verify's text of a row
	// (its replicated columns cast to the provider's types): what names its
	// rows; keys are then one text each, and kind says what verify found.
	rowText string
	kind    []string
}

// eligible returns the table to copy, or why its differing rows cannot
// be copied by key; a table found equal returns neither.
func eligible(t verify.TableResult) (table, string) {
	if t.Equal || (t.DifferingRows == 0 && len(t.Keys) == 0) {
		return table{}, ""
	}
	spec := t.Spec
	switch {
	case t.Mode == verify.ModeCount:
		return table{}, "count mode names no rows: run pglmon verify --mode checksum for the keys"
	case len(t.Keys) == 0 || len(t.KeyValues) != len(t.Keys):
		return table{}, "no differing key was listed"
	}
	tb := table{
		name:   spec.QualifiedName(),
		ident:  pgx.Identifier{spec.Schema, spec.Name}.Sanitize(),
		cols:   quote(spec.Columns),
		names:  spec.Columns,
		key:    quote(spec.Key),
		filter: spec.RowFilter,
		kinds:  map[string]int{},
	}
	if t.Scan == verify.ScanRows || len(spec.Key) == 0 {
		return keyless(t, tb)
	}
	for i, vals := range t.KeyValues {
		if len(vals) != len(spec.Key) {
			return table{}, fmt.Sprintf("key %s does not have the %d columns of its primary key", t.Keys[i].Key, len(spec.Key))
		}
		tb.keys = append(tb.keys, vals)
		tb.kinds[t.Keys[i].Kind]++
	}
	return tb, ""
}

// keyless is a table without primary key, whose rows verify named by
// their contents (its text and which copy of it): the script makes the
// subscriber hold as many copies of each listed row as the provider does,
// inserting the missing ones and deleting the extra ones verify listed
// (in an insert-only set extra rows are expected, and not listed).
func keyless(t verify.TableResult, tb table) (table, string) {
	spec := t.Spec
	if len(spec.ColumnTypes) != len(spec.Columns) || slices.Contains(spec.ColumnTypes, "") {
		return table{}, "its rows are named by their contents, and the provider's column types are not known to read them back"
	}
	cols := make([]string, len(tb.cols))
	for i, c := range tb.cols {
		cols[i] = c + "::" + spec.ColumnTypes[i]
	}
	tb.rowText = "ROW(" + strings.Join(cols, ", ") + ")::text"
	seen := map[string]bool{}
	for i, vals := range t.KeyValues {
		if len(vals) == 0 {
			return table{}, fmt.Sprintf("row %s was not read whole", t.Keys[i].Key)
		}
		tb.kinds[t.Keys[i].Kind]++
		if !seen[vals[0]] {
			seen[vals[0]] = true
			tb.keys = append(tb.keys, []string{vals[0]})
			tb.kind = append(tb.kind, t.Keys[i].Kind)
		}
	}
	return tb, ""
}

// texts lists, as a VALUES list, the rows of the given kind (all when
// kind is ""); "" when there is none.
func (t table) texts(kind string) string {
	var items []string
	for i, k := range t.keys {
		if kind == "" || t.kind[i] == kind {
			items = append(items, "("+literal(k[0])+")")
		}
	}
	if len(items) == 0 {
		return ""
	}
	return "VALUES " + strings.Join(items, ", ")
}

func (t table) summary() string {
	var parts []string
	for _, k := range []string{verify.Missing, verify.Different, verify.Extra} {
		if n := t.kinds[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	return strings.Join(parts, ", ") + " (as pglmon verify found them)"
}

// keyList is the key columns, in parentheses when there are several.
func (t table) keyList(prefix string) string {
	cols := make([]string, len(t.key))
	for i, k := range t.key {
		cols[i] = prefix + k
	}
	if len(cols) == 1 {
		return cols[0]
	}
	return "(" + strings.Join(cols, ", ") + ")"
}

// inKeys is the condition "the key is one of those listed", its columns
// qualified by prefix: literals the server reads as each column's own
// type, on either side.
func (t table) inKeys(prefix string) string {
	items := make([]string, len(t.keys))
	for i, vals := range t.keys {
		lits := make([]string, len(vals))
		for j, v := range vals {
			lits[j] = literal(v)
		}
		items[i] = strings.Join(lits, ", ")
		if len(lits) > 1 {
			items[i] = "(" + items[i] + ")"
		}
	}
	return t.keyList(prefix) + " IN (" + strings.Join(items, ", ") + ")"
}

// rows selects the listed rows the provider has (and its replication set
// sends: the row filter), replicated columns only; for a table without
// primary key, the text of each listed row and how many copies of it the
// provider has.
func (t table) rows() string {
	if t.rowText != "" {
		filter := ""
		if t.filter != "" {
			filter = " WHERE (" + t.filter + ")"
		}
		return fmt.Sprintf("SELECT row_text, count(*) FROM (SELECT %s AS row_text FROM %s%s) AS r WHERE row_text IN (%s) GROUP BY row_text",
			t.rowText, t.ident, filter, t.texts(""))
	}
	where := t.inKeys("")
	if t.filter != "" {
		where += " AND (" + t.filter + ")"
	}
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(t.cols, ", "), t.ident, where)
}

// copyOut writes the provider's listed rows into the CSV file: a COPY TO
// STDOUT, whose rows psql writes to its query output, sent to the file
// (\o). Not \copy: psql reads a \copy's query in time growing with the
// square of its length (100,000 keys: 44 s of psql's CPU, measured), an
// SQL statement in linear time.
func (t table) copyOut() string {
	return fmt.Sprintf("\\set QUIET on\n\\o %s\nCOPY (%s) TO STDOUT WITH (FORMAT csv);\n\\o\n\\set QUIET off", psqlArg(t.csv), t.rows())
}

// digest is an MD5 of the provider's listed rows (a scalar subquery), to
// tell whether they changed between the script's copy and its end.
func (t table) digest() string {
	return "(SELECT md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text COLLATE \"C\"), '')) FROM (" + t.rows() + ") AS r)"
}

// readVar is the psql variable holding the digest of the rows copied.
func (t table) readVar() string { return fmt.Sprintf("pglmon_read_%d", t.n) }

// createFile creates the CSV file readable by its owner only, before
// \copy writes the provider's rows in it (psql keeps the mode of a file
// it writes over).
func (t table) createFile() string { return `\! umask 077 && : > ` + shellword.Quote(t.csv) }

// copyIn loads the CSV file into a temporary table on the subscriber, then
// deletes the listed keys the provider did not send and upserts its rows.
func (t table) copyIn(tmp string) string {
	if t.rowText != "" {
		return t.copiesIn(tmp)
	}
	var b strings.Builder
	cols := strings.Join(t.cols, ", ")
	fmt.Fprintf(&b, "CREATE TEMPORARY TABLE %s ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA;\n", tmp, cols, t.ident)
	fmt.Fprintf(&b, "\\copy %s FROM '%s' WITH (FORMAT csv)\n", tmp, t.csv)
	fmt.Fprintf(&b, "DELETE FROM %s AS t WHERE %s AND NOT EXISTS (SELECT FROM %s AS p WHERE %s = %s);\n",
		t.ident, t.inKeys("t."), tmp, t.keyList("p."), t.keyList("t."))
	var set, names []string
	for i, c := range t.cols {
		if !slices.Contains(t.key, c) {
			set = append(set, c+" = EXCLUDED."+c)
			names = append(names, literal(t.names[i]))
		}
	}
	if len(set) == 0 {
		fmt.Fprintf(&b, "INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s ON CONFLICT (%s) DO NOTHING;\n",
			t.ident, cols, cols, tmp, strings.Join(t.key, ", "))
		return b.String()
	}
	// A column the subscriber generates ALWAYS AS IDENTITY can only be
	// updated to DEFAULT: the columns of the update that are such are made
	// BY DEFAULT for the upsert and ALWAYS again before COMMIT (a rollback
	// undoes both).
	always := tmp + "_always"
	b.WriteString("-- (a column the subscriber generates ALWAYS AS IDENTITY is made BY DEFAULT for the upsert, ALWAYS again after it)\n")
	fmt.Fprintf(&b, "CREATE TEMPORARY TABLE %s ON COMMIT DROP AS SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attidentity = 'a' AND attname IN (%s);\n",
		always, literal(t.ident), strings.Join(names, ", "))
	alter := func(to string) string {
		return fmt.Sprintf("SELECT format('ALTER TABLE %%s ALTER COLUMN %%I SET GENERATED %s', %s::regclass, attname) FROM %s \\gexec\n", to, literal(t.ident), always)
	}
	b.WriteString(alter("BY DEFAULT"))
	fmt.Fprintf(&b, "INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s ON CONFLICT (%s) DO UPDATE SET %s;\n",
		t.ident, cols, cols, tmp, strings.Join(t.key, ", "), strings.Join(set, ", "))
	b.WriteString(alter("ALWAYS"))
	return b.String()
}

// copiesIn loads the provider's copy counts of the listed rows of a table
// without primary key into a temporary table, then inserts the copies the
// subscriber lacks of the rows verify found missing and deletes those it
// has too many of, of the rows verify found extra. A row's text is read
// back into its columns through a temporary table of the replicated
// columns (its row type).
func (t table) copiesIn(tmp string) string {
	var b strings.Builder
	cols := strings.Join(t.cols, ", ")
	fmt.Fprintf(&b, "CREATE TEMPORARY TABLE %s (row_text text, copies bigint) ON COMMIT DROP;\n", tmp)
	fmt.Fprintf(&b, "\\copy %s FROM '%s' WITH (FORMAT csv)\n", tmp, t.csv)
	if missing := t.texts(verify.Missing); missing != "" {
		fmt.Fprintf(&b, "CREATE TEMPORARY TABLE %s_shape ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA;\n", tmp, cols, t.ident)
		fmt.Fprintf(&b, "INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT (w.row_text::%s_shape).* FROM (%s) AS w(row_text) JOIN %s AS p USING (row_text)"+
			" LEFT JOIN (SELECT %s AS row_text, count(*) AS n FROM %s WHERE %s IN (%s) GROUP BY 1) AS h USING (row_text)"+
			" CROSS JOIN LATERAL generate_series(1, p.copies - coalesce(h.n, 0));\n",
			t.ident, cols, tmp, missing, tmp, t.rowText, t.ident, t.rowText, missing)
	}
	if extra := t.texts(verify.Extra); extra != "" {
		fmt.Fprintf(&b, "DELETE FROM %s WHERE ctid IN (SELECT s.ctid FROM (SELECT ctid, %s AS row_text, row_number() OVER (PARTITION BY %s) AS n FROM %s WHERE %s IN (%s)) AS s"+
			" LEFT JOIN %s AS p USING (row_text) WHERE s.n > coalesce(p.copies, 0));\n",
			t.ident, t.rowText, t.rowText, t.ident, t.rowText, extra, tmp)
	}
	return b.String()
}

func quote(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}

// literal is s as an escape string constant, E'...': the same value
// whatever standard_conforming_strings says, and on one line (a line
// break, or any control character, written as \xNN).
func literal(s string) string {
	var b strings.Builder
	b.WriteString("E'")
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\'':
			b.WriteString(`''`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString("'")
	return b.String()
}

// comment is s for a -- comment of the script: on one line (a name with a
// line break in it must not end the comment and be read as SQL).
func comment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// psqlVariable names the variable holding a node's connection string:
// node_ and the node's name, in the letters, digits and underscores a psql
// variable may hold.
func psqlVariable(node string) string {
	var b strings.Builder
	b.WriteString("node_")
	for _, r := range node {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// psqlArg quotes a meta-command argument for psql: in single quotes, a
// quote doubled, a backslash and a line break escaped (psql reads C-like
// escapes there), on one line.
func psqlArg(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`, "\n", `\n`, "\r", `\r`).Replace(s) + "'"
}
