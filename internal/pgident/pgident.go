// Package pgident writes names and values as PostgreSQL's SQL reads them,
// for the statements pglmon prints for a person to run, and reads a table
// name given as SQL writes it.
package pgident

import (
	"errors"
	"strings"
	"unicode"
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

// errNotSQL says a name is not a table name as SQL writes it.
var errNotSQL = errors.New("is not a table name as SQL writes it: quote a name that has spaces or other characters in double quotes (\"Sales\".\"Order Lines\")")

// Split reads a dotted name as SQL does ([schema.]table): each part a plain
// identifier, folded to lower case, or one in double quotes, kept as it is
// ("" for a quote inside). It returns the parts, unquoted.
func Split(name string) ([]string, error) {
	rest := strings.TrimSpace(name)
	if rest == "" {
		return nil, errors.New("is empty")
	}
	var parts []string
	for {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		part, after, err := identifier(rest)
		if err != nil {
			return nil, err
		}
		parts = append(parts, part)
		rest = strings.TrimLeftFunc(after, unicode.IsSpace)
		if rest == "" {
			return parts, nil
		}
		if rest[0] != '.' {
			return nil, errNotSQL
		}
		rest = rest[1:]
	}
}

// identifier reads one identifier at the start of s and returns it,
// unquoted (or folded), and the rest.
func identifier(s string) (string, string, error) {
	if strings.HasPrefix(s, `"`) {
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				i++ // "" is a quote inside the name
				continue
			}
			if i == 1 {
				return "", "", errors.New(`has an empty quoted name ("")`)
			}
			return strings.ReplaceAll(s[1:i], `""`, `"`), s[i+1:], nil
		}
		return "", "", errors.New("has a double quote that is not closed")
	}
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r))
	})
	if end < 0 {
		end = len(s)
	}
	if end == 0 || unicode.IsDigit(rune(s[0])) || s[0] == '$' {
		return "", "", errNotSQL
	}
	return foldASCII(s[:end]), s[end:], nil
}

// foldASCII lowers A-Z only, as PostgreSQL folds a name in a multi-byte
// encoding (UTF-8): "Ünï" stays as it is.
func foldASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}
