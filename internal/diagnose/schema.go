package diagnose

import (
	"fmt"
	"strings"
)

// SchemaMismatch is a replicated table whose shape on the subscriber makes
// pglogical's apply fail, or changes what it applies (the drift check).
type SchemaMismatch struct {
	Table string `json:"table"`
	// Missing: the subscriber has no such table.
	Missing bool `json:"missing,omitempty"`
	// Columns the provider replicates that the subscriber lacks.
	Columns []string `json:"columns,omitempty"`
	// Required are the subscriber's own NOT NULL columns that nothing
	// fills (no default): every replicated insert is refused.
	Required []string `json:"required,omitempty"`
	// Sequence: Table names a sequence of the sets (Missing on the subscriber).
	Sequence bool `json:"sequence,omitempty"`
	// Generated are the subscriber's generated columns that the provider
	// does not send (not in its table, or left out of the set's column
	// list). Measured with pglogical 2.4.2: the apply worker crashes
	// (segmentation fault) at the first change to the table, which restarts
	// the subscriber's whole server, again at each start.
	Generated []string `json:"generated,omitempty"`
	// CopyRefused are the provider's generated columns that pglogical's
	// COPY of the table lists (no column list, or one that holds them):
	// measured with pglogical 2.4.2, PostgreSQL refuses that COPY ("column
	// is a generated column"), so the table's copy (initial, or a
	// resynchronisation) fails for ever. Not a mismatch by itself: changes
	// replicate (see Breaks).
	CopyRefused []string `json:"copy_refused,omitempty"`
	// Types are the replicated columns whose type differs on the
	// subscriber in a way that changes what pglogical applies.
	Types []TypeDiff `json:"types,omitempty"`
	// Key is set when the subscriber finds rows by another key than the
	// provider's.
	Key *KeyDiff `json:"key,omitempty"`
}

// KeyDiff is a replicated table whose subscriber finds rows by another key
// (its replica identity index, else its primary key) than the provider's.
type KeyDiff struct {
	// Table is schema.table, unquoted.
	Table string `json:"table"`
	// Effect is KeyMissing, KeySkips or KeyMerges.
	Effect     string   `json:"effect"`
	Provider   []string `json:"provider_key"`
	Subscriber []string `json:"subscriber_key"`
}

// keyEffect is the effect of m's key difference, "" for none.
func (m SchemaMismatch) keyEffect() string {
	if m.Key == nil {
		return ""
	}
	return m.Key.Effect
}

// What pglogical's apply does when the subscriber's table has another key
// (its replica identity index, else its primary key) than the provider's
// (SchemaMismatch.Key; measured with pglogical 2.4.2).
const (
	// KeyMissing: the subscriber's table has none: the first update or
	// delete stops the apply ("could not find REPLICA IDENTITY index").
	KeyMissing = "missing"
	// KeySkips: its key has a column the provider's lacks: every delete,
	// and every update that changes such a column, finds no row and is
	// skipped, silently (a conflict, "tuple not found").
	KeySkips = "skips"
	// KeyMerges: its key has fewer of the provider's columns: rows the
	// provider tells apart by the others are one row on the subscriber.
	KeyMerges = "merges"
)

// What pglogical's apply does with a column whose type differs between
// provider and subscriber (TypeDiff.Effect; measured with pglogical 2.4.2).
const (
	// TypeBreaks: servers of the same major version get a built-in or
	// plain type's value in binary, which the subscriber's other type
	// cannot read: the first change to the table stops the apply, or
	// arrives as a wrong value (bigint into numeric: 5 as 0.00000).
	TypeBreaks = "breaks"
	// TypeLimits: a value longer, larger or more precise than the
	// subscriber's type holds stops the apply ("value too long for type",
	// "numeric field overflow", "out of range").
	TypeLimits = "limits"
	// TypeRounds: values are rounded to the subscriber's scale or precision.
	TypeRounds = "rounds"
	// TypeShifts: timestamp and timestamptz taken one for the other,
	// without conversion to a time zone.
	TypeShifts = "shifts"
	// TypeConverts: servers of different major versions get the value's
	// text, which the subscriber's type parses or refuses.
	TypeConverts = "converts"
	// TypeBreaksLater: servers of different major versions get the value's
	// text, which the subscriber's type reads; once both run the same major
	// version (the older one upgraded) they get it in binary, and it is
	// TypeBreaks.
	TypeBreaksLater = "breaks_when_versions_match"
)

// TypeDiff is a replicated column whose type differs on the subscriber.
type TypeDiff struct {
	// Table is schema.table, unquoted.
	Table      string `json:"table"`
	Column     string `json:"column"`
	Provider   string `json:"provider_type"`
	Subscriber string `json:"subscriber_type"`
	// Effect is one of the Type* constants.
	Effect string `json:"effect"`
	// Binary: the servers run the same major version, so pglogical sends
	// built-in and plain types in binary.
	Binary bool `json:"binary"`
	// Enum is the subscriber's enum type (schema.name, quoted as SQL needs)
	// when the column is of the same enum on both sides, MissingLabels the
	// provider's labels it lacks ("invalid input value for enum"), and
	// LabelPositions, for each, where ALTER TYPE ... ADD VALUE puts it to
	// keep the provider's order ("AFTER 'x'", "BEFORE 'y'" or "").
	Enum           string   `json:"enum,omitempty"`
	MissingLabels  []string `json:"missing_labels,omitempty"`
	LabelPositions []string `json:"-"`
}

// typeEffects are the Type* effects, most harmful first, with what each does.
var typeEffects = []struct{ effect, does string }{
	{TypeBreaks, "between servers of the same major version pglogical sends such values in binary, which the subscriber's type cannot read: the first change to the table stops the apply (\"incorrect binary data format\", \"insufficient data left in message\") or is applied as a wrong value (bigint into numeric: 5 arrived as 0.00000; measured with pglogical 2.4.2)"},
	{TypeLimits, "a value that does not fit the subscriber's type stops the apply (\"value too long for type\", \"numeric field overflow\", \"out of range\", \"invalid input value for enum\")"},
	{TypeRounds, "values are rounded to the subscriber's type as they are applied (numeric(10,4) into numeric(10,2): 1.2345 arrived as 1.23)"},
	{TypeShifts, "pglogical applies one as the other without converting to a time zone (timestamptz 12:00+05 arrived in a timestamp as 07:00, its UTC time)"},
	{TypeConverts, "the servers' major versions differ, so pglogical sends such values as text, which the subscriber's type parses: a value it does not accept stops the apply"},
	{TypeBreaksLater, "the servers' major versions differ, so pglogical sends such values as text, which the subscriber's type reads; once both run the same major version (the older one upgraded) it sends them in binary, which the subscriber's type cannot read, and the first change to the table stops the apply or is applied wrong (measured with pglogical 2.4.2 between servers of one version): give the subscriber the provider's type before that upgrade"},
}

// describeTypes says, by effect, which columns differ in type and what
// that does: "a (bigint on the provider, integer here): ...".
func describeTypes(ds []TypeDiff) string {
	var parts []string
	for _, e := range typeEffects {
		var cols []string
		for _, d := range ds {
			switch {
			case d.Effect != e.effect:
			case len(d.MissingLabels) > 0:
				cols = append(cols, fmt.Sprintf("%s (%s lacks the provider's label(s) %s here)", d.Column, d.Subscriber, strings.Join(d.MissingLabels, ", ")))
			default:
				cols = append(cols, fmt.Sprintf("%s (%s on the provider, %s here)", d.Column, d.Provider, d.Subscriber))
			}
		}
		if len(cols) > 0 {
			parts = append(parts, strings.Join(cols, ", ")+": "+e.does)
		}
	}
	return strings.Join(parts, "; ")
}

// breaksTypes keeps the differences that stop the apply at the first change.
func breaksTypes(ds []TypeDiff) []TypeDiff {
	var out []TypeDiff
	for _, d := range ds {
		if d.Effect == TypeBreaks {
			out = append(out, d)
		}
	}
	return out
}

// Breaks reports whether the table's shape stops (or crashes) pglogical's
// apply: what schema_mismatch reports.
func (m SchemaMismatch) Breaks() bool {
	return m.Missing || len(m.Columns) > 0 || len(m.Required) > 0 || len(m.Generated) > 0 || len(breaksTypes(m.Types)) > 0 || m.keyEffect() == KeyMissing
}

// breaking keeps the mismatches that break the apply, with only the type
// differences that do: what can be why a subscription is down.
func breaking(ms []SchemaMismatch) []SchemaMismatch {
	var out []SchemaMismatch
	for _, m := range ms {
		if m.Breaks() {
			m.Types = breaksTypes(m.Types)
			if m.keyEffect() != KeyMissing {
				m.Key = nil
			}
			out = append(out, m)
		}
	}
	return out
}

// reported keeps the mismatches schema_mismatch reports while the
// subscription is not down: those that break the apply, and the type
// differences that change or refuse some values.
func reported(ms []SchemaMismatch) []SchemaMismatch {
	var out []SchemaMismatch
	for _, m := range ms {
		if m.Breaks() || len(m.Types) > 0 || m.Key != nil {
			out = append(out, m)
		}
	}
	return out
}

// columnTypes lists the type differences of ms (Subscription.ColumnTypes).
func columnTypes(ms []SchemaMismatch) []TypeDiff {
	var out []TypeDiff
	for _, m := range ms {
		out = append(out, m.Types...)
	}
	return out
}

// keys lists the key differences of ms (Subscription.Keys).
func keys(ms []SchemaMismatch) []KeyDiff {
	var out []KeyDiff
	for _, m := range ms {
		if m.Key != nil {
			out = append(out, *m.Key)
		}
	}
	return out
}

// breaksAtOnce: a binary type difference (the first change stops the apply
// or writes a wrong value), a generated column (it crashes the server), or
// a key that makes the apply skip changes silently.
func (m SchemaMismatch) breaksAtOnce() bool {
	return m.Crashes() || len(breaksTypes(m.Types)) > 0 || m.keyEffect() == KeySkips
}

// Crashes reports whether the next change to the table crashes the
// subscriber's server (Generated), not only stops the subscription.
func (m SchemaMismatch) Crashes() bool { return len(m.Generated) > 0 }

// String says what is wrong with the table.
func (m SchemaMismatch) String() string {
	if m.Sequence {
		return "sequence " + m.Table + " does not exist on the subscriber (pglogical's copy of it stops the subscription: \"could not open relation with OID 0\")"
	}
	if m.Missing {
		return m.Table + " does not exist on the subscriber"
	}
	var parts []string
	if len(m.Columns) > 0 {
		parts = append(parts, "lacks the provider's column(s) "+strings.Join(m.Columns, ", "))
	}
	if len(m.Required) > 0 {
		parts = append(parts, "has NOT NULL column(s) without default that the provider does not send: "+strings.Join(m.Required, ", "))
	}
	if len(m.Generated) > 0 {
		parts = append(parts, "has generated column(s) that the provider does not send: "+strings.Join(m.Generated, ", ")+" (pglogical 2.4.2's apply worker crashes at the next change to it, and takes the subscriber's whole server down with it, at every start)")
	}
	if len(m.Types) > 0 {
		parts = append(parts, "has columns of other types than the provider's: "+describeTypes(m.Types))
	}
	var pk, sk string
	if m.Key != nil {
		pk, sk = strings.Join(m.Key.Provider, ", "), strings.Join(m.Key.Subscriber, ", ")
	}
	switch m.keyEffect() {
	case KeyMissing:
		parts = append(parts, fmt.Sprintf("has no primary key or replica identity index to find rows by (the provider's key: %s): the first update or delete stops the apply (\"could not find REPLICA IDENTITY index\")", pk))
	case KeySkips:
		parts = append(parts, fmt.Sprintf("finds rows by (%s), the provider's key is (%s): every delete, and every update that changes a column of its key, finds no row and is skipped, silently, while pglogical says replicating (a conflict it logs, \"tuple not found. Resolution: skip\"; measured with pglogical 2.4.2)", sk, pk))
	case KeyMerges:
		parts = append(parts, fmt.Sprintf("finds rows by (%s), fewer columns than the provider's key (%s): two rows the provider tells apart by the others are one row here, the second written over the first", sk, pk))
	}
	return m.Table + " on the subscriber " + strings.Join(parts, "; ")
}

func describe(ms []SchemaMismatch) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, "; ")
}
