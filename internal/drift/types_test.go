package drift

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// typ is a column of a built-in type as columnTypesSQL reads it.
func typ(base string, typmod int32) column {
	c := column{typ: base, base: base, typmod: typmod}
	switch {
	case typmod < 0:
	case base == "character varying" || base == "character":
		c.typ = fmt.Sprintf("%s(%d)", base, typmod-4)
	case base == "numeric":
		p, s := numericModifier(typmod)
		c.typ = fmt.Sprintf("numeric(%d,%d)", p, s)
	default:
		c.typ = fmt.Sprintf("%s(%d)", base, typmod)
	}
	return c
}

func numeric(precision, scale int) column {
	return typ("numeric", int32(precision<<16|(scale&0xffff))+4)
}

func varchar(n int32) column { return typ("character varying", n+4) }

func mood(labels ...string) column {
	return column{typ: "mood", base: "mood", typmod: -1, enum: "public.mood", labels: labels}
}

// Labels the subscriber's enum lacks go where the provider has them.
func TestLabelPositions(t *testing.T) {
	p, s := mood("new0", "sad", "mid", "mid2", "happy", "new9"), mood("sad", "happy")
	missing := missingLabels(p, s)
	got := labelPositions(p, s, missing)
	want := []string{"BEFORE 'sad'", "AFTER 'sad'", "AFTER 'mid'", "AFTER 'happy'"}
	if !slices.Equal(missing, []string{"new0", "mid", "mid2", "new9"}) || !slices.Equal(got, want) {
		t.Errorf("missing %v at %v, want %v", missing, got, want)
	}
}

// The effects of a type difference between servers of the same major
// version (binary, what TestTypeDifferencesAsPglogicalAppliesThem
// measures) and of different ones (text).
func TestCompareType(t *testing.T) {
	text, bigint, integer, smallint := typ("text", -1), typ("bigint", -1), typ("integer", -1), typ("smallint", -1)
	tstz, ts := typ("timestamp with time zone", -1), typ("timestamp without time zone", -1)
	for _, tc := range []struct {
		p, s         column
		binary, text string
	}{
		{integer, integer, "", ""},
		{bigint, integer, diagnose.TypeBreaks, diagnose.TypeLimits},
		{integer, bigint, diagnose.TypeBreaks, diagnose.TypeBreaksLater},
		{smallint, integer, diagnose.TypeBreaks, diagnose.TypeBreaksLater},
		{bigint, typ("numeric", -1), diagnose.TypeBreaks, diagnose.TypeBreaksLater},
		{bigint, numeric(10, 2), diagnose.TypeBreaks, diagnose.TypeLimits},
		{typ("double precision", -1), typ("real", -1), diagnose.TypeBreaks, diagnose.TypeRounds},
		{typ("real", -1), typ("double precision", -1), diagnose.TypeBreaks, diagnose.TypeBreaksLater},
		{bigint, typ("double precision", -1), diagnose.TypeBreaks, diagnose.TypeRounds},
		{typ("numeric", -1), integer, diagnose.TypeBreaks, diagnose.TypeLimits},
		{varchar(20), varchar(5), diagnose.TypeLimits, diagnose.TypeLimits},
		{varchar(5), varchar(20), "", ""},
		{text, varchar(5), diagnose.TypeLimits, diagnose.TypeLimits},
		{varchar(20), text, "", ""},
		{typ("character", 13), varchar(5), diagnose.TypeLimits, diagnose.TypeLimits},
		{varchar(5), typ("character", 9), "", ""},
		{typ("citext", -1), text, "", ""},
		{text, integer, diagnose.TypeBreaks, diagnose.TypeConverts},
		{integer, text, diagnose.TypeBreaks, diagnose.TypeBreaksLater},
		{typ("uuid", -1), text, diagnose.TypeBreaks, diagnose.TypeBreaksLater},
		{text, typ("uuid", -1), diagnose.TypeBreaks, diagnose.TypeConverts},
		{numeric(10, 4), numeric(10, 2), diagnose.TypeRounds, diagnose.TypeRounds},
		{numeric(10, 2), numeric(10, 4), diagnose.TypeLimits, diagnose.TypeLimits}, // 8 digits before the point, then 6
		{numeric(10, 2), numeric(12, 4), "", ""},
		{numeric(10, 2), typ("numeric", -1), "", ""},
		{typ("numeric", -1), numeric(10, 2), diagnose.TypeLimits, diagnose.TypeLimits},
		{tstz, ts, diagnose.TypeShifts, diagnose.TypeShifts},
		{ts, tstz, diagnose.TypeShifts, diagnose.TypeShifts},
		{typ("timestamp without time zone", 6), typ("timestamp without time zone", 0), diagnose.TypeRounds, diagnose.TypeRounds},
		{typ("timestamp without time zone", 0), ts, "", ""},
		{typ("date", -1), ts, diagnose.TypeBreaks, diagnose.TypeBreaksLater},
		{typ("json", -1), typ("jsonb", -1), diagnose.TypeBreaks, diagnose.TypeBreaksLater},
		{typ("integer[]", -1), typ("bigint[]", -1), diagnose.TypeBreaks, diagnose.TypeConverts},
		{typ("text[]", -1), typ("character varying[]", -1), diagnose.TypeBreaks, diagnose.TypeConverts},
		{typ("character varying[]", 24), typ("character varying[]", 9), diagnose.TypeLimits, diagnose.TypeLimits},
		{typ("bit", 3), typ("bit", 5), diagnose.TypeLimits, diagnose.TypeLimits},
		// A domain over integer reads as integer (its base), its name aside.
		{column{typ: "public.positive", base: "integer", typmod: -1}, integer, "", ""},
		// Enums: the same with the provider's labels, one short of one, and
		// an enum's label read as text, or a text as a label.
		{mood("sad", "happy"), mood("sad", "happy", "new"), "", ""},
		{mood("sad", "happy", "new"), mood("sad", "happy"), diagnose.TypeLimits, diagnose.TypeLimits},
		{mood("sad"), text, "", ""},
		{mood("sad"), varchar(3), diagnose.TypeLimits, diagnose.TypeLimits},
		{text, mood("sad"), diagnose.TypeLimits, diagnose.TypeLimits},
	} {
		if got := compareType(tc.p, tc.s, true); got != tc.binary {
			t.Errorf("%s -> %s, same major version: %q, want %q", tc.p.typ, tc.s.typ, got, tc.binary)
		}
		if got := compareType(tc.p, tc.s, false); got != tc.text {
			t.Errorf("%s -> %s, other major versions: %q, want %q", tc.p.typ, tc.s.typ, got, tc.text)
		}
	}
}

// Each kind of type difference as drift names it before any row is
// written, then what pglogical 2.4.2 does with a row written on the
// provider: stops (the subscription goes down, with the error in the
// subscriber's log), applies it changed, or as it is. A stopped one is
// put right as the schema_mismatch plan says (the subscriber's column
// given the provider's type, the subscription restarted). Last, the way to
// change a replicated column's type: replicate_ddl_command, after which a
// value only the wider type holds replicates.
func TestTypeDifferencesAsPglogicalAppliesThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	pc, sc := connect(t, p)
	if err := p.Provider.Exec(ctx, "CREATE TYPE mood AS ENUM ('sad', 'happy', 'new')"); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscriber.Exec(ctx, "CREATE TYPE mood AS ENUM ('sad', 'happy')"); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		prov, sub, value string
		effect           string
		stops            string // the apply worker's error
		applied          string // else the subscriber's value as text
		fix              string // what the plan runs on the subscriber (else the provider's type)
	}{
		{"bigint", "integer", "5", diagnose.TypeBreaks, "incorrect binary data format", "", ""},
		{"integer", "bigint", "5", diagnose.TypeBreaks, "insufficient data left in message", "", ""},
		{"bigint", "numeric", "5", diagnose.TypeBreaks, "", "0.00000", ""}, // a wrong value, silently
		{"varchar(20)", "varchar(5)", "'abcdefgh'", diagnose.TypeLimits, "value too long for type character varying(5)", "", ""},
		{"numeric(10,4)", "numeric(10,2)", "1.2345", diagnose.TypeRounds, "", "1.23", ""},
		{"timestamptz", "timestamp", "'2026-01-01 12:00+05'", diagnose.TypeShifts, "", "2026-01-01 07:00:00", ""},
		{"varchar(5)", "text", "'abc'", "", "", "abc", ""},
		{"numeric(10,2)", "numeric(12,4)", "1.23", "", "", "1.2300", ""},
		{"mood", "mood", "'new'", diagnose.TypeLimits, `invalid input value for enum mood: "new"`, "", "ALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'new' AFTER 'happy'"},
		{"mood", "text", "'happy'", "", "", "happy", ""},
	} {
		table := fmt.Sprintf("ty_%d", i)
		what := fmt.Sprintf("%s on the provider, %s on the subscriber", tc.prov, tc.sub)
		steps := []struct {
			db  pgtest.DB
			sql string
		}{
			{p.Provider, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, c %s)", table, tc.prov)},
			{p.Subscriber, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, c %s)", table, tc.sub)},
			{p.Provider, fmt.Sprintf("SELECT pglogical.replication_set_add_table('set_0', '%s', false)", table)},
		}
		for _, st := range steps {
			if err := st.db.Exec(ctx, st.sql); err != nil {
				t.Fatalf("%s: %v", st.sql, err)
			}
		}
		got, err := Check(ctx, pc, sc, []string{"set_0"})
		if err != nil {
			t.Fatal(err)
		}
		var effects []string
		for _, m := range got {
			for _, d := range m.Types {
				effects = append(effects, d.Effect)
				if m.Table != "public."+table || d.Table != m.Table || d.Column != "c" || !d.Binary {
					t.Errorf("%s: %+v in %s", what, d, m.Table)
				}
			}
		}
		if want := []string{tc.effect}; (tc.effect == "" && len(effects) > 0) || (tc.effect != "" && !slices.Equal(effects, want)) {
			t.Errorf("%s: drift says %v, want %v", what, effects, want)
		}
		logBefore := logSize(t, p)
		if err := p.Provider.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (1, %s)", table, tc.value)); err != nil {
			t.Fatal(err)
		}
		var value string
		arrived := func() bool {
			return p.Subscriber.QueryRow(ctx, "SELECT c::text FROM "+table+" WHERE id = 1", []any{&value}) == nil
		}
		if tc.stops == "" {
			if err := pgtest.Poll(ctx, time.Minute, arrived); err != nil || value != tc.applied {
				t.Fatalf("%s: the subscriber holds %q (%v), want %q", what, value, err, tc.applied)
			}
		} else {
			var logged string
			if err := pgtest.Poll(ctx, time.Minute, func() bool {
				logged = logSince(t, p, logBefore)
				return strings.Contains(logged, "ERROR:  "+tc.stops)
			}); err != nil {
				t.Fatalf("%s: the apply did not stop with %q: %v\n%s", what, tc.stops, err, logged)
			}
			if arrived() {
				t.Fatalf("%s: the row arrived as %q", what, value)
			}
			// The plan's way out: the provider's type, then a restart.
			fix := tc.fix
			if fix == "" {
				fix = fmt.Sprintf("ALTER TABLE %s ALTER COLUMN c TYPE %s USING c::%s", table, tc.prov, tc.prov)
			}
			if len(got) != 1 || len(got[0].Types) != 1 {
				t.Fatalf("%s: %+v", what, got)
			}
			if d := got[0].Types[0]; tc.fix != "" && (d.Enum != "public.mood" || !slices.Equal(d.MissingLabels, []string{"new"}) ||
				!strings.HasSuffix(tc.fix, d.LabelPositions[0])) {
				t.Errorf("%s: %+v", what, d)
			}
			for _, sql := range []string{
				fix,
				"SELECT pglogical.alter_subscription_disable('" + p.Sub() + "', true)",
				"SELECT pglogical.alter_subscription_enable('" + p.Sub() + "', true)",
			} {
				if err := p.Subscriber.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			if err := pgtest.Poll(ctx, 2*time.Minute, arrived); err != nil {
				t.Fatalf("%s: the row did not arrive once the types matched: %v", what, err)
			}
			if got, err := Check(ctx, pc, sc, []string{"set_0"}); err != nil || len(got) != 0 {
				t.Errorf("%s, made to match: %+v, %v", what, got, err)
			}
		}
		if err := p.Provider.Exec(ctx, fmt.Sprintf("SELECT pglogical.replication_set_remove_table('set_0', '%s')", table)); err != nil {
			t.Fatal(err)
		}
	}
	// Changing a replicated column's type on both sides at one point of
	// the stream: nothing to report, and a bigint value replicates.
	for _, sql := range []string{
		"SELECT pglogical.replication_set_add_table('set_0', 'ty_1', false)",
		"SELECT pglogical.replicate_ddl_command('ALTER TABLE public.ty_1 ALTER COLUMN c TYPE bigint', ARRAY['set_0'])",
		"INSERT INTO ty_1 VALUES (2, 3000000000)",
	} {
		if err := p.Provider.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var big int64
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT c FROM ty_1 WHERE id = 2", []any{&big}) == nil
	}); err != nil || big != 3000000000 {
		t.Fatalf("after replicate_ddl_command: %d, %v", big, err)
	}
	if got, err := Check(ctx, pc, sc, []string{"set_0"}); err != nil || len(got) != 0 {
		t.Errorf("after replicate_ddl_command: %+v, %v", got, err)
	}
}

// logSize is the subscriber's server log's size now.
func logSize(t *testing.T, p *pgtest.Pair) int {
	return len(logSince(t, p, 0))
}

// logSince is the subscriber's server log from offset on.
func logSince(t *testing.T, p *pgtest.Pair, offset int) string {
	t.Helper()
	b, err := os.ReadFile(p.Subscriber.Cluster.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(b[min(offset, len(b)):])
}
