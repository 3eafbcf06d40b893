package upgrade

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestTransferAfter(t *testing.T) {
	for _, c := range []struct {
		provider          bool
		prov, sub, target string
		want              transferChange
	}{
		{true, "15", "15", "", transferKept},
		{true, "15", "15", "16", transferKept}, // binary to text: reads what binary read
		{true, "14", "15", "15", transferToBinary},
		{false, "15", "14", "15", transferToBinary},
		{false, "15", "14", "16", transferKept},
		{true, "14", "15", "16", transferKept},
		{true, "14", "15", "", transferMayBeBinary},
		{true, "9.6", "15", "15", transferToBinary},
		{false, "9.6", "15", "", transferMayBeBinary},
	} {
		if got := transferAfter(c.provider, c.prov, c.sub, c.target); got != c.want {
			t.Errorf("provider %v, %s -> %s, target %q: %v, want %v", c.provider, c.prov, c.sub, c.target, got, c.want)
		}
	}
}

// A subscriber whose columns are wider than the provider's works while the
// servers' major versions differ (pglogical sends text) and stops at the
// first change once they match (binary): check names such columns before
// the upgrade that makes them match, prepare refuses, and the fix as
// printed clears it. Only PostgreSQL 15 is installed here, so the test
// gives the provider another major version (Runner.majors); what the
// apply does with the values in binary is what drift measured between two
// servers of 15.
func TestCheckNamesColumnsThatBreakOnceVersionsMatch(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	for _, step := range []struct {
		db  pgtest.DB
		sql string
	}{
		{p.Provider, "ALTER TABLE items_0 ADD COLUMN small integer, ADD COLUMN w text, ADD COLUMN big bigint"},
		// Wider twice (text reads it, binary not), limited in both,
		// narrower (limited as text, broken in binary).
		{p.Subscriber, "ALTER TABLE items_0 ALTER COLUMN n TYPE bigint, ADD COLUMN small numeric, ADD COLUMN w varchar(5), ADD COLUMN big integer"},
	} {
		if err := step.db.Exec(ctx, step.sql); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse("t.yaml", []byte(p.NodesYAML()))
	if err != nil {
		t.Fatal(err)
	}
	runner := func(target string, majors map[string]string) *Runner {
		return &Runner{Config: cfg, Out: &bytes.Buffer{}, Timeout: 30 * time.Second, Target: TargetOptions{Version: target}, majors: majors}
	}
	typeProblems := func(node, target string, majors map[string]string) (*Readiness, []Problem) {
		t.Helper()
		res, err := runner(target, majors).Check(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		var out []Problem
		for _, p := range res.Problems {
			if p.Kind == "column_type" {
				out = append(out, p)
			}
		}
		return res, out
	}
	objects := func(ps []Problem) string {
		var o []string
		for _, p := range ps {
			o = append(o, p.Object)
		}
		return strings.Join(o, " ")
	}
	// Both on 15 (binary now, the subscription breaks at the next change:
	// status's schema_mismatch), and the provider's upgrade to 16 (text).
	for _, target := range []string{"", "16.4"} {
		if _, got := typeProblems("provider", target, nil); len(got) != 0 {
			t.Errorf("both on 15, target %q: %+v", target, got)
		}
	}
	fourteen := map[string]string{"provider": "14"}
	// The provider on 14, upgraded to 15: the subscriber's 15 then.
	res, got := typeProblems("provider", "15.8", fourteen)
	want := "public.items_0.n public.items_0.small public.items_0.big"
	if res.Ready || objects(got) != want {
		t.Fatalf("provider 14 upgraded to 15: ready %v, want blocking %s, got %+v", res.Ready, want, got)
	}
	for _, pr := range got {
		if !pr.Blocking || pr.Database != p.Subscriber.Name || !strings.Contains(pr.Message, "between PostgreSQL 14 and 15 pglogical sends its values as text") || !strings.Contains(pr.Message, "once provider runs PostgreSQL 15, as subscriber does") {
			t.Errorf("%s: %+v", pr.Object, pr)
		}
	}
	if !strings.Contains(got[0].Fix, "on subscriber subscriber, ALTER TABLE public.items_0 ALTER COLUMN n TYPE integer USING n::integer;") ||
		!strings.Contains(got[0].Fix, `SELECT pglogical.replicate_ddl_command('ALTER TABLE public.items_0 ALTER COLUMN n TYPE bigint');`) {
		t.Errorf("fix: %s", got[0].Fix)
	}
	if !strings.Contains(got[2].Message, "which integer reads with effect limits (pglmon status warns of it)") {
		t.Errorf("a narrower column: %s", got[2].Message)
	}
	// To 16 instead: the versions still differ, text.
	if _, got := typeProblems("provider", "16", fourteen); len(got) != 0 {
		t.Errorf("provider 14 upgraded to 16: %+v", got)
	}
	// The subscriber's upgrade to the provider's version, seen from the
	// subscriber's check.
	if _, got := typeProblems("subscriber", "15", map[string]string{"subscriber": "13"}); objects(got) != want || !strings.Contains(got[0].Message, "once subscriber runs PostgreSQL 15, as provider does") {
		t.Errorf("subscriber 13 upgraded to 15: %+v", got)
	}
	// No target: warnings, which say what would make them matter.
	res, got = typeProblems("provider", "", fourteen)
	if !res.Ready || objects(got) != want || got[0].Blocking || !strings.Contains(got[0].Message, "if the upgrade brings provider to PostgreSQL 15, as subscriber runs (give --target-version to know)") {
		t.Errorf("no target: ready %v, %+v", res.Ready, got)
	}
	// prepare refuses, dropping nothing.
	manifest := filepath.Join(t.TempDir(), "m.json")
	err = runner("15", fourteen).Prepare(ctx, "provider", manifest)
	var nr *NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "column n of public.items_0") {
		t.Fatalf("prepare: want a refusal naming the column, got %v", err)
	}
	if st, err := p.Status(ctx, "sub_0"); err != nil || st != "replicating" {
		t.Fatalf("after the refused prepare sub_0 is %q (%v)", st, err)
	}
	// The fixes as printed, on the subscriber: nothing left.
	alter := regexp.MustCompile(`on subscriber subscriber, (ALTER TABLE [^;]+;)`)
	for _, pr := range got {
		m := alter.FindStringSubmatch(pr.Fix)
		if m == nil {
			t.Fatalf("no statement in %q", pr.Fix)
		}
		if err := p.Subscriber.Exec(ctx, m[1]); err != nil {
			t.Fatalf("%s: %v", m[1], err)
		}
	}
	if res, got := typeProblems("provider", "15", fourteen); !res.Ready || len(got) != 0 {
		t.Errorf("after the fixes: ready %v, %+v", res.Ready, got)
	}
}
