package config

import (
	"errors"
	"unicode"

	"github.com/pglmon/pglmon/internal/pgident"
)

// checkTableName reports what is wrong with a table name as SQL (and
// pglogical's regclass arguments) read it: [schema.]table, each part a
// plain identifier (folded to lower case) or one in double quotes ("" for a
// quote inside).
func checkTableName(name string) error {
	parts, err := pgident.Split(name)
	if err != nil {
		return err
	}
	if len(parts) > 2 {
		return errors.New("has more than two parts: write schema.table")
	}
	return nil
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
