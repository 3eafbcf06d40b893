// Package slack tells people about pglogical incidents in Slack: one message
// per incident, updated in place, with thread replies for events, and
// buttons that let an approver run the repair.
package slack

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/repair"
)

// Action IDs of the buttons.
const (
	ActionRepair = "pglmon_repair"
	ActionSnooze = "pglmon_snooze"
)

// SnoozeFor is how long the "Snooze 1h" button holds an incident's replies.
const SnoozeFor = time.Hour

// ButtonValue is what a repair button carries back: a subscription's, or
// (drop-orphan-slot) a node's slot.
type ButtonValue struct {
	Subscription string `json:"s,omitempty"`
	Subscriber   string `json:"n,omitempty"`
	Node         string `json:"d,omitempty"`
	Slot         string `json:"l,omitempty"`
	Remedy       string `json:"r"`
	Finding      string `json:"f"`
}

// target names what a button acts on.
func (v ButtonValue) target() string {
	if v.Node != "" {
		return "slot " + v.Slot + " on " + v.Node
	}
	return v.Subscription + " on " + v.Subscriber
}

// AfterFixLabel is the button of a finding for a person whose cause, once
// fixed, a restart puts behind (diagnose.Finding.AfterFix).
const AfterFixLabel = "Restart (cause fixed)"

var remedyLabels = map[string]string{
	diagnose.RemedyRestart:        "Restart subscription",
	diagnose.RemedyRecreateOrigin: "Recreate origin",
	diagnose.RemedyEnable:         "Enable subscription",
}

var healthEmoji = map[diagnose.Health]string{
	diagnose.OK: ":large_green_circle:", diagnose.Warning: ":large_yellow_circle:",
	diagnose.Critical: ":red_circle:", diagnose.Unknown: ":white_circle:",
}

// nodeBlocks renders a node's incident: its findings and what to do. An
// orphan slot gets a "Drop slot" button when repair.policy.drop-orphan-slot
// is approve; the other node findings' remedies are a person's, outside Slack.
func nodeBlocks(nd diagnose.Node, in *incident, policy map[string]string, outcome string) []slack.Block {
	title := fmt.Sprintf("%s pglmon node *%s* is *%s*", healthEmoji[in.health], nd.Name, strings.ToUpper(string(in.health)))
	if in.health == diagnose.OK {
		title = fmt.Sprintf("%s pglmon node *%s* recovered after %s", healthEmoji[in.health], nd.Name, in.downFor())
	}
	blocks := []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, title, false, false), nil, nil)}
	var buttons []slack.BlockElement
	for _, f := range nd.Findings {
		text := fmt.Sprintf("*%s* (%s): %s", f.Code, f.Severity, f.Message)
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(text, 2900), false, false), nil, nil))
		if f.Code == diagnose.CodeOrphanSlot && f.Remedy == diagnose.RemedyDropOrphanSlot && f.Slot != "" && policy[f.Remedy] == config.PolicyApprove && len(buttons) < 5 {
			v, _ := json.Marshal(ButtonValue{Node: nd.Name, Slot: f.Slot, Remedy: f.Remedy, Finding: f.Code})
			btn := slack.NewButtonBlockElement(ActionRepair, string(v), slack.NewTextBlockObject(slack.PlainTextType, truncate("Drop slot "+f.Slot, 75), false, false))
			btn.Style = slack.StyleDanger
			btn.Confirm = slack.NewConfirmationBlockObject(
				slack.NewTextBlockObject(slack.PlainTextType, "Drop this replication slot?", false, false),
				slack.NewTextBlockObject(slack.MarkdownType, truncate(fmt.Sprintf("pglmon will drop slot *%s* on *%s* (`pg_drop_replication_slot`), under its lock, after re-checking that it is inactive and that no subscription on a configured node uses it. The WAL it holds is freed. A subscriber pglmon does not watch that still uses this slot would lose its changes and need a new initial copy.", f.Slot, nd.Name), 300), false, false),
				slack.NewTextBlockObject(slack.PlainTextType, "Drop it", false, false),
				slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false))
			btn.Confirm.Style = slack.StyleDanger
			buttons = append(buttons, btn)
		}
	}
	blocks = append(blocks, slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType,
		fmt.Sprintf("Since %s · the daemon's /api/v1/status lists the node's findings", in.since.UTC().Format(time.RFC3339)), false, false)))
	if len(buttons) > 0 {
		blocks = append(blocks, slack.NewActionBlock("pglmon_actions", buttons...))
	}
	if outcome != "" {
		blocks = append(blocks, slack.NewContextBlock("pglmon_outcome", slack.NewTextBlockObject(slack.MarkdownType, truncate(outcome, 2900), false, false)))
	}
	return blocks
}

// incidentBlocks renders an incident. policy decides which remedies get a button.
func incidentBlocks(s diagnose.Subscription, in *incident, policy map[string]string, outcome string) []slack.Block {
	title := fmt.Sprintf("%s pglogical subscription *%s* on *%s* is *%s*", healthEmoji[s.Health], s.Name, s.Subscriber, strings.ToUpper(string(s.Health)))
	if s.Health == diagnose.OK {
		title = fmt.Sprintf("%s pglogical subscription *%s* on *%s* recovered after %s", healthEmoji[s.Health], s.Name, s.Subscriber, in.downFor())
	}
	blocks := []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, title, false, false), nil, nil)}
	lag, retained := "-", "-"
	if s.LagBytes != nil {
		lag = config.FormatBytes(*s.LagBytes)
	}
	if s.RetainedWALBytes != nil {
		retained = config.FormatBytes(*s.RetainedWALBytes)
	}
	provider := s.Provider
	if provider == "" {
		provider = "?"
	}
	field := func(k, v string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.MarkdownType, "*"+k+"*\n"+v, false, false)
	}
	fields := []*slack.TextBlockObject{
		field("Subscriber → provider", s.Subscriber+" → "+provider),
		field("Status", orDash(s.Status)),
		field("Lag", lag),
		field("Retained WAL", retained),
		field("Since", in.since.UTC().Format(time.RFC3339)),
	}
	if in.snoozed.After(time.Now()) {
		fields = append(fields, field("Snoozed", fmt.Sprintf("until %s by <@%s>", in.snoozed.UTC().Format("15:04 UTC"), in.snoozedBy)))
	}
	if in.flaps > 0 {
		fields = append(fields, field("Broke again", fmt.Sprintf("%d times", in.flaps)))
	}
	blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	var buttons []slack.BlockElement
	for _, f := range s.Findings {
		text := fmt.Sprintf("*%s* (%s): %s", f.Code, f.Severity, f.Message)
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(text, 2900), false, false), nil, nil))
		label, runnable := remedyLabels[f.Remedy]
		if runnable && (policy[f.Remedy] == config.PolicyApprove || policy[f.Remedy] == config.PolicyAuto) {
			v, _ := json.Marshal(ButtonValue{Subscription: s.Name, Subscriber: s.Subscriber, Remedy: f.Remedy, Finding: f.Code})
			btn := slack.NewButtonBlockElement(ActionRepair, string(v), slack.NewTextBlockObject(slack.PlainTextType, label, false, false))
			btn.Style = slack.StylePrimary
			btn.Confirm = slack.NewConfirmationBlockObject(
				slack.NewTextBlockObject(slack.PlainTextType, label+"?", false, false),
				slack.NewTextBlockObject(slack.MarkdownType, fmt.Sprintf("pglmon will run *%s* on *%s* (%s), under its lock, after re-checking that it is still needed, and report the outcome here.", f.Remedy, s.Name, s.Subscriber), false, false),
				slack.NewTextBlockObject(slack.PlainTextType, "Run it", false, false),
				slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false))
			buttons = append(buttons, btn)
		} else if f.Human {
			plan := repair.HumanPlan(f, s)
			blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*What a person would do:*\n```"+truncate(plan.Text, 2860)+"```", false, false), nil, nil))
			// Critical: the subscription is stopped by the cause (a
			// schema_mismatch warning has not stopped it yet).
			if r := f.AfterFix(); r != "" && f.Severity == diagnose.Critical && (policy[r] == config.PolicyApprove || policy[r] == config.PolicyAuto) {
				buttons = append(buttons, afterFixButton(s, f, r))
			}
		}
	}
	if s.Health != diagnose.OK {
		v, _ := json.Marshal(ButtonValue{Subscription: s.Name, Subscriber: s.Subscriber})
		buttons = append(buttons, slack.NewButtonBlockElement(ActionSnooze, string(v), slack.NewTextBlockObject(slack.PlainTextType, "Snooze 1h", false, false)))
	}
	if len(buttons) > 0 {
		blocks = append(blocks, slack.NewActionBlock("pglmon_actions", buttons...))
	}
	if outcome != "" {
		blocks = append(blocks, slack.NewContextBlock("pglmon_outcome", slack.NewTextBlockObject(slack.MarkdownType, truncate(outcome, 2900), false, false)))
	}
	return blocks
}

// afterFixButton runs remedy once a person says the cause of f is gone:
// never the primary style, and its confirmation says what it cannot do.
func afterFixButton(s diagnose.Subscription, f diagnose.Finding, remedy string) *slack.ButtonBlockElement {
	v, _ := json.Marshal(ButtonValue{Subscription: s.Name, Subscriber: s.Subscriber, Remedy: remedy, Finding: f.Code})
	btn := slack.NewButtonBlockElement(ActionRepair, string(v), slack.NewTextBlockObject(slack.PlainTextType, AfterFixLabel, false, false))
	btn.Confirm = slack.NewConfirmationBlockObject(
		slack.NewTextBlockObject(slack.PlainTextType, "Is the cause fixed?", false, false),
		slack.NewTextBlockObject(slack.MarkdownType, truncate(fmt.Sprintf("Only once the cause of *%s* is fixed: pglmon runs *%s* on *%s* (%s) under its lock, and pglogical tries again now, not after its backoff (up to 180 s). If the cause remains, it fails or waits the same way; nothing is lost.", f.Code, remedy, s.Name, s.Subscriber), 300), false, false),
		slack.NewTextBlockObject(slack.PlainTextType, "It is fixed: restart", false, false),
		slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false))
	return btn
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut-- // not in the middle of a character
	}
	return s[:cut] + "..."
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
