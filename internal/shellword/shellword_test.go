package shellword

import (
	"os/exec"
	"strings"
	"testing"
)

// TestQuoteIsOneWordForTheShell hands quoted words to a real shell and
// checks that each arrives as exactly one argument, unchanged.
func TestQuoteIsOneWordForTheShell(t *testing.T) {
	words := []string{"sub_0", "public.items_0", "", "sub 0", "it's", `a"b`, "$HOME", "`id`", "a\\b", "*", "~root", "x;y", "a\nb", "#c", "!x", "{a,b}", "%1", "-n"}
	var line strings.Builder
	line.WriteString(`printf '%s\0' `)
	for _, w := range words {
		line.WriteString(Quote(w) + " ")
	}
	for _, sh := range []string{"sh", "bash"} {
		out, err := exec.Command(sh, "-c", line.String()).Output()
		if err != nil {
			t.Fatalf("%s: %v", sh, err)
		}
		got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
		if len(got) != len(words) {
			t.Fatalf("%s: %d words %q, want %d", sh, len(got), got, len(words))
		}
		for i, w := range words {
			if got[i] != w {
				t.Errorf("%s: word %d = %q, want %q (quoted %s)", sh, i, got[i], w, Quote(w))
			}
		}
	}
	for w, want := range map[string]string{"sub_0": "sub_0", "public.items_0": "public.items_0", "sub 0": "'sub 0'", "it's": `'it'\''s'`} {
		if got := Quote(w); got != want {
			t.Errorf("Quote(%q) = %s, want %s", w, got, want)
		}
	}
}
