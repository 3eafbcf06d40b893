package pgident

import "testing"

func TestNames(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"public", "orders"}:     "public.orders",
		{"Sales", "Order Lines"}: `"Sales"."Order Lines"`,
		{"public", `my"table`}:   `public."my""table"`,
		{"s1", "2fast"}:          `s1."2fast"`,
		{"public", "t_$1"}:       "public.t_$1",
		{"public", "ünï"}:        `public."ünï"`,
		{"public", "select"}:     "public.select", // a keyword reads as a name after a dot
		{"public", ""}:           `public.""`,
	} {
		if got := Regclass(in[0], in[1]); got != want {
			t.Errorf("Regclass(%q, %q) = %s, want %s", in[0], in[1], got, want)
		}
	}
	if got := RegclassOf("Sales.Order Lines"); got != `"Sales"."Order Lines"` {
		t.Errorf("RegclassOf: %s", got)
	}
	if got := Literal("it's"); got != "'it''s'" {
		t.Errorf("Literal: %s", got)
	}
}
