package verified

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/verify"
)

func TestEntries(t *testing.T) {
	at := time.Date(2026, 12, 4, 21, 0, 0, 0, time.UTC)
	r := verify.Result{Subscriber: "subscriber", Subscription: "sub_0", Tables: []verify.TableResult{
		{Table: "public.a", Mode: verify.ModeChecksum, Equal: true},
		{Table: "public.b", Mode: verify.ModeChecksum, Equal: true},
	}}
	keys := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			if !e.Since.Equal(at) {
				t.Errorf("%s since %s", e.Key(), e.Since)
			}
			out = append(out, e.Key())
		}
		return out
	}
	if got := keys(Entries(r, at, true)); len(got) != 3 || got[2] != "subscriber/sub_0/" {
		t.Errorf("all equal: %v", got)
	}
	if got := keys(Entries(r, at, false)); len(got) != 2 {
		t.Errorf("one table named (--table): %v", got)
	}
	for name, change := range map[string]func(*verify.Result){
		"differs":          func(r *verify.Result) { r.Tables[1].Equal = false },
		"failed":           func(r *verify.Result) { r.Tables[1].Error = "statement timeout" },
		"count":            func(r *verify.Result) { r.Tables[1].Mode = verify.ModeCount },
		"started at a key": func(r *verify.Result) { r.Tables[1].ResumedFrom = []string{"17"} },
	} {
		c := r
		c.Tables = append([]verify.TableResult(nil), r.Tables...)
		change(&c)
		if got := keys(Entries(c, at, true)); len(got) != 1 || got[0] != "subscriber/sub_0/public.a" {
			t.Errorf("%s: %v", name, got)
		}
	}
	if got := Entries(verify.Result{Subscriber: "s", Subscription: "x", Error: "cannot connect"}, at, true); len(got) != 0 {
		t.Errorf("failed run: %v", got)
	}
}

// Runs at once keep each other's entries; a later entry for a table
// replaces an earlier one, never the other way round; the watcher sees
// each change and keeps the last good content.
func TestRecordAndWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "verified.json")
	w := &Watcher{Path: path}
	if got, err := w.Since(); err != nil || len(got) != 0 {
		t.Fatalf("no file: %v, %v", got, err)
	}
	base := time.Date(2026, 12, 4, 21, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			e := Entry{Subscriber: "subscriber", Subscription: "sub_0", Table: "public.t" + string(rune('a'+i)), Since: base}
			if err := Record(path, []Entry{e}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := Record(path, []Entry{{Subscriber: "subscriber", Subscription: "sub_0", Table: "public.ta", Since: base.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := Record(path, []Entry{{Subscriber: "subscriber", Subscription: "sub_0", Table: "public.ta", Since: base.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	got, err := w.Since()
	if err != nil || len(got) != 8 || !got["subscriber/sub_0/public.ta"].Equal(base.Add(time.Hour)) || !got["subscriber/sub_0/public.th"].Equal(base) {
		t.Fatalf("after the runs: %v, %v", got, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode: %v %v", fi, err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if kept, err := w.Since(); err == nil || len(kept) != 8 {
		t.Errorf("a broken file: %v (%v), want the last good content and an error", len(kept), err)
	}
	if err := Record(path, []Entry{{Subscriber: "s", Subscription: "x", Since: base}}); err == nil {
		t.Error("recorded over a broken file")
	}
}
