package repair

import (
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/diagnose"
)

// data_divergence's plan is for a person: both ways to repair, and where
// resynchronising loses rows (an archive's) or copying by key does not apply.
func TestDataDivergencePlan(t *testing.T) {
	f := diagnose.Finding{Code: diagnose.CodeDataDivergence, Message: "public.orders: 3 rows differ", Human: true}
	s := diagnose.Subscription{Name: "sub_o'1", Subscriber: "sub", Provider: "prov"}
	p := HumanPlan(f, s)
	if !p.Human {
		t.Error("not for a person")
	}
	for _, want := range []string{
		"public.orders: 3 rows differ",
		"SELECT pglogical.alter_subscription_resynchronize_table('sub_o''1', 'schema.table');",
		"pglmon verify --config FILE --subscription sub_o'1 --table schema.table --output json",
		"a table without\n    primary key has its rows named by their contents",
		"resynchronising it undoes them; copy the differing rows instead",
	} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("plan lacks %q:\n%s", want, p.Text)
		}
	}
}
