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

// A table added to a subscription's set is compared in the next cycle, not
// up to schemaEvery later: a copy PostgreSQL refuses (a generated column,
// table_copy_refused) is reported within seconds. Before, the daemon
// reused the comparison it had made before the table was added, for a
// minute.
func TestATableAddedToASetIsComparedAtOnce(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 1})
	cfg, err := config.Parse("pglmon.yaml", []byte(p.NodesYAML()+"probe:\n  timeout: 5s\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := New(cfg)
	defer m.Close(ctx)
	refused := func() (bool, diagnose.Report) {
		r, _ := m.Cycle(ctx)
		s, ok := r.Subscription(p.Sub(), "subscriber")
		if !ok {
			t.Fatalf("no subscription %s in %+v", p.Sub(), r)
		}
		for _, f := range s.Findings {
			if f.Code == diagnose.CodeTableCopyRefused {
				return true, r
			}
		}
		return false, r
	}
	if got, r := refused(); got {
		t.Fatalf("table_copy_refused before the table was added: %+v", r)
	}
	for _, st := range []struct {
		db  pgtest.DB
		sql string
	}{
		{p.Provider, "CREATE TABLE gen (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
		{p.Subscriber, "CREATE TABLE gen (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
		{p.Provider, "INSERT INTO gen (id, v) VALUES (1, 1)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'gen', true)"},
	} {
		if err := st.db.Exec(ctx, st.sql); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
	}
	// Well under schemaEvery, so that the comparison made before cannot
	// have expired meanwhile.
	wait := schemaEvery / 3
	var last diagnose.Report
	if err := pgtest.Poll(ctx, wait, func() bool {
		got, r := refused()
		last = r
		return got
	}); err != nil {
		t.Fatalf("no table_copy_refused within %s of adding the table: %+v", wait, last)
	}
}
