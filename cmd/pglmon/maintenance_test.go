package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// pglmon maintenance start / list / end, and what status shows meanwhile.
func TestMaintenanceCommand(t *testing.T) {
	t.Parallel()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	cfg := writeConfig(t, p, "")
	file := filepath.Join(filepath.Dir(cfg), "maintenance.json")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"start", "--config", cfg, "--node", "nosuch", "--for", "1h", "--reason", "x"}, "--node nosuch: no such node in the configuration (nodes: provider, subscriber)"},
		{[]string{"start", "--config", cfg, "--node", "provider", "--for", "1h"}, "--reason TEXT is required"},
		{[]string{"start", "--config", cfg, "--node", "provider", "--reason", "x"}, "--for DURATION is required"},
		{[]string{"start", "--config", cfg, "--node", "provider", "--for", "100h", "--reason", "x"}, "longer than maintenance.max_duration (72h0m0s)"},
		{[]string{"start", "--config", cfg, "--all", "--node", "provider", "--for", "1h", "--reason", "x"}, "--all and --node exclude each other"},
		{[]string{"pause", "--config", cfg}, "usage: pglmon maintenance start"},
	} {
		code, _, errOut := pglmon(t, append([]string{"maintenance"}, c.args...)...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", c.args, code, errOut, exitUsage, c.want)
		}
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("a refused start wrote the file")
	}

	code, out, errOut := pglmon(t, "maintenance", "start", "--config", cfg, "--node", "subscriber", "--for", "2h", "--reason", "PG 16 upgrade")
	if code != 0 || !strings.Contains(out, "maintenance for subscriber until") {
		t.Fatalf("start: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = pglmon(t, "maintenance", "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, "subscriber") || !strings.Contains(out, "PG 16 upgrade") || !strings.Contains(out, " 2h0m ") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	_, out, _ = pglmon(t, "maintenance", "list", "--config", cfg, "--output", "json")
	var listed struct {
		Windows []struct{ Node, Reason, By string }
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed.Windows) != 1 || listed.Windows[0].Node != "subscriber" || !strings.Contains(listed.Windows[0].By, "@") {
		t.Errorf("list json: %v\n%s", err, out)
	}

	// status: the subscription and the node carry the window; the table says it.
	_, out, _ = pglmon(t, "status", "--config", cfg, "--output", "json")
	var st struct {
		Subscriptions []struct {
			Name        string
			Maintenance *struct{ Node, Reason string }
		}
		Nodes []struct {
			Name        string
			Maintenance *struct{ Reason string }
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Subscriptions) != 1 || st.Subscriptions[0].Maintenance == nil ||
		st.Subscriptions[0].Maintenance.Node != "subscriber" || len(st.Nodes) != 2 || st.Nodes[0].Maintenance != nil || st.Nodes[1].Maintenance == nil {
		t.Errorf("status json under maintenance: %v\n%s", err, out)
	}
	code, out, _ = pglmon(t, "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "Under maintenance") || !strings.Contains(out, "subscriber until") || !strings.Contains(out, "PG 16 upgrade") {
		t.Errorf("status table under maintenance (exit %d):\n%s", code, out)
	}

	code, out, _ = pglmon(t, "maintenance", "end", "--config", cfg, "--all")
	if code != 0 || !strings.Contains(out, "maintenance ended for subscriber") {
		t.Errorf("end: exit %d\n%s", code, out)
	}
	code, out, _ = pglmon(t, "maintenance", "end", "--config", cfg, "--node", "subscriber")
	if code != 0 || !strings.Contains(out, "nothing to end") {
		t.Errorf("end again: exit %d\n%s", code, out)
	}
	if _, out, _ = pglmon(t, "status", "--config", cfg); strings.Contains(out, "Under maintenance") {
		t.Errorf("status after the end still shows it:\n%s", out)
	}
}
