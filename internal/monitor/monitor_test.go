package monitor

import (
	"context"
	"os"
	"testing"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// stmt is a statement to run on one side.
type stmt struct {
	db  pgtest.DB
	sql string
}

// A table added to a subscription's set is compared in the next cycle, not
// up to schemaEvery later: added without its copy, with a generated column
// only the subscriber has (whose first change would crash the subscriber's
// server: schema_mismatch, critical); added with its copy, which
// PostgreSQL refuses (table_copy_refused). Before, the daemon reused the
// comparison it had made before, for up to a minute.
func TestATableAddedToASetIsComparedAtOnce(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 1})
	cfg, err := config.Parse("pglmon.yaml", []byte(p.NodesYAML()+"probe:\n  timeout: 5s\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := New(cfg)
	defer m.Close(ctx)
	finding := func(code string) (bool, diagnose.Report) {
		r, _ := m.Cycle(ctx)
		s, ok := r.Subscription(p.Sub(), "subscriber")
		if !ok {
			t.Fatalf("no subscription %s in %+v", p.Sub(), r)
		}
		for _, f := range s.Findings {
			if f.Code == code {
				return true, r
			}
		}
		return false, r
	}
	if got, r := finding(diagnose.CodeSchemaMismatch); got {
		t.Fatalf("schema_mismatch before the tables were added: %+v", r)
	}
	// Well under schemaEvery, so that the comparison made before cannot
	// have expired meanwhile.
	wait := schemaEvery / 3
	for _, step := range []struct {
		code string
		sql  []stmt
	}{
		{diagnose.CodeSchemaMismatch, []stmt{
			{p.Provider, "CREATE TABLE gencol (id int PRIMARY KEY, v int)"},
			{p.Subscriber, "CREATE TABLE gencol (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
			{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'gencol', false)"},
		}},
		{diagnose.CodeTableCopyRefused, []stmt{
			{p.Provider, "CREATE TABLE gen (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
			{p.Subscriber, "CREATE TABLE gen (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
			{p.Provider, "INSERT INTO gen (id, v) VALUES (1, 1)"},
			{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'gen', true)"},
		}},
	} {
		if got, r := finding(step.code); got {
			t.Fatalf("%s before its table was added: %+v", step.code, r)
		}
		for _, st := range step.sql {
			if err := st.db.Exec(ctx, st.sql); err != nil {
				t.Fatalf("%s: %v", st.sql, err)
			}
		}
		var last diagnose.Report
		if err := pgtest.Poll(ctx, wait, func() bool {
			got, r := finding(step.code)
			last = r
			return got
		}); err != nil {
			t.Fatalf("no %s within %s of adding its table: %+v", step.code, wait, last)
		}
	}
}
