package pgident

import (
	"slices"
	"strings"
	"testing"
)

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

func TestSplit(t *testing.T) {
	for in, want := range map[string][]string{
		`public.orders`:        {"public", "orders"},
		` Sales . Orders `:     {"sales", "orders"},
		`"Sales"."Orders"`:     {"Sales", "Orders"},
		`public."Order Lines"`: {"public", "Order Lines"},
		`"my""table"`:          {`my"table`},
		`Ünï`:                  {"Ünï"},
		`t_$1`:                 {"t_$1"},
		`"a.b".c`:              {"a.b", "c"},
		`db."Public".t`:        {"db", "Public", "t"},
	} {
		got, err := Split(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Split(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		``:                  "is empty",
		`public.`:           "is not a table name",
		`"Orders`:           "not closed",
		`"".t`:              "empty quoted name",
		`Sales.Order Lines`: "is not a table name",
		`2fast`:             "is not a table name",
		`public.orders_*`:   "is not a table name",
	} {
		if _, err := Split(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Split(%q): %v, want %q", in, err, want)
		}
	}
}
