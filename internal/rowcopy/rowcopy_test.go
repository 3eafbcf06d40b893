package rowcopy

import (
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/verify"
)

// The script that really copies rows is run against real pglogical in
// cmd/pglmon (TestVerifyCopyScriptMakesTheTablesEqual); these tests cover
// what it leaves out and how it writes names and values.

// keyed is a table of key id found differing: key, kind, key, kind ...
func keyed(table string, keys ...string) verify.TableResult {
	r := verify.TableResult{Table: "public." + table, Mode: verify.ModeChecksum, Scan: verify.ScanIndex,
		Spec: verify.Table{Schema: "public", Name: table, Columns: []string{"id", "val"}, Key: []string{"id"}, KeyTypes: []string{"integer"}}}
	for i := 0; i+1 < len(keys); i += 2 {
		k, kind := keys[i], keys[i+1]
		r.Keys = append(r.Keys, verify.KeyDiff{Key: k, Kind: kind})
		r.KeyValues = append(r.KeyValues, []string{k})
		r.DifferingRows++
	}
	return r
}

func TestLiteralStaysOneValueOnOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"42":              `E'42'`,
		`o'brien`:         `E'o''brien'`,
		`back\slash`:      `E'back\\slash'`,
		"two\nlines\r\t.": `E'two\x0alines\x0d\x09.'`,
		"naïve":           `E'naïve'`,
	} {
		if got := literal(in); got != want {
			t.Errorf("%q: got %s, want %s", in, got, want)
		}
	}
}

func TestBuild(t *testing.T) {
	prov := Node{"provider", "host=p dbname=app user=u"}
	sub := Node{"sub-1.eu", "host=s dbname=app user=u sslrootcert='/etc/my ca.pem'"}
	partial := keyed("big", "5", verify.Missing)
	partial.DifferingRows = 300
	count := verify.TableResult{Table: "public.counted", Mode: verify.ModeCount, DifferingRows: 2, ProviderRows: 10, SubscriberRows: 8}
	nokey := verify.TableResult{Table: "public.events", Mode: verify.ModeChecksum, Scan: verify.ScanRows, DifferingRows: 3,
		Spec:      verify.Table{Schema: "public", Name: "events", Columns: []string{"at", "note"}, ColumnTypes: []string{"integer", "text"}},
		Keys:      []verify.KeyDiff{{Key: "(5,x)", Kind: verify.Missing}, {Key: "(5,x) #2", Kind: verify.Missing}, {Key: "(6,y)", Kind: verify.Extra}},
		KeyValues: [][]string{{"(5,x)", ""}, {"(5,x)", " #2"}, {"(6,y)", ""}}}
	untyped := verify.TableResult{Table: "public.old", Mode: verify.ModeChecksum, Scan: verify.ScanRows, DifferingRows: 1,
		Spec: verify.Table{Schema: "public", Name: "old", Columns: []string{"at"}},
		Keys: []verify.KeyDiff{{Key: "(5)", Kind: verify.Missing}}, KeyValues: [][]string{{"(5)", ""}}}
	equal := verify.TableResult{Table: "public.same", Mode: verify.ModeChecksum, Equal: true}
	s, err := Build([]Subscription{
		{Name: "sub_a", Provider: prov, Subscriber: sub, Tables: []verify.TableResult{keyed("items", "1", verify.Missing, "2", verify.Extra), partial, count, nokey, untyped, equal}},
		{Name: "sub_b", Provider: prov, Subscriber: sub, Tables: []verify.TableResult{equal}},
	}, "/var/tmp/rows.psql", time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC), "v1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Tables, " ") != "sub_a/public.items sub_a/public.big sub_a/public.events" || s.Rows != 6 || len(s.Files) != 3 || s.Connect != prov {
		t.Errorf("tables %v, rows %d, files %v, connect %v", s.Tables, s.Rows, s.Files, s.Connect)
	}
	if len(s.Partial) != 1 || !strings.Contains(s.Partial[0], "1 of its 300") {
		t.Errorf("partial: %v", s.Partial)
	}
	if len(s.Left) != 2 || !strings.Contains(s.Left[0], "public.counted: count mode") || !strings.Contains(s.Left[1], "public.old: its rows are named by their contents, and the provider's column types are not known") {
		t.Errorf("left: %v", s.Left)
	}
	for _, want := range []string{
		"\\set node_sub_1_eu 'host=s dbname=app user=u sslrootcert=''/etc/my ca.pem'''\n",
		"\\connect :node_provider\n",
		`"id" IN (E'1', E'2')`,
		`\copy pglmon_rows_2 FROM '/var/tmp/rows.psql.2.csv' WITH (FORMAT csv)`,
		"\\! umask 077 && : > /var/tmp/rows.psql.1.csv\n",
		`ON CONFLICT ("id") DO UPDATE SET "val" = EXCLUDED."val";`,
		"\\! rm -f -- /var/tmp/rows.psql.1.csv /var/tmp/rows.psql.2.csv /var/tmp/rows.psql.3.csv\n",
		// The table without key: copies counted on the provider, each listed row once.
		"\\o '/var/tmp/rows.psql.3.csv'\nCOPY (SELECT row_text, count(*) FROM (SELECT ROW(\"at\"::integer, \"note\"::text)::text AS row_text FROM \"public\".\"events\") AS r WHERE row_text IN (VALUES (E'(5,x)'), (E'(6,y)')) GROUP BY row_text) TO STDOUT WITH (FORMAT csv);\n\\o\n",
		`CROSS JOIN LATERAL generate_series(1, p.copies - coalesce(h.n, 0));`,
		`FROM "public"."events" WHERE ROW("at"::integer, "note"::text)::text IN (VALUES (E'(6,y)'))) AS s LEFT JOIN pglmon_rows_3 AS p USING (row_text) WHERE s.n > coalesce(p.copies, 0));`,
		"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n",
		") AS r) AS pglmon_read_2 \\gset\n",
		") AS r) IS DISTINCT FROM :'pglmon_read_2' AS pglmon_changed \\gset\n",
		"\\warn 'public.big (subscription sub_a): the provider changed rows of it while the script copied them'\n",
	} {
		if !strings.Contains(s.Text, want) {
			t.Errorf("script lacks %q:\n%s", want, s.Text)
		}
	}
	if n := strings.Count(s.Text, "\\set node_provider "); n != 1 {
		t.Errorf("node_provider set %d times", n)
	}

	// Nothing to copy by key: no script.
	if s, err := Build([]Subscription{{Name: "x", Provider: prov, Subscriber: sub, Tables: []verify.TableResult{equal, count}}}, "/tmp/r.psql", time.Now(), "v1"); err != nil || s.Text != "" || len(s.Left) != 1 {
		t.Errorf("nothing to copy: %+v %v", s, err)
	}
	// A node without a connection string: left out, never an empty \connect.
	if s, err := Build([]Subscription{{Name: "x", Provider: prov, Subscriber: Node{Name: "s"}, Tables: []verify.TableResult{keyed("items", "1", verify.Missing), equal}}}, "/tmp/r.psql", time.Now(), "v1"); err != nil || s.Text != "" || len(s.Left) != 1 {
		t.Errorf("no conninfo: %+v %v", s, err)
	}
	// A path \copy cannot name.
	if _, err := Build(nil, "/tmp/it's.psql", time.Now(), "v1"); err == nil {
		t.Error("a quote in the path is taken")
	}
}

// Two nodes whose names read the same as psql variables keep one each.
func TestVariablesOfLikeNamedNodes(t *testing.T) {
	tables := []verify.TableResult{keyed("items", "1", verify.Missing)}
	s, err := Build([]Subscription{
		{Name: "a", Provider: Node{"db-1", "host=one"}, Subscriber: Node{"db.1", "host=two"}, Tables: tables},
	}, "/tmp/r.psql", time.Now(), "v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\\set node_db_1 'host=one'", "\\set node_db_1_ 'host=two'", "\\connect :node_db_1\n", "\\connect :node_db_1_\n"} {
		if !strings.Contains(s.Text, want) {
			t.Errorf("script lacks %q:\n%s", want, s.Text)
		}
	}
}

// Names from the catalogs and the configuration stay inside the script's
// comments and quotes: a line break in one never starts a line of SQL.
func TestNamesCannotBreakOutOfTheScript(t *testing.T) {
	evil := "x\nDROP TABLE important;"
	tables := []verify.TableResult{keyed("items", "1", verify.Missing)}
	s, err := Build([]Subscription{
		{Name: evil, Provider: Node{evil, "host=one application_name='" + evil + "'"}, Subscriber: Node{"s", "host=two"}, Tables: tables},
	}, "/tmp/r.psql", time.Now(), "v1")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(s.Text) {
		if strings.HasPrefix(line, "DROP") {
			t.Errorf("a name broke out:\n%s", s.Text)
		}
	}
	if !strings.Contains(s.Text, `application_name=''x\nDROP TABLE important;'''`) {
		t.Errorf("the connection string is not kept whole:\n%s", s.Text)
	}
}
