package slack

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/maintenance"
	"github.com/pglmon/pglmon/internal/repair"
	"github.com/pglmon/pglmon/internal/slacktest"
)

// countingExecutor stands in for the daemon's executor in the HTTP-layer
// tests; the daemon's tests press buttons against real pglogical.
type countingExecutor struct{ n atomic.Int64 }

func (c *countingExecutor) Execute(context.Context, repair.Request) repair.Outcome {
	c.n.Add(1)
	return repair.Outcome{Result: repair.ResultSuccess}
}

func brokenReport() *diagnose.Report {
	return &diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber", Health: diagnose.Critical,
		Findings: []diagnose.Finding{{Code: "origin_missing", Severity: diagnose.Critical, Remedy: "recreate-origin"}}}}}
}

const value = `{"s":"sub_0","n":"subscriber","r":"recreate-origin","f":"origin_missing"}`

func newHandler(exec Executor) *Interactions {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := NewNotifier(nil, config.Slack{Channel: "#c"}, func() map[string]string { return nil }, log, nil)
	return &Interactions{Secret: "s3cret", Approvers: map[string]bool{"UOK": true}, Exec: exec,
		Latest: brokenReport, Notifier: n, Log: log, Ctx: context.Background(), HTTP: http.DefaultClient}
}

func FuzzInteractions(f *testing.F) {
	good := slacktest.ButtonPress("UOK", ActionRepair, value, "1.1", "2.2", "")
	f.Add(good, int64(0), true)
	f.Add(good, int64(-400), true)
	f.Add("payload=%7B%22type%22%3A%22block_actions%22%7D", int64(0), true)
	f.Add("payload=", int64(0), false)
	f.Add(strings.Repeat("x", 100), int64(0), true)
	f.Fuzz(func(t *testing.T, body string, skew int64, sign bool) {
		exec := &countingExecutor{}
		h := newHandler(exec)
		req := httptest.NewRequest("POST", "/slack/interactions", strings.NewReader(body))
		if sign {
			req.Header = slacktest.Sign("s3cret", body, time.Now().Add(time.Duration(skew)*time.Second))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		h.Wait()
		valid := sign && skew > -300 && skew < 300 && len(body) <= MaxBody
		if !valid && w.Code != http.StatusUnauthorized {
			t.Fatalf("unsigned, stale or oversized request answered %d", w.Code)
		}
		if exec.n.Load() > 0 && !valid {
			t.Fatal("a repair ran for an invalid request")
		}
		if exec.n.Load() > 1 {
			t.Fatal("one press ran more than one repair")
		}
	})
}

func TestFlappingGivesOneMessageWithACounter(t *testing.T) {
	fake := slacktest.New()
	defer fake.Close()
	cfg := config.Slack{APIURL: fake.APIURL(), Channel: "#c"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := NewNotifier(NewClient(cfg, "xoxb-test"), cfg, func() map[string]string { return map[string]string{"recreate-origin": "approve"} }, log, nil)
	n.settle = 0 // each ok is a recovery here; TestCrashLoopIsOneIncident has the settling
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	ok := &diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber", Health: diagnose.OK, Findings: []diagnose.Finding{}}}}
	for range 5 {
		n.Observe(*brokenReport())
		n.Observe(*ok)
	}
	deadline := time.Now().Add(10 * time.Second)
	var posts, counter int
	for time.Now().Before(deadline) {
		posts, counter = 0, 0
		for _, q := range fake.Requests() {
			if q.Method == "chat.postMessage" && q.Form.Get("thread_ts") == "" {
				posts++
			}
			if strings.Contains(q.Form.Get("blocks"), "4 times") {
				counter++
			}
		}
		if counter > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the fake server's record
	}
	if posts != 1 || counter == 0 {
		t.Fatalf("flapping: %d incident messages (want 1), counter shown %d times", posts, counter)
	}
}

// In a crash loop pglogical says replicating for about a second each time
// it starts the apply worker again. A cycle that lands in that second is
// not a recovery: the recovery is told once the subscription has stayed ok
// for settle, and says how long the incident lasted until it was ok.
func TestCrashLoopIsOneIncident(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Slack{Channel: "#c"}
	n := NewNotifier(nil, cfg, func() map[string]string { return nil }, log, nil)
	ok := diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber", Health: diagnose.OK, Findings: []diagnose.Finding{}}}}
	start := time.Now()
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	n.observeAt(at(0), *brokenReport())
	if got := len(n.queue); got != 1 {
		t.Fatalf("the incident queued %d messages, want 1", got)
	}
	// Ok for a cycle, every other cycle, for two minutes: nothing to tell.
	for s := 10; s < 120; s += 20 {
		n.observeAt(at(s), ok)
		n.observeAt(at(s+10), *brokenReport())
	}
	if got := len(n.queue); got != 1 {
		t.Fatalf("the crash loop queued %d more messages", got-1)
	}
	// Ok for good: told once ok for settle, not at the first ok cycle.
	n.observeAt(at(130), ok)
	if got := len(n.queue); got != 1 {
		t.Fatalf("the first ok cycle queued %d messages", got-1)
	}
	n.observeAt(at(140), ok)
	if got := len(n.queue); got != 1 {
		t.Fatalf("ok for 10 s (settle %s) queued %d messages", n.settle, got-1)
	}
	n.observeAt(at(150), ok)
	if got := len(n.queue); got != 3 {
		t.Fatalf("ok for 20 s queued %d messages, want an update and a reply", got-1)
	}
	<-n.queue
	<-n.queue
	if reply := (<-n.queue).reply; reply != ":large_green_circle: recovered after 2m10s" {
		t.Errorf("reply: %q", reply)
	}
	n.observeAt(at(160), ok)
	if got := len(n.queue); got != 0 {
		t.Errorf("after the recovery, %d more messages", got)
	}
}

func TestQuietWarningIsNotPosted(t *testing.T) {
	fake := slacktest.New()
	defer fake.Close()
	cfg := config.Slack{APIURL: fake.APIURL(), Channel: "#c", WarningQuiet: config.Duration(time.Hour)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := NewNotifier(NewClient(cfg, "xoxb-test"), cfg, func() map[string]string { return nil }, log, nil)
	warn := diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "s", Subscriber: "n", Health: diagnose.Warning,
		Findings: []diagnose.Finding{{Code: "subscription_down", Severity: diagnose.Warning}}}}}
	n.Observe(warn)
	if got := len(n.queue); got != 0 {
		t.Fatalf("a quiet warning queued %d messages", got)
	}
	crit := warn
	crit.Subscriptions = []diagnose.Subscription{{Name: "s", Subscriber: "n", Health: diagnose.Critical,
		Findings: []diagnose.Finding{{Code: "stuck_down", Severity: diagnose.Critical}}}}
	n.Observe(crit)
	if got := len(n.queue); got != 1 {
		t.Fatalf("escalation queued %d messages, want 1", got)
	}
}

func TestApproverGroups(t *testing.T) {
	fake := slacktest.New()
	defer fake.Close()
	fake.Groups = map[string][]string{"SDBA": {"UGROUPIE"}}
	exec := &countingExecutor{}
	h := newHandler(exec)
	cfg := config.Slack{APIURL: fake.APIURL()}
	h.Groups = &Groups{API: NewClient(cfg, "xoxb-test"), IDs: []string{"SDBA"}, TTL: time.Minute, Log: h.Log}
	for _, tc := range []struct {
		user string
		want int64
	}{{"UOUTSIDER", 0}, {"UGROUPIE", 1}} {
		body := slacktest.ButtonPress(tc.user, ActionRepair, value, "1.1", "2."+tc.user, "")
		req := httptest.NewRequest("POST", "/slack/interactions", strings.NewReader(body))
		req.Header = slacktest.Sign("s3cret", body, time.Now())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		h.Wait()
		if w.Code != 200 || exec.n.Load() != tc.want {
			t.Errorf("%s: status %d, repairs %d, want %d", tc.user, w.Code, exec.n.Load(), tc.want)
		}
	}
}

// A node finding (here an RDS parameter group that lost pglogical) gets its
// own message, and a reply when it clears; an unreachable node does not (its
// subscriptions tell it).
func TestNodeFindingsGetTheirOwnMessage(t *testing.T) {
	fake := slacktest.New()
	defer fake.Close()
	cfg := config.Slack{APIURL: fake.APIURL(), Channel: "#c"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := NewNotifier(NewClient(cfg, "xoxb-test"), cfg, func() map[string]string { return nil }, log, nil)
	n.settle = 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	bad := diagnose.Report{Nodes: []diagnose.Node{
		{Name: "provider", Up: true, Findings: []diagnose.Finding{{Code: diagnose.CodeRDSParametersMissing, Severity: diagnose.Warning, Human: true,
			Message: "RDS instance prov, parameter group pg15: shared_preload_libraries lacks pglogical"}}},
		{Name: "subscriber", Findings: []diagnose.Finding{{Code: diagnose.CodeNodeUnreachable, Severity: diagnose.Critical}}},
	}}
	n.Observe(bad)
	var posts, replies []slacktest.Request
	if err := poll(10*time.Second, func() bool {
		for _, q := range fake.Requests() {
			if q.Method == "chat.postMessage" {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal("no message for the node finding")
	}
	good := diagnose.Report{Nodes: []diagnose.Node{{Name: "provider", Up: true}, {Name: "subscriber", Up: true}}}
	n.Observe(good)
	if err := poll(10*time.Second, func() bool {
		posts, replies = nil, nil
		for _, q := range fake.Requests() {
			if q.Method != "chat.postMessage" {
				continue
			}
			if q.Form.Get("thread_ts") == "" {
				posts = append(posts, q)
			} else {
				replies = append(replies, q)
			}
		}
		return len(posts) >= 1 && len(replies) >= 1
	}); err != nil {
		t.Fatalf("posts %d, replies %d", len(posts), len(replies))
	}
	if len(posts) != 1 || !strings.Contains(posts[0].Form.Get("text"), "pglmon node provider is warning") ||
		!strings.Contains(posts[0].Form.Get("blocks"), "rds_parameters_missing") {
		t.Errorf("node message: %+v", posts)
	}
	if !strings.Contains(replies[0].Form.Get("text"), "recovered after") {
		t.Errorf("reply: %q", replies[0].Form.Get("text"))
	}
	for _, q := range fake.Requests() {
		if strings.Contains(q.Form.Get("text"), "subscriber") {
			t.Errorf("an unreachable node got its own message: %q", q.Form.Get("text"))
		}
	}
}

// poll checks cond every 20 ms until it holds or timeout passes.
func poll(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		time.Sleep(20 * time.Millisecond) // polling the fake server's record
	}
	return nil
}

// An orphan slot's node message has a "Drop slot" button only when
// repair.policy.drop-orphan-slot is approve; other node findings never do.
func TestDropSlotButtonOnlyWhenApproved(t *testing.T) {
	nd := diagnose.Node{Name: "provider", Findings: []diagnose.Finding{
		{Code: diagnose.CodeOrphanSlot, Severity: diagnose.Warning, Remedy: diagnose.RemedyDropOrphanSlot, Human: true, Slot: "pgl_db_x"},
		{Code: diagnose.CodeStorageLow, Severity: diagnose.Critical, Human: true}}}
	in := &incident{since: time.Now(), health: diagnose.Critical}
	buttons := func(policy map[string]string) []string {
		var out []string
		for _, b := range nodeBlocks(nd, in, policy, "") {
			if a, ok := b.(*slack.ActionBlock); ok {
				for _, e := range a.Elements.ElementSet {
					if btn, ok := e.(*slack.ButtonBlockElement); ok {
						out = append(out, btn.Text.Text+" "+btn.Value)
					}
				}
			}
		}
		return out
	}
	for _, p := range []map[string]string{nil, {"restart": "auto"}, {"drop-orphan-slot": "off"}} {
		if got := buttons(p); len(got) != 0 {
			t.Errorf("policy %v: buttons %q", p, got)
		}
	}
	got := buttons(map[string]string{"drop-orphan-slot": "approve"})
	if want := `Drop slot pgl_db_x {"d":"provider","l":"pgl_db_x","r":"drop-orphan-slot","f":"orphan_slot"}`; len(got) != 1 || got[0] != want {
		t.Errorf("approve: buttons %q, want %q", got, want)
	}
}

// Under a maintenance window nothing is posted, updated or recovered;
// when it ends, what holds then is told.
func TestMaintenanceHoldsMessages(t *testing.T) {
	cfg := config.Slack{APIURL: "http://127.0.0.1:1/", Channel: "#c"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := NewNotifier(NewClient(cfg, "xoxb-test"), cfg, func() map[string]string { return nil }, log, nil)
	n.settle = 0
	w := &maintenance.Window{Node: "subscriber", Until: time.Now().Add(time.Hour), Reason: "upgrade"}
	under := func(r diagnose.Report) diagnose.Report {
		r.Subscriptions, r.Nodes = slices.Clone(r.Subscriptions), slices.Clone(r.Nodes)
		for i := range r.Subscriptions {
			r.Subscriptions[i].Maintenance = w
		}
		for i := range r.Nodes {
			r.Nodes[i].Maintenance = w
		}
		return r
	}
	broken := *brokenReport()
	broken.Nodes = []diagnose.Node{{Name: "subscriber", Findings: []diagnose.Finding{{Code: "orphan_slot", Severity: diagnose.Warning, Slot: "s1"}}}}
	n.Observe(under(broken))
	if got := len(n.queue); got != 0 {
		t.Fatalf("under maintenance, %d messages queued", got)
	}
	// Maintenance over, still broken: told (the subscription, and the node's finding).
	n.Observe(broken)
	if got := len(n.queue); got != 2 {
		t.Fatalf("after the window, %d messages queued, want 2", got)
	}
	// Healed under a new window: no recovery until it ends.
	ok := diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber", Health: diagnose.OK, Findings: []diagnose.Finding{}}},
		Nodes: []diagnose.Node{{Name: "subscriber"}}}
	n.Observe(under(ok))
	if got := len(n.queue); got != 2 {
		t.Fatalf("a recovery under maintenance queued %d more", got-2)
	}
	n.Observe(ok)
	if got := len(n.queue); got <= 2 {
		t.Fatal("the recovery was not told after the window")
	}
}

// A finding for a person whose plan ends in a restart once the cause is
// fixed (apply_error, schema_mismatch, provider_connection_failed,
// not_streaming) gets a "Restart (cause fixed)" button beside
// its plan when repair.policy.restart allows a button; other findings for
// a person (slot_missing) get none.
func TestRestartAfterFixButton(t *testing.T) {
	sub := func(f diagnose.Finding) diagnose.Subscription {
		return diagnose.Subscription{Name: "sub_0", Subscriber: "subscriber", Provider: "provider", Health: diagnose.Critical,
			Status: "down", Enabled: true, SlotName: "pgl_x", Findings: []diagnose.Finding{f}}
	}
	in := &incident{since: time.Now(), health: diagnose.Critical}
	render := func(s diagnose.Subscription, policy map[string]string) (buttons []string, text string) {
		for _, b := range incidentBlocks(s, in, policy, "") {
			switch b := b.(type) {
			case *slack.ActionBlock:
				for _, e := range b.Elements.ElementSet {
					if btn, ok := e.(*slack.ButtonBlockElement); ok && btn.ActionID == ActionRepair {
						buttons = append(buttons, btn.Text.Text+" "+btn.Value)
						if btn.Confirm == nil || !strings.Contains(btn.Confirm.Text.Text, "Only once the cause of") || len(btn.Confirm.Text.Text) > 300 {
							t.Errorf("confirmation: %+v", btn.Confirm)
						}
					}
				}
			case *slack.SectionBlock:
				if b.Text != nil {
					text += b.Text.Text + "\n"
				}
			}
		}
		return buttons, text
	}
	for _, code := range []string{diagnose.CodeApplyError, diagnose.CodeSchemaMismatch, diagnose.CodeProviderConnectFailed, diagnose.CodeNotStreaming} {
		s := sub(diagnose.Finding{Code: code, Severity: diagnose.Critical, Human: true, Message: "m"})
		got, text := render(s, map[string]string{"restart": "approve"})
		want := `Restart (cause fixed) {"s":"sub_0","n":"subscriber","r":"restart","f":"` + code + `"}`
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s, restart approve: buttons %q, want %q", code, got, want)
		}
		if !strings.Contains(text, "What a person would do") {
			t.Errorf("%s: the plan is not shown beside the button", code)
		}
		if got, _ := render(s, map[string]string{"restart": "auto"}); len(got) != 1 {
			t.Errorf("%s, restart auto: buttons %q", code, got)
		}
		for _, p := range []map[string]string{nil, {"restart": "off"}, {"enable": "approve"}} {
			if got, _ := render(s, p); len(got) != 0 {
				t.Errorf("%s, policy %v: buttons %q", code, p, got)
			}
		}
	}
	// A schema_mismatch that has not stopped the subscription yet is a warning: no restart to offer.
	if got, _ := render(sub(diagnose.Finding{Code: diagnose.CodeSchemaMismatch, Severity: diagnose.Warning, Human: true}), map[string]string{"restart": "approve"}); len(got) != 0 {
		t.Errorf("schema_mismatch warning: buttons %q", got)
	}
	for _, code := range []string{diagnose.CodeSlotMissing, diagnose.CodeSlotInUse, diagnose.CodeApplyBlocked} {
		if got, _ := render(sub(diagnose.Finding{Code: code, Severity: diagnose.Critical, Human: true}), map[string]string{"restart": "approve"}); len(got) != 0 {
			t.Errorf("%s: buttons %q", code, got)
		}
	}
	// provider_rewound's remedy is a person's: no button under any policy,
	// the choice it needs written out.
	rw := sub(diagnose.Finding{Code: diagnose.CodeProviderRewound, Severity: diagnose.Critical, Human: true, Remedy: diagnose.RemedyRewindOrigin, Message: "m"})
	rw.Rewound = &diagnose.Rewind{OriginLSN: "0/3000000", ProviderLSN: "0/1000000", SlotConfirmedLSN: "0/1000000"}
	got, text := render(rw, map[string]string{"restart": "auto", "recreate-origin": "auto", "enable": "approve"})
	if len(got) != 0 || !strings.Contains(text, "Decide first which side is right") || !strings.Contains(text, "--remedy rewind-origin") {
		t.Errorf("provider_rewound: buttons %q\n%s", got, text)
	}
}

// "Snooze 1h", pressed by an approver: the thread is told until when and by
// whom, and so is the message. Changes then update the message in place
// (which notifies nobody) without a thread reply, until the incident
// escalates to critical, which ends the snooze. Pressed by someone else, or
// once the incident is over, it does nothing.
func TestSnoozeHoldsRepliesUntilCritical(t *testing.T) {
	h := newHandler(&countingExecutor{})
	n := h.Notifier
	report := func(health diagnose.Health, code string) diagnose.Report {
		return diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber", Health: health,
			Findings: []diagnose.Finding{{Code: code, Severity: diagnose.Severity(health)}}}}}
	}
	// drain returns the jobs queued since the last call: replies, and how
	// many message posts or updates.
	drain := func() (replies []string, updates int) {
		for {
			select {
			case j := <-n.queue:
				if j.reply != "" {
					replies = append(replies, j.reply)
				} else {
					updates++
				}
			default:
				return replies, updates
			}
		}
	}
	press := func(user string) {
		body := slacktest.ButtonPress(user, ActionSnooze, `{"s":"sub_0","n":"subscriber"}`, "1.1", "2."+user, "")
		req := httptest.NewRequest("POST", "/slack/interactions", strings.NewReader(body))
		req.Header = slacktest.Sign("s3cret", body, time.Now())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		h.Wait()
		if w.Code != http.StatusOK {
			t.Fatalf("button press answered %d", w.Code)
		}
	}
	now := time.Now()
	n.observeAt(now, report(diagnose.Warning, "lag_high"))
	if replies, updates := drain(); updates != 1 || len(replies) != 0 {
		t.Fatalf("the incident: %d posts, replies %q", updates, replies)
	}
	press("UNOBODY")
	if replies, updates := drain(); updates+len(replies) != 0 {
		t.Fatalf("a snooze by someone not an approver: %d updates, replies %q", updates, replies)
	}
	press("UOK")
	replies, updates := drain()
	if updates != 1 || len(replies) != 1 || !strings.HasPrefix(replies[0], ":zzz: snoozed by <@UOK> until ") {
		t.Fatalf("snoozed: %d updates, replies %q", updates, replies)
	}
	in := n.incidents[key("subscriber", "sub_0")]
	var shown bool
	for _, b := range incidentBlocks(in.last, in, nil, "") {
		if s, ok := b.(*slack.SectionBlock); ok {
			for _, f := range s.Fields {
				shown = shown || strings.HasPrefix(f.Text, "*Snoozed*\nuntil ") && strings.HasSuffix(f.Text, " by <@UOK>")
			}
		}
	}
	if !shown {
		t.Error("the message does not say it is snoozed")
	}
	n.observeAt(now.Add(time.Minute), report(diagnose.Warning, "wal_retained_high"))
	if replies, updates := drain(); updates != 1 || len(replies) != 0 {
		t.Fatalf("a change while snoozed: %d updates, replies %q", updates, replies)
	}
	n.observeAt(now.Add(2*time.Minute), report(diagnose.Critical, "slot_missing"))
	if replies, updates := drain(); updates != 1 || len(replies) != 1 || !strings.Contains(replies[0], "escalated to critical") {
		t.Fatalf("escalated while snoozed: %d updates, replies %q", updates, replies)
	}
	n.observeAt(now.Add(3*time.Minute), report(diagnose.Critical, "origin_missing"))
	if replies, _ := drain(); len(replies) != 1 {
		t.Fatalf("the escalation did not end the snooze: replies %q", replies)
	}
	// A snooze ends by itself after its hour.
	if !n.snoozeAt(now.Add(4*time.Minute), key("subscriber", "sub_0"), "UOK", SnoozeFor) {
		t.Fatal("snooze refused")
	}
	drain()
	n.observeAt(now.Add(4*time.Minute+SnoozeFor+time.Second), report(diagnose.Critical, "slot_missing"))
	if replies, _ := drain(); len(replies) != 1 {
		t.Fatalf("a change after the snooze ended: replies %q", replies)
	}
	// The incident is over: nothing to snooze.
	n.settle = 0
	n.observeAt(now.Add(2*time.Hour), diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber", Health: diagnose.OK}}})
	drain()
	if n.snoozeAt(now.Add(2*time.Hour), key("subscriber", "sub_0"), "UOK", SnoozeFor) {
		t.Error("a recovered incident was snoozed")
	}
	if replies, updates := drain(); updates+len(replies) != 0 {
		t.Errorf("snoozing a recovered incident: %d updates, replies %q", updates, replies)
	}
}

// A plan longer than a Slack section holds is cut inside its code block,
// which still closes, and never in the middle of a character.
func TestLongPlanIsCutInsideItsCodeBlock(t *testing.T) {
	s := diagnose.Subscription{Name: "sub_é", Subscriber: "subscriber", Provider: "provider", Health: diagnose.Critical, Status: "down", SlotName: "pgl_x",
		Findings: []diagnose.Finding{{Code: diagnose.CodeApplyError, Severity: diagnose.Critical, Human: true, Message: strings.Repeat("é", 3000)}}}
	found := false
	for _, b := range incidentBlocks(s, &incident{since: time.Now(), health: diagnose.Critical}, nil, "") {
		sb, ok := b.(*slack.SectionBlock)
		if !ok || sb.Text == nil {
			continue
		}
		text := sb.Text.Text
		if len(text) > 3000 || !utf8.ValidString(text) {
			t.Errorf("section of %d bytes, valid UTF-8 %t", len(text), utf8.ValidString(text))
		}
		if strings.HasPrefix(text, "*What a person would do:*") {
			found = true
			if !strings.HasSuffix(text, "...```") || strings.Count(text, "```") != 2 {
				t.Errorf("the plan's code block, cut: ...%s", text[len(text)-20:])
			}
		}
	}
	if !found {
		t.Fatal("no plan shown")
	}
}
