// Package pgident writes names and values as PostgreSQL's SQL reads them,
// for the statements pglmon prints for a person to run.
package pgident

import (
	"strings"
)

// Ident is a name as SQL reads it: as it is when SQL would read it so (lower
// case letters, digits, _ and $, not first), else in double quotes.
func Ident(name string) string {
	if name != "" && strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_$") == "" && !strings.ContainsAny(name[:1], "0123456789$") {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// Regclass is schema.name as a regclass reads it.
func Regclass(schema, name string) string { return Ident(schema) + "." + Ident(name) }

// RegclassOf is a table given as schema.table without quotes (as pglogical
// logs it) as a regclass reads it, cut at its first dot.
func RegclassOf(qualified string) string {
	schema, name, ok := strings.Cut(qualified, ".")
	if !ok {
		return Ident(qualified)
	}
	return Regclass(schema, name)
}

// Literal is s as an SQL string literal.
func Literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
