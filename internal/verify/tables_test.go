package verify

import "testing"

func TestTableMatches(t *testing.T) {
	orders := Table{Schema: "public", Name: "orders_2026"}
	dotted := Table{Schema: "app", Name: "v1.orders"}
	for _, tc := range []struct {
		t    Table
		name string
		want bool
	}{
		{orders, "public.orders_2026", true},
		{orders, "orders_2026", true},
		{orders, "public.orders_*", true},
		{orders, "orders_202?", true},
		{orders, "*", true},
		{orders, "*.orders_2026", true},
		{orders, "audit.orders_*", false},
		{orders, "orders", false},
		{orders, "public.orders", false},
		{orders, "other.orders_2026", false},
		{orders, "[", false},
		{dotted, "v1.orders", true},
		{dotted, "app.v1.orders", true},
		{dotted, "app.*", true},
		{dotted, "v1.*", false},
	} {
		if got := tc.t.Matches(tc.name); got != tc.want {
			t.Errorf("%s matches %q: %t, want %t", tc.t.QualifiedName(), tc.name, got, tc.want)
		}
	}
}
