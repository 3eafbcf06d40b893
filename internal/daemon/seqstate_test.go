package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// Since when each sequence has been behind is kept in its state file when
// it changes, and only then, and a daemon started again takes it up; a
// file that cannot be read is moved aside, said in the log, and the daemon
// starts without it.
func TestSequenceStateOutlivesARestart(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("test.yaml", []byte("nodes:\n  - name: subscriber\n    dsn: \"host=127.0.0.1 dbname=app\"\nhttp:\n  listen: \"127.0.0.1:0\"\nrepair:\n  audit_log: "+filepath.Join(dir, "audit.jsonl")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	start := func() (*Daemon, *pgtest.SyncBuffer) {
		logs := &pgtest.SyncBuffer{}
		d, err := New(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.mon.Close(context.Background()) })
		return d, logs
	}
	since := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	short := map[string]map[string]monitor.SequenceShort{"subscriber/sub_0": {"public.orders_id_seq": {Since: since, Value: 1200}}}
	path := cfg.SequenceStateFile()

	d, _ := start()
	d.seqs.keep(d) // nothing to keep: no file
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a state file with nothing behind: %v", err)
	}
	d.mon.RestoreSequencesShort(short)
	d.seqs.keep(d)
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), `"public.orders_id_seq"`) || !strings.Contains(string(b), `"since": "2026-12-07T21:00:00Z"`) {
		t.Fatalf("state file: %s (%v)", b, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	d.seqs.keep(d) // unchanged: not written again
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("written again with nothing changed: %v", err)
	}
	d.mon.RestoreSequencesShort(short)
	d.seqs.keep(d)
	d.mon.RestoreSequencesShort(map[string]map[string]monitor.SequenceShort{"subscriber/sub_0": {"public.orders_id_seq": {Since: since.Add(time.Minute), Value: 1300}}})
	d.seqs.keep(d)

	d2, _ := start()
	got := d2.mon.SequencesShort()["subscriber/sub_0"]["public.orders_id_seq"]
	if !got.Since.Equal(since.Add(time.Minute)) || got.Value != 1300 {
		t.Errorf("after a restart: %+v", d2.mon.SequencesShort())
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	d3, logs := start()
	if len(d3.mon.SequencesShort()) != 0 || !strings.Contains(logs.String(), "cannot read the sequence state") {
		t.Errorf("an unreadable file: %+v\n%s", d3.mon.SequencesShort(), logs.String())
	}
	if _, err := os.Stat(path + ".unreadable"); err != nil {
		t.Errorf("not moved aside: %v", err)
	}
}
