// Package shellword quotes the words of the POSIX shell command lines pglmon
// prints for a person to copy and run (repair plans, findings, verify's
// advice), so that a name holding a space, a quote or a $ stays one word.
package shellword

import "strings"

// plain holds the characters no POSIX shell treats specially anywhere in a
// word.
const plain = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/,@%+="

// Quote returns s as one shell word: unchanged when it is made of plain
// characters only, else in single quotes (a single quote inside written as
// quote, backslash, quote, quote).
func Quote(s string) string {
	if s != "" && strings.Trim(s, plain) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
