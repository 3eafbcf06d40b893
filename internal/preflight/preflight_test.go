package preflight

import "testing"

func TestEnglishMessages(t *testing.T) {
	for lc, want := range map[string]bool{"": true, "C": true, "POSIX": true, "C.UTF-8": true, "en_US.UTF-8": true, "en_GB.utf8": true,
		"de_DE.UTF-8": false, "fr_FR.UTF-8": false, "ja_JP.UTF-8": false} {
		if got := englishMessages(lc); got != want {
			t.Errorf("%q: %v, want %v", lc, got, want)
		}
	}
}
