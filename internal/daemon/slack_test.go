package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/repair"
	slackpkg "github.com/pglmon/pglmon/internal/slack"
	"github.com/pglmon/pglmon/internal/slacktest"
)

const (
	plantedToken  = "xoxb-PLANTED-token-8d1f"
	plantedSecret = "PLANTED-signing-secret-77ab"
)

func slackConfig(fake *slacktest.Server, policy string) string {
	return policy + fmt.Sprintf(`slack:
  api_url: %q
  channel: "#db"
  bot_token: {env: PGLMON_TEST_SLACK_TOKEN}
  signing_secret: {env: PGLMON_TEST_SLACK_SECRET}
  approvers: [UAPPROVER]
`, fake.APIURL())
}

// repairButton finds the value of the repair button labelled label in the posted messages.
func repairButton(fake *slacktest.Server, label string) (value, messageTS string) {
	for _, r := range fake.Requests() {
		if r.Method != "chat.postMessage" && r.Method != "chat.update" {
			continue
		}
		var blocks []struct {
			Type     string
			Elements []struct {
				ActionID string `json:"action_id"`
				Value    string
				Text     struct{ Text string }
			}
		}
		json.Unmarshal([]byte(r.Form.Get("blocks")), &blocks)
		for _, b := range blocks {
			for _, e := range b.Elements {
				if e.ActionID == "pglmon_repair" && e.Text.Text == label {
					value, messageTS = e.Value, r.Form.Get("ts")
				}
			}
		}
	}
	return value, messageTS
}

func press(t *testing.T, r *running, body string, hdr http.Header) int {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+r.d.Addr()+"/slack/interactions", strings.NewReader(body))
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// newSlack starts a local Slack server for a daemon configured by
// slackConfig, with the planted bot token and signing secret in its
// environment.
func newSlack(t *testing.T) *slacktest.Server {
	t.Helper()
	t.Setenv("PGLMON_TEST_SLACK_TOKEN", plantedToken)
	t.Setenv("PGLMON_TEST_SLACK_SECRET", plantedSecret)
	fake := slacktest.New()
	t.Cleanup(fake.Close)
	return fake
}

func TestSlackIncidentAndRepairButton(t *testing.T) {
	ctx := context.Background()
	fake := newSlack(t)
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	policy := "  policy:\n    restart: approve\n    recreate-origin: approve\n    enable: approve\n"
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policy)+slackConfig(fake, ""), nil)
	r.waitMetric(t, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 10*time.Second)
	if err := p.LoseOrigin(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	var value, msgTS string
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		value, _ = repairButton(fake, "Recreate origin")
		return value != ""
	}); err != nil {
		t.Fatalf("no message with a Recreate origin button: %+v", fake.Requests())
	}
	posts := 0
	for _, q := range fake.Requests() {
		if q.Method == "chat.postMessage" && q.Form.Get("thread_ts") == "" {
			posts++
			msgTS = "1700000000.000001"
		}
	}
	if posts != 1 {
		t.Errorf("incident messages: got %d, want 1", posts)
	}
	sign := func(body string, at time.Time) http.Header { return slacktest.Sign(plantedSecret, body, at) }
	good := slacktest.ButtonPress("UAPPROVER", "pglmon_repair", value, msgTS, "1700000001.1", fake.ResponseURL())
	started := func() int {
		entries, _ := repair.Entries(r.audit)
		return countStarted(entries)
	}

	// Rejected, nothing run.
	for _, tc := range []struct {
		name string
		body string
		hdr  http.Header
		want int
	}{
		{"bad signature", good, sign(good+"x", time.Now()), 401},
		{"timestamp 6 minutes old", good, sign(good, time.Now().Add(-6*time.Minute)), 401},
		{"no signature", good, http.Header{}, 401},
		{"malformed payload", "payload=%7Bnot-json", sign("payload=%7Bnot-json", time.Now()), 400},
		{"oversized body", strings.Repeat("a", 70<<10), sign(strings.Repeat("a", 70<<10), time.Now()), 401},
	} {
		if got := press(t, r, tc.body, tc.hdr); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	stranger := slacktest.ButtonPress("USTRANGER", "pglmon_repair", value, msgTS, "1700000001.2", fake.ResponseURL())
	if got := press(t, r, stranger, sign(stranger, time.Now())); got != 200 {
		t.Errorf("unknown user: status %d", got)
	}
	if err := pgtest.Poll(ctx, 5*time.Second, func() bool {
		for _, q := range fake.Requests() {
			if q.Method == "response" && strings.Contains(q.Body, "not an approver") {
				return true
			}
		}
		return false
	}); err != nil {
		t.Error("no ephemeral refusal for an unknown user")
	}
	if n := started(); n != 0 {
		t.Fatalf("a rejected press ran %d repairs", n)
	}
	entries, _ := repair.Entries(r.audit)
	if len(entries) == 0 || entries[len(entries)-1].Actor != "slack:USTRANGER" || entries[len(entries)-1].Outcome != "refused" {
		t.Errorf("refusal not audited: %+v", entries)
	}

	// The approver's press runs the repair, once, even when replayed.
	if got := press(t, r, good, sign(good, time.Now())); got != 200 {
		t.Fatalf("approver: status %d", got)
	}
	press(t, r, good, sign(good, time.Now()))
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The recovery is told once the subscription has been ok for
	// diagnose.FlapWindow.
	if err := pgtest.Poll(ctx, diagnose.FlapWindow+30*time.Second, func() bool {
		var updated, startedReply, recovered bool
		for _, q := range fake.Requests() {
			updated = updated || (q.Method == "chat.update" && strings.Contains(q.Form.Get("blocks"), "recreate-origin by \\u003c@UAPPROVER\\u003e: success"))
			startedReply = startedReply || strings.Contains(q.Form.Get("text"), "started by <@UAPPROVER>")
			recovered = recovered || strings.Contains(q.Form.Get("text"), "recovered after")
		}
		return updated && startedReply && recovered
	}); err != nil {
		var texts []string
		for _, q := range fake.Requests() {
			texts = append(texts, q.Method+": "+q.Form.Get("text"))
		}
		t.Fatalf("message not updated with the outcome and events:\n%s", strings.Join(texts, "\n"))
	}
	if n := started(); n != 1 {
		t.Errorf("repairs run: got %d, want 1 (double click / replay)", n)
	}
	// The button of a cleared finding runs nothing.
	later := slacktest.ButtonPress("UAPPROVER", "pglmon_repair", value, msgTS, "1700000009.9", fake.ResponseURL())
	press(t, r, later, sign(later, time.Now()))
	if err := pgtest.Poll(ctx, 5*time.Second, func() bool {
		for _, q := range fake.Requests() {
			if q.Method == "response" && strings.Contains(q.Body, "Already healthy") {
				return true
			}
		}
		return false
	}); err != nil {
		t.Error("no 'already healthy' answer")
	}
	if n := started(); n != 1 {
		t.Errorf("cleared finding ran a repair: %d", n)
	}
	// No secret in anything sent to Slack or logged. The bot token itself
	// travels as the `token` credential field of each call, as Slack wants.
	for _, q := range fake.Requests() {
		content := q.Body
		if q.Method != "response" {
			f := q.Form
			f.Del("token")
			content = f.Encode()
		}
		for _, secret := range []string{plantedToken, plantedSecret, "password", "dbname="} {
			if strings.Contains(content, secret) {
				t.Errorf("%s request carries %q", q.Method, secret)
			}
		}
	}
	if strings.Contains(r.logs.String(), plantedToken) || strings.Contains(r.logs.String(), plantedSecret) {
		t.Error("a secret reached the log")
	}
}

// Slack is down (429, then 500) from before the break until the repair
// has finished and the subscription replicates again: the repair cannot
// have waited for Slack. The messages arrive once Slack answers again.
func TestSlackOutageNeverDelaysRepair(t *testing.T) {
	ctx := context.Background()
	fake := newSlack(t)
	var down atomic.Bool
	var mu sync.Mutex
	calls, failed := 0, 0
	fake.Fail = func(string) (int, int) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch {
		case calls <= 2:
			failed++
			return 429, 1
		case down.Load():
			failed++
			return 500, 0
		}
		return 0, 0
	}
	down.Store(true)
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), "")+slackConfig(fake, ""), nil)
	r.waitMetric(t, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 10*time.Second)
	broke := time.Now()
	if err := p.LoseOriginNow(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	// No wait for "down" here: pglmon may repair faster than a poll sees it.
	if err := r.waitRepair(t, "recreate-origin", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	healed := time.Since(broke)
	down.Store(false)
	mu.Lock()
	refused := failed
	mu.Unlock()
	if refused == 0 {
		t.Fatal("Slack was never asked while it was down: the test proves nothing")
	}
	if got := fake.Requests(); len(got) != 0 {
		t.Errorf("Slack accepted requests during its outage: %d", len(got))
	}
	// The messages arrive once Slack answers again.
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		for _, q := range fake.Requests() {
			if q.Method == "chat.postMessage" && strings.Contains(q.Form.Get("text"), "automatic recreate-origin: success") {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("messages never arrived: %+v", fake.Requests())
	}
	r.waitMetric(t, `^pglmon_notifications_total\{result="retried"\} [1-9]`, false, 5*time.Second)
	t.Logf("healed %s after the break while Slack refused %d requests (429, then 500)", healed.Round(time.Millisecond), refused)
}

func TestSlackSocketModeButton(t *testing.T) {
	t.Setenv("PGLMON_TEST_SLACK_TOKEN", plantedToken)
	t.Setenv("PGLMON_TEST_SLACK_APP_TOKEN", "xapp-PLANTED-app-token")
	ctx := context.Background()
	fake := slacktest.New()
	defer fake.Close()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	policy := "  policy:\n    restart: approve\n    recreate-origin: approve\n    enable: approve\n"
	body := pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policy) + fmt.Sprintf(`slack:
  api_url: %q
  channel: "#db"
  mode: socket
  bot_token: {env: PGLMON_TEST_SLACK_TOKEN}
  app_token: {env: PGLMON_TEST_SLACK_APP_TOKEN}
  approvers: [UAPPROVER]
`, fake.APIURL())
	r := start(t, body, nil)
	if code, _ := r.get(t, "/slack/interactions"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("socket mode serves the HTTP interaction endpoint (status %d)", code)
	}
	if err := pgtest.Poll(ctx, 10*time.Second, fake.Connected); err != nil {
		t.Fatal("pglmon never connected over socket mode")
	}
	r.waitMetric(t, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 10*time.Second)
	if err := p.LoseOrigin(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	var value string
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		value, _ = repairButton(fake, "Recreate origin")
		return value != ""
	}); err != nil {
		t.Fatal("no message with a button")
	}
	if err := fake.SendInteractive("env-1", slacktest.ButtonPayload("UAPPROVER", "pglmon_repair", value, "1700000000.000001", "1700000002.1")); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 5*time.Second, func() bool { return fake.Acked("env-1") }); err != nil {
		t.Fatal("envelope not acknowledged")
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	entries, _ := repair.Entries(r.audit)
	if countStarted(entries) != 1 || entries[0].Actor != "slack:UAPPROVER" {
		t.Fatalf("audit: %+v", entries)
	}
}

// With repair.policy.drop-orphan-slot: approve, the node message of an
// orphan slot has a "Drop slot" button; an approver's press drops that slot
// (re-checked, locked, audited) and nothing else, and the thread says so.
// A press after the policy went back to off is refused.
func TestSlackDropOrphanSlotButton(t *testing.T) {
	ctx := context.Background()
	fake := newSlack(t)
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	p.MustConverge(t, time.Minute)
	slot := "pgl_" + p.Provider.Name + "_orphan"
	if err := p.Provider.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pglogical_output')", slot); err != nil {
		t.Fatal(err)
	}
	exists := func(name string) bool {
		var n int
		if err := p.Provider.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", []any{&n}, name); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	t.Cleanup(func() {
		_ = p.Provider.Exec(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
	})
	policy := "  policy:\n    restart: off\n    recreate-origin: off\n    enable: off\n    drop-orphan-slot: approve\n"
	cfgBody := pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policy) + slackConfig(fake, "")
	r := start(t, cfgBody, nil)
	var value, msgTS string
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		value, msgTS = repairButton(fake, "Drop slot "+slot)
		return value != ""
	}); err != nil {
		t.Fatalf("no Drop slot button: %+v", fake.Requests())
	}
	var v struct{ D, L, R, F string }
	if err := json.Unmarshal([]byte(value), &v); err != nil || v.D != "provider" || v.L != slot || v.R != "drop-orphan-slot" || v.F != "orphan_slot" {
		t.Fatalf("button value %s", value)
	}
	if msgTS == "" {
		msgTS = "1700000000.000001"
	}
	sign := func(body string) http.Header { return slacktest.Sign(plantedSecret, body, time.Now()) }

	// A stranger's press does nothing.
	stranger := slacktest.ButtonPress("USTRANGER", "pglmon_repair", value, msgTS, "1700000002.1", fake.ResponseURL())
	if got := press(t, r, stranger, sign(stranger)); got != 200 {
		t.Fatalf("stranger: status %d", got)
	}
	// The approver's press drops it.
	good := slacktest.ButtonPress("UAPPROVER", "pglmon_repair", value, msgTS, "1700000002.2", fake.ResponseURL())
	if got := press(t, r, good, sign(good)); got != 200 {
		t.Fatalf("approver: status %d", got)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return !exists(slot) }); err != nil {
		t.Fatal("the orphan slot is still there")
	}
	subSlot, err := p.SlotName(ctx, p.Sub())
	if err != nil || !exists(subSlot) {
		t.Fatalf("the subscription's own slot %q is gone: %v", subSlot, err)
	}
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		for _, q := range fake.Requests() {
			if q.Method == "chat.postMessage" && strings.Contains(q.Form.Get("text"), "drop-orphan-slot by <@UAPPROVER>: success") {
				return true
			}
		}
		return false
	}); err != nil {
		t.Errorf("no thread reply with the outcome: %+v", fake.Requests())
	}
	entries, _ := repair.Entries(r.audit)
	var ran, refused bool
	for _, e := range entries {
		if e.Phase == "finished" && e.Remedy == "drop-orphan-slot" && e.Slot == slot && e.Actor == "slack:UAPPROVER" && e.Outcome == repair.ResultSuccess {
			ran = true
		}
		if e.Actor == "slack:USTRANGER" && e.Outcome == "refused" {
			refused = true
		}
	}
	if !ran || !refused {
		t.Errorf("audit: approver's drop %v, stranger refused %v: %+v", ran, refused, entries)
	}

	// Another orphan, then the policy goes back to off: the old button is refused.
	second := slot + "2"
	if err := p.Provider.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pglogical_output')", second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Provider.Exec(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", second)
	})
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		value, _ = repairButton(fake, "Drop slot "+second)
		return value != ""
	}); err != nil {
		t.Fatalf("no Drop slot button for the second orphan: %+v", fake.Requests())
	}
	if err := os.WriteFile(r.path, []byte(strings.Replace(cfgBody, "drop-orphan-slot: approve", "drop-orphan-slot: off", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r.reload <- struct{}{}
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool { return strings.Contains(r.logs.String(), "configuration reloaded") }); err != nil {
		t.Fatal("the configuration was not reloaded")
	}
	late := slacktest.ButtonPress("UAPPROVER", "pglmon_repair", value, msgTS, "1700000002.3", fake.ResponseURL())
	if got := press(t, r, late, sign(late)); got != 200 {
		t.Fatalf("late press: status %d", got)
	}
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		for _, q := range fake.Requests() {
			if q.Method == "response" && strings.Contains(q.Body, "repair.policy.drop-orphan-slot is") {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no refusal after the policy went off: %+v", fake.Requests())
	}
	if !exists(second) {
		t.Error("the second orphan was dropped although the policy is off")
	}
}

// A refused change: apply_error is for a person, so the daemon restarts
// nothing, and the message carries the plan and a "Restart (cause fixed)"
// button. Once the person has fixed the cause, the button restarts the
// subscription at once instead of after pglogical's backoff, and the row
// arrives.
func TestSlackRestartAfterFixButton(t *testing.T) {
	ctx := context.Background()
	fake := newSlack(t)
	p, fix := refusedRow(t)
	policy := "  policy:\n    restart: approve\n"
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policy)+slackConfig(fake, ""), nil)
	var value, msgTS string
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		value, msgTS = repairButton(fake, slackpkg.AfterFixLabel)
		return value != ""
	}); err != nil {
		t.Fatalf("no message with a %q button: %+v", slackpkg.AfterFixLabel, fake.Requests())
	}
	if !strings.Contains(value, `"f":"apply_error"`) || !strings.Contains(value, `"r":"restart"`) {
		t.Errorf("button value %s", value)
	}
	if msgTS == "" {
		msgTS = "1700000000.000001"
	}
	// The person fixes the cause, then presses; while pglogical backs off
	// (down for longer than its 5 s between starts), so that the press does
	// not land on a start's replicating second, nor pglogical restart the
	// fixed worker itself first.
	downSince := time.Now()
	if err := pgtest.Poll(ctx, 90*time.Second, func() bool {
		if st, err := p.Status(ctx, p.Sub()); err != nil || st != "down" {
			downSince = time.Now()
		}
		return time.Since(downSince) >= 12*time.Second
	}); err != nil {
		// Not seen here (it backs off 180 s after two failed starts), but
		// then pglogical's own start could not be told from the button's.
		t.Skip("pglogical started the failing worker again every few seconds for 90 s, never backing off")
	}
	fix()
	good := slacktest.ButtonPress("UAPPROVER", "pglmon_repair", value, msgTS, "1700000003.1", fake.ResponseURL())
	if got := press(t, r, good, slacktest.Sign(plantedSecret, good, time.Now())); got != 200 {
		t.Fatalf("approver: status %d", got)
	}
	var entries []repair.Entry
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		entries, _ = repair.Entries(r.audit)
		for _, e := range entries {
			if e.Phase == "finished" && e.Remedy == diagnose.RemedyRestart && e.Actor == "slack:UAPPROVER" {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no restart finished: %+v", entries)
	}
	for _, e := range entries {
		if e.Phase == "finished" && e.Actor == "slack:UAPPROVER" && e.Outcome != "success" {
			t.Errorf("restart: %s %s", e.Outcome, e.Reason)
		}
		if e.Actor == "auto" {
			t.Errorf("the daemon repaired by itself: %+v", e)
		}
	}
	var n int
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id = 11", []any{&n}) == nil && n == 1
	}); err != nil {
		t.Error("the refused row never arrived after the restart")
	}
}
