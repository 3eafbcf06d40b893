package drift

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgident"
)

// columnTypesSQL reads the type of every column of the table c (a pg_class
// row, possibly NULL) as the arrays names, types (format_type with the
// modifier, as \d shows it), bases (the base type without modifier: a
// domain's base), typmods (the modifier: a domain's own), enums (the
// qualified name of the enum type of the column or of its array's
// elements, else "") and labels (that enum's labels in order, a JSON
// array), for a LEFT JOIN LATERAL ... ON true; see typeScan.
const columnTypesSQL = `(SELECT array_agg(a.attname::text ORDER BY a.attnum) AS names,
		array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS types,
		array_agg(format_type(b.oid, NULL) ORDER BY a.attnum) AS bases,
		array_agg(CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END ORDER BY a.attnum) AS typmods,
		array_agg(CASE WHEN e.typtype = 'e' THEN quote_ident(en.nspname) || '.' || quote_ident(e.typname) ELSE '' END ORDER BY a.attnum) AS enums,
		array_agg(CASE WHEN e.typtype = 'e' THEN coalesce((SELECT json_agg(l.enumlabel ORDER BY l.enumsortorder)
			FROM pg_enum l WHERE l.enumtypid = e.oid)::text, '[]') ELSE '[]' END ORDER BY a.attnum) AS labels
	FROM pg_attribute a
	JOIN pg_type t ON t.oid = a.atttypid
	JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
	JOIN pg_type e ON e.oid = CASE WHEN b.typcategory = 'A' AND b.typelem <> 0 THEN b.typelem ELSE b.oid END
	JOIN pg_namespace en ON en.oid = e.typnamespace
	WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)`

// typeColumnsSQL selects columnTypesSQL's arrays, joined as ty, in
// typeScan's order.
const typeColumnsSQL = `coalesce(ty.names, '{}'), coalesce(ty.types, '{}'), coalesce(ty.bases, '{}'), coalesce(ty.typmods, '{}'),
	coalesce(ty.enums, '{}'), coalesce(ty.labels, '{}')`

// column is a column's type as read on one server.
type column struct {
	typ    string // as \d shows it: character varying(20)
	base   string // its base type without modifier: character varying
	typmod int32  // the modifier, -1 for none
	// enum is the qualified name of its enum type (or its elements'), and
	// labels that type's labels in order.
	enum   string
	labels []string
}

// columnTypes maps each column name to its type.
type columnTypes map[string]column

// typeScan receives the arrays of typeColumnsSQL.
type typeScan struct {
	names, types, bases, enums, labels []string
	typmods                            []int32
}

func (t *typeScan) dest() []any {
	return []any{&t.names, &t.types, &t.bases, &t.typmods, &t.enums, &t.labels}
}

// columns is what was scanned, by column name.
func (t *typeScan) columns() (columnTypes, error) {
	out := columnTypes{}
	for i, n := range t.names {
		if i >= len(t.types) || i >= len(t.bases) || i >= len(t.typmods) || i >= len(t.enums) || i >= len(t.labels) {
			break
		}
		c := column{typ: t.types[i], base: t.bases[i], typmod: t.typmods[i], enum: t.enums[i]}
		if err := json.Unmarshal([]byte(t.labels[i]), &c.labels); err != nil {
			return nil, fmt.Errorf("read the labels of enum %s: %w", c.enum, err)
		}
		out[n] = c
	}
	return out, nil
}

// MajorVersion is the major version of the server conn is connected to, as
// its server_version parameter says ("15.10 (Debian ...)" is 15); "" when
// it does not say.
func MajorVersion(conn *pgx.Conn) string {
	return Major(conn.PgConn().ParameterStatus("server_version"))
}

// Major is the major version of a PostgreSQL version: "16.4" and "16" are
// 16, "9.6.24" is 9.6, "15.10 (Debian 15.10-0+deb12u1)" is 15.
func Major(version string) string {
	v, _, _ := strings.Cut(strings.TrimSpace(version), " ")
	parts := strings.Split(v, ".")
	if parts[0] == "9" && len(parts) > 1 {
		return "9." + parts[1]
	}
	return parts[0]
}

// compareType says what pglogical's apply does with a replicated column
// whose type is p on the provider and s on the subscriber: "" when it
// applies every value unchanged, else one of the diagnose.Type* effects.
//
// Measured with pglogical 2.4.2 (PostgreSQL 15 on both sides): between
// servers of the same major version (binary) pglogical sends a built-in or
// plain type's value in its binary send format, which the subscriber reads
// with its own column type's receive function, so any other base type
// fails at the first change (integer into bigint: "insufficient data left
// in message"; bigint into integer: "incorrect binary data format"; json
// into jsonb: "unsupported jsonb version number") or arrives wrong (bigint
// into numeric: 5 arrived as 0.00000). Text types share a format, and so do
// timestamp and timestamptz, which are then taken one for the other
// unconverted. The subscriber's modifier applies: a longer varchar is
// refused ("value too long"), a numeric with a smaller scale is rounded.
// Between major versions pglogical sends every value as text, which the
// subscriber's type parses: a wider type takes it, until both servers run
// the same major version (TypeBreaksLater).
func compareType(p, s column, binary bool) string {
	switch {
	case p.enum != "" && s.enum != "" && p.typ == s.typ:
		// The same enum: a label the subscriber lacks is refused
		// ("invalid input value for enum"), in either transfer.
		if len(missingLabels(p, s)) > 0 {
			return diagnose.TypeLimits
		}
		return ""
	case p.typ == s.typ:
		return ""
	case p.enum != "" && !strings.HasSuffix(p.base, "[]") && textLike(s.base):
		// An enum's value goes as its label's text (enum_send).
		return compareLength(column{base: "text", typmod: -1}, s)
	case textLike(p.base) && s.enum != "" && !strings.HasSuffix(s.base, "[]"):
		return diagnose.TypeLimits // a text that is no label is refused
	case p.base == s.base:
		return compareModifier(p.base, p.typmod, s.typmod)
	case textLike(p.base) && textLike(s.base):
		return compareLength(p, s)
	case timestamp(p.base) && timestamp(s.base):
		return diagnose.TypeShifts
	case binary:
		return diagnose.TypeBreaks
	}
	if e := fromText(p, s); e != "" {
		return e
	}
	// Read as text now; in binary once the versions match.
	return diagnose.TypeBreaksLater
}

// compareModifier compares two modifiers of the same base type.
func compareModifier(base string, p, s int32) string {
	if p == s {
		return ""
	}
	elem := strings.TrimSuffix(base, "[]")
	switch {
	case elem == "character varying" || elem == "character":
		return compareLength(column{base: elem, typmod: p}, column{base: elem, typmod: s})
	case elem == "numeric":
		return compareNumeric(p, s)
	case timestamp(elem) || strings.HasPrefix(elem, "time "):
		if precision(s) < precision(p) {
			return diagnose.TypeRounds
		}
		return ""
	case elem == "interval":
		if s == -1 {
			return ""
		}
		return diagnose.TypeRounds
	}
	// Another modifier the subscriber's type checks: bit(n), a PostGIS
	// geometry's kind and SRID...
	return diagnose.TypeLimits
}

// textLike: a type whose values pglogical sends as their text in both
// transfers (textsend), which any other of them reads.
func textLike(base string) bool {
	switch base {
	case "text", "character varying", "character", "citext":
		return true
	}
	return strings.HasSuffix(base, ".citext")
}

func timestamp(base string) bool {
	return base == "timestamp without time zone" || base == "timestamp with time zone"
}

// length is the number of characters a text type holds, -1 unlimited.
func length(c column) int32 {
	if (c.base == "character varying" || c.base == "character") && c.typmod >= 4 {
		return c.typmod - 4
	}
	return -1
}

// compareLength: a subscriber's text type shorter than the provider's
// refuses the longer values ("value too long for type").
func compareLength(p, s column) string {
	pl, sl := length(p), length(s)
	if sl >= 0 && (pl < 0 || pl > sl) {
		return diagnose.TypeLimits
	}
	return ""
}

// compareNumeric: fewer digits before the point refuse larger values
// ("numeric field overflow"); a smaller scale rounds.
func compareNumeric(p, s int32) string {
	if s == -1 {
		return ""
	}
	if p == -1 {
		return diagnose.TypeLimits
	}
	pp, ps := numericModifier(p)
	sp, ss := numericModifier(s)
	switch {
	case sp-ss < pp-ps:
		return diagnose.TypeLimits
	case ss < ps:
		return diagnose.TypeRounds
	}
	return ""
}

// numericModifier decodes numeric(precision, scale) from its typmod (the
// scale may be negative since PostgreSQL 15).
func numericModifier(m int32) (precision, scale int32) {
	m -= 4
	return (m >> 16) & 0xffff, int32(int16(m & 0xffff))
}

// precision is a time type's fractional digits (-1: the default, 6).
func precision(m int32) int32 {
	if m < 0 {
		return 6
	}
	return m
}

// integerRank and floatRank order the types one widens into the next.
var integerRank = map[string]int{"smallint": 1, "integer": 2, "bigint": 3}
var floatRank = map[string]int{"real": 1, "double precision": 2}

// fromText is compareType between servers of different major versions:
// pglogical sends the value's text, which the subscriber's type parses.
func fromText(p, s column) string {
	pi, pInt := integerRank[p.base]
	si, sInt := integerRank[s.base]
	pf, pFloat := floatRank[p.base]
	sf, sFloat := floatRank[s.base]
	switch {
	case textLike(s.base):
		// Every value has a text.
		return compareLength(column{base: "text", typmod: -1}, s)
	case pInt && sInt:
		if si < pi {
			return diagnose.TypeLimits
		}
		return ""
	case (pInt || pFloat) && s.base == "numeric":
		if s.typmod != -1 {
			return diagnose.TypeLimits
		}
		return ""
	case pInt && sFloat:
		if pi == 3 || (pi == 2 && sf == 1) {
			return diagnose.TypeRounds // more digits than the float keeps
		}
		return ""
	case pFloat && sFloat:
		if sf < pf {
			return diagnose.TypeRounds
		}
		return ""
	case (p.base == "numeric" || pFloat) && sInt:
		return diagnose.TypeLimits // fractions and larger values refused
	case p.base == "numeric" && sFloat:
		return diagnose.TypeRounds
	case p.base == "date" && timestamp(s.base):
		return ""
	case (p.base == "json" && s.base == "jsonb") || (p.base == "jsonb" && s.base == "json"):
		return ""
	}
	return diagnose.TypeConverts
}

// missingLabels are the labels of the provider's enum p that the
// subscriber's s lacks.
func missingLabels(p, s column) []string {
	var out []string
	for _, l := range p.labels {
		if !slices.Contains(s.labels, l) {
			out = append(out, l)
		}
	}
	return out
}

// labelPositions says where each missing label goes in the subscriber's
// enum to keep the provider's order, as ALTER TYPE ... ADD VALUE takes it,
// the labels added in the order given: after the provider's label before
// it, or before the first one after it that the subscriber has.
func labelPositions(p, s column, missing []string) []string {
	out := make([]string, len(missing))
	for i, l := range missing {
		j := slices.Index(p.labels, l)
		if j > 0 {
			out[i] = "AFTER " + pgident.Literal(p.labels[j-1])
			continue
		}
		for _, next := range p.labels[j+1:] {
			if slices.Contains(s.labels, next) {
				out[i] = "BEFORE " + pgident.Literal(next)
				break
			}
		}
	}
	return out
}

// typeDiffs compares the replicated columns cols of table that both sides
// have.
func typeDiffs(table string, cols []string, prov, sub columnTypes, binary bool) []diagnose.TypeDiff {
	var out []diagnose.TypeDiff
	for _, c := range cols {
		p, ok := prov[c]
		s, ok2 := sub[c]
		if !ok || !ok2 {
			continue
		}
		if e := compareType(p, s, binary); e != "" {
			d := diagnose.TypeDiff{Table: table, Column: c, Provider: p.typ, Subscriber: s.typ, Effect: e, Binary: binary}
			if p.enum != "" && s.enum != "" && p.typ == s.typ {
				d.Enum, d.MissingLabels = s.enum, missingLabels(p, s)
				d.LabelPositions = labelPositions(p, s, d.MissingLabels)
			}
			out = append(out, d)
		}
	}
	return out
}
