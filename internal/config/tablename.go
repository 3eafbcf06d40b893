package config

import (
	"errors"
	"strings"
	"unicode"
)

var errNotSQL = errors.New("is not a table name as SQL writes it: quote a name that has spaces or other characters in double quotes (\"Sales\".\"Order Lines\")")

// checkTableName reports what is wrong with a table name as SQL (and
// pglogical's regclass arguments) read it: [schema.]table, each part a
// plain identifier (folded to lower case) or one in double quotes ("" for a
// quote inside).
func checkTableName(name string) error {
	rest := strings.TrimSpace(name)
	if rest == "" {
		return errors.New("is empty")
	}
	parts := 0
	for {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		var err error
		if rest, err = identifier(rest); err != nil {
			return err
		}
		parts++
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		if rest == "" {
			break
		}
		if rest[0] != '.' {
			return errNotSQL
		}
		rest = rest[1:]
	}
	if parts > 2 {
		return errors.New("has more than two parts: write schema.table")
	}
	return nil
}

// identifier reads one identifier at the start of s and returns the rest.
func identifier(s string) (string, error) {
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
				return "", errors.New(`has an empty quoted name ("")`)
			}
			return s[i+1:], nil
		}
		return "", errors.New("has a double quote that is not closed")
	}
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r))
	})
	if end < 0 {
		end = len(s)
	}
	if end == 0 || unicode.IsDigit(rune(s[0])) || s[0] == '$' {
		return "", errNotSQL
	}
	return s[end:], nil
}

// FoldsCapitals reports whether a table name has capitals outside double
// quotes, which SQL folds to lower case (public.MixedCase is
// public.mixedcase).
func FoldsCapitals(name string) bool {
	quoted := false
	for _, r := range name {
		switch {
		case r == '"':
			quoted = !quoted
		case !quoted && unicode.IsUpper(r):
			return true
		}
	}
	return false
}
