package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type auditJSON struct {
	AuditLog string `json:"audit_log"`
	Attempts []struct {
		ID, Actor, Remedy, Subscription, Slot, Outcome, Reason string
		ResumedBy                                              []string `json:"resumed_by"`
		Started                                                time.Time
		Finished                                               *time.Time
		Steps                                                  []struct{ Action, Result, SQL string }
	}
	SkippedLines []int `json:"skipped_lines"`
}

func auditOutput(t *testing.T, args ...string) (int, auditJSON, string) {
	t.Helper()
	code, out, errOut := pglmon(t, append(append([]string{"audit"}, args...), "--output", "json")...)
	var a auditJSON
	if code == 0 {
		if err := json.Unmarshal([]byte(out), &a); err != nil {
			t.Fatalf("audit output is not JSON: %v\n%s", err, out)
		}
	}
	return code, a, errOut
}

// The log as pglmon leaves it after a day of work and a crash: lines of
// several attempts interleaved, one interrupted for good, one interrupted
// and resumed by the daemon, one refused, a drop-orphan-slot, and the torn
// last line of a write a power cut stopped.
func TestAuditReadsTheLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.jsonl")
	now := time.Now().UTC()
	at := func(ago time.Duration) string { return now.Add(-ago).Format(time.RFC3339Nano) }
	step := `{"node":"sub1","action":"disable the subscription","sql":"SELECT pglogical.alter_subscription_disable($1, true)","args":["sub_a"],"result":"%s","duration_ms":9}`
	lines := []string{
		`{"time":"` + at(50*time.Hour) + `","id":"aa11","phase":"started","actor":"auto","remedy":"restart","subscription":"sub_old","subscriber":"sub1","duration_ms":0}`,
		`{"time":"` + at(49*time.Hour) + `","id":"aa11","phase":"finished","actor":"auto","remedy":"restart","subscription":"sub_old","subscriber":"sub1","outcome":"success","duration_ms":1200}`,
		`{"time":"` + at(3*time.Hour) + `","id":"bb22","phase":"started","actor":"slack:U1","remedy":"recreate-origin","subscription":"sub_a","subscriber":"sub1","provider":"prov","slot":"pgl_a","steps":[` + strings.ReplaceAll(step, "%s", "not-run") + `],"duration_ms":0,"host":"mon-1"}`,
		`{"time":"` + at(2*time.Hour) + `","id":"bb22","phase":"started","actor":"auto","remedy":"recreate-origin","subscription":"sub_a","subscriber":"sub1","provider":"prov","slot":"pgl_a","duration_ms":0,"host":"mon-2"}`,
		`{"time":"` + at(2*time.Hour) + `","id":"cc33","phase":"finished","actor":"cli:bob","remedy":"restart","subscription":"sub_b","subscriber":"sub1","outcome":"refused","reason":"finding stuck_down no longer holds","duration_ms":40}`,
		`{"time":"` + at(2*time.Hour-time.Second) + `","id":"bb22","phase":"finished","actor":"auto","remedy":"recreate-origin","subscription":"sub_a","subscriber":"sub1","provider":"prov","slot":"pgl_a","steps":[` + strings.ReplaceAll(step, "%s", "ok") + `],"outcome":"success","duration_ms":1500,"replicating_after_ms":1100,"host":"mon-2"}`,
		`{"time":"` + at(time.Hour) + `","id":"dd44","phase":"finished","actor":"cli:alice","remedy":"drop-orphan-slot","provider":"prov","slot":"pgl_gone","outcome":"success","duration_ms":20}`,
		`{"time":"` + at(time.Minute) + `","id":"ee55","phase":"started","actor":"auto","remedy":"restart","subscription":"sub_b","subscriber":"sub1","duration_ms":0}`,
		`{"time":"` + at(30*time.Second) + `","id":"ee5`,
	}
	if err := os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "pglmon.yaml")
	if err := os.WriteFile(cfg, []byte("nodes:\n  - name: sub1\n    dsn: host=127.0.0.1 port=1\nrepair:\n  audit_log: "+log+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	code, a, errOut := auditOutput(t, "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "line 9 is not an audit entry") || len(a.SkippedLines) != 1 || a.SkippedLines[0] != 9 {
		t.Errorf("torn line: stderr %q, skipped %v", errOut, a.SkippedLines)
	}
	var got []string
	for _, x := range a.Attempts {
		got = append(got, x.ID+" "+x.Outcome)
	}
	if want := "aa11 success, bb22 success, cc33 refused, dd44 success, ee55 interrupted"; strings.Join(got, ", ") != want {
		t.Errorf("attempts: got %s, want %s", strings.Join(got, ", "), want)
	}
	bb := a.Attempts[1]
	if bb.Actor != "slack:U1" || len(bb.ResumedBy) != 1 || bb.ResumedBy[0] != "auto" || len(bb.Steps) != 1 || bb.Steps[0].Result != "ok" || bb.Finished == nil {
		t.Errorf("resumed attempt: got %+v", bb)
	}

	// Filters: the last day, one subscription, one slot.
	_, a, _ = auditOutput(t, "--config", cfg, "--since", "1d")
	if len(a.Attempts) != 4 {
		t.Errorf("--since 1d: got %d attempts, want 4", len(a.Attempts))
	}
	_, a, _ = auditOutput(t, "--config", cfg, "--since", now.Add(-90*time.Minute).Format(time.RFC3339), "--subscription", "sub_b")
	if len(a.Attempts) != 1 || a.Attempts[0].ID != "ee55" {
		t.Errorf("--since TIME --subscription sub_b: got %+v", a.Attempts)
	}
	_, a, _ = auditOutput(t, "--config", cfg, "--subscription", "pgl_gone")
	if len(a.Attempts) != 1 || a.Attempts[0].Remedy != "drop-orphan-slot" {
		t.Errorf("--subscription SLOT: got %+v", a.Attempts)
	}

	// The table: one line per attempt, the interrupted one says what happens next.
	code, out, _ := pglmon(t, "audit", "--config", cfg)
	if code != 0 {
		t.Errorf("audit: exit %d", code)
	}
	for _, want := range []string{"STARTED", "slot pgl_gone on prov", "resumed by auto", "the next pglmon run or pglmon repair of sub_b finishes it",
		"5 attempts: 3 success, 1 refused, 1 interrupted"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// One attempt in detail, by a prefix of its ID.
	code, out, _ = pglmon(t, "audit", "--config", cfg, "--id", "bb")
	if code != 0 || !strings.Contains(out, "Attempt bb22: recreate-origin of sub_a on sub1") ||
		!strings.Contains(out, "1. disable the subscription on sub1: ok (9 ms)") || !strings.Contains(out, `pglogical.alter_subscription_disable($1, true)  ["sub_a"]`) ||
		!strings.Contains(out, "replicating 1.1s after the first step") {
		t.Errorf("--id bb: exit %d\n%s", code, out)
	}
	if code, _, errOut := pglmon(t, "audit", "--config", cfg, "--id", "zz"); code != 1 || !strings.Contains(errOut, "no attempt with ID zz") {
		t.Errorf("--id zz: exit %d, %s", code, errOut)
	}
	if code, _, errOut := pglmon(t, "audit", "--config", cfg, "--since", "yesterday"); code != exitUsage || !strings.Contains(errOut, `--since "yesterday"`) {
		t.Errorf("--since yesterday: exit %d, %s", code, errOut)
	}

	// No log yet: no attempts, not an error.
	os.Remove(log)
	if code, out, _ := pglmon(t, "audit", "--config", cfg); code != 0 || !strings.Contains(out, "no repair attempts") {
		t.Errorf("no log: exit %d\n%s", code, out)
	}
}

// An attempt without "finished" line is running when the process that
// wrote its last line runs on this host still (and ran already then); it
// was interrupted when that process is gone or is a later one under the
// same PID; written on another host, it cannot be told.
func TestAuditTellsARunningAttemptFromAnInterruptedOne(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.jsonl")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	line := func(id string, at time.Time, host string, pid int) string {
		return fmt.Sprintf(`{"time":%q,"id":%q,"phase":"started","actor":"auto","remedy":"restart","subscription":"sub_%s","subscriber":"sub1","duration_ms":0,"host":%q,"pid":%d}`,
			at.Format(time.RFC3339Nano), id, id, host, pid)
	}
	lines := []string{
		line("ff66", now, host, os.Getpid()),                        // this test's process: running
		line("gg77", now, host, gone.Process.Pid),                   // a process that exited
		line("hh88", now.Add(-24*365*time.Hour), host, os.Getpid()), // a PID used again since
		line("ii99", now, "another-host", os.Getpid()),              // elsewhere: not known
	}
	if err := os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "pglmon.yaml")
	if err := os.WriteFile(cfg, []byte("nodes:\n  - name: sub1\n    dsn: host=127.0.0.1 port=1\nrepair:\n  audit_log: "+log+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, a, errOut := auditOutput(t, "--config", cfg)
	var got []string
	for _, x := range a.Attempts {
		got = append(got, x.ID+" "+x.Outcome)
	}
	if want := "hh88 interrupted, ff66 running, gg77 interrupted, ii99 interrupted"; strings.Join(got, ", ") != want {
		t.Fatalf("got %s, want %s (%s)", strings.Join(got, ", "), want, errOut)
	}
	code, out, _ := pglmon(t, "audit", "--config", cfg)
	for _, want := range []string{
		fmt.Sprintf("running now: process %d of this host wrote its last line and still runs", os.Getpid()),
		fmt.Sprintf("pglmon stopped in the middle of it (process %d of this host, which wrote its last line, no longer runs); the next pglmon run or pglmon repair of sub_gg77 finishes it", gone.Process.Pid),
		"still running, or pglmon stopped in the middle of it; the next pglmon run or pglmon repair of sub_ii99 finishes it",
		"4 attempts: 3 interrupted, 1 running",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d; the table lacks %q:\n%s", code, want, out)
		}
	}
}
