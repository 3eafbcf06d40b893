package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/heartbeat"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/shellword"
	"github.com/pglmon/pglmon/internal/verified"
)

// rewindWatch holds a provider_rewound past the moment the provider's WAL
// passes the subscriber's origin again (then a probe no longer sees it, and
// nothing more is skipped): what pglogical skipped meanwhile stays lost to
// the subscriber, so the finding stands until a verification that started
// after pglmon last saw the rewind finds every table of the subscription
// equal. Kept across restarts in config.RewindStateFile.
type rewindWatch struct {
	path string
	held map[string]heldRewind // by subscriber/subscription
	// providers are what pglmon last saw of each provider (by node): see
	// watchProviders.
	providers map[string]seenProvider
	// keptAt is when the state was last written: the providers' origins
	// are written at most once a minute while nothing else changes.
	keptAt time.Time
	// err is why the state could not be kept, last time (logged once).
	err string
}

// seenProvider is a provider as pglmon saw it last, at At: its timeline,
// and the origin remote_lsn of each subscription from it (by
// subscriber/subscription) as last seen while it was on that timeline.
type seenProvider struct {
	Node    string            `json:"node"`
	TLI     uint32            `json:"timeline"`
	Origins map[string]string `json:"origins,omitempty"`
	// Idle are its slots, by name, that were inactive while their
	// subscription could not consume them (watchIdleSlots).
	Idle map[string]idleSlot `json:"idle_slots,omitempty"`
	// Owners are the subscriptions (subscriber/subscription) of its slots,
	// by slot name, as last seen.
	Owners map[string]string `json:"slot_owners,omitempty"`
	At     time.Time         `json:"seen"`
}

// idleSlot is where an idle slot had confirmed, and whose it is
// (subscriber/subscription).
type idleSlot struct {
	Confirmed    string `json:"confirmed_flush_lsn"`
	Subscription string `json:"subscription"`
}

// heldRewind is a rewind pglmon saw, from First to Last.
type heldRewind struct {
	Subscriber   string `json:"subscriber"`
	Subscription string `json:"subscription"`
	Provider     string `json:"provider"`
	diagnose.Rewind
	First time.Time `json:"first_seen"`
	Last  time.Time `json:"last_seen"`
	// FromTimeline and ToTimeline are set for a rewind found by the
	// provider's switch of timeline (ProviderLSN is where the old one
	// ended) rather than seen while it lasted; Unsure says why pglmon
	// could not tell whether the switch lost what the subscriber had
	// applied (provider_timeline_changed).
	FromTimeline uint32 `json:"from_timeline,omitempty"`
	ToTimeline   uint32 `json:"to_timeline,omitempty"`
	Unsure       string `json:"unsure,omitempty"`
	// OriginBefore is set for the subscriber's rewind (subscriber_rewound):
	// its origin was there before it went back to OriginLSN, while the
	// provider's slot had confirmed SlotConfirmedLSN.
	OriginBefore string `json:"origin_before,omitempty"`
	// SlotMovedFrom is set when the provider's slot (Slot) moved on from
	// there to SlotConfirmedLSN while the subscription could not consume
	// it (slot_advanced).
	SlotMovedFrom string `json:"slot_moved_from,omitempty"`
	Slot          string `json:"slot,omitempty"`
	// Heartbeats is set when the subscriber lacks heartbeats the provider
	// wrote, or holds some it no longer has (heartbeats_lost).
	Heartbeats *lostBeats `json:"heartbeats,omitempty"`
}

// lostBeats is what a comparison of the heartbeats found: how many of
// the provider's Compared (written From..To) the subscriber lacks
// (Missing, written MissingFrom..MissingTo), and how many it holds that
// the provider no longer has (Extra, ExtraFrom..ExtraTo).
type lostBeats struct {
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Compared    int       `json:"compared"`
	Missing     int       `json:"missing,omitempty"`
	MissingFrom time.Time `json:"missing_from,omitzero"`
	MissingTo   time.Time `json:"missing_to,omitzero"`
	Extra       int       `json:"extra,omitempty"`
	ExtraFrom   time.Time `json:"extra_from,omitzero"`
	ExtraTo     time.Time `json:"extra_to,omitzero"`
}

type rewindState struct {
	Version   int            `json:"version"`
	Held      []heldRewind   `json:"held,omitempty"`
	Providers []seenProvider `json:"providers,omitempty"`
}

func (s rewindState) version() int { return s.Version }

// init makes the maps a watch starts with.
func (w *rewindWatch) init() {
	if w.held == nil {
		w.held = map[string]heldRewind{}
	}
	if w.providers == nil {
		w.providers = map[string]seenProvider{}
	}
}

// restore takes over the rewinds a kept state holds.
func (w *rewindWatch) restore(path string, st rewindState) {
	w.path, w.held, w.providers = path, map[string]heldRewind{}, map[string]seenProvider{}
	for _, h := range st.Held {
		w.held[h.Subscriber+"/"+h.Subscription] = h
	}
	for _, t := range st.Providers {
		w.providers[t.Node] = t
	}
}

// watchProviders keeps, for each provider, its timeline, how far each
// subscription from it had applied (its origin) and where its idle slots
// stood, as last seen, and judges each cycle against them what a probe
// alone cannot see once it is over:
//   - a new timeline (judgeSwitch): a subscriber that had applied past
//     where the old one ended lost nothing of its own, but pglogical
//     skipped the provider's transactions until its WAL on the new one
//     passed that point (provider_rewound, held); not known:
//     provider_timeline_changed;
//   - an origin gone back past what the slot confirmed (judgeOrigin):
//     subscriber_rewound;
//   - an idle slot moved on (watchIdleSlots): slot_advanced.
//
// It reports whether the state should be written.
func (w *rewindWatch) watchProviders(log *slog.Logger, r *diagnose.Report) (dirty bool) {
	// A rewind judged now is kept at once: a restart must not forget it.
	held := len(w.held)
	defer func() { dirty = dirty || len(w.held) != held }()
	for _, n := range r.Nodes {
		if !n.Up {
			continue
		}
		prev, known := w.providers[n.Name]
		// A server that does not tell its timeline (a standby, a fork that
		// refuses pg_walfile_name) keeps the one last seen.
		cur := seenProvider{Node: n.Name, TLI: cmp.Or(n.Timeline, prev.TLI), Origins: map[string]string{}, At: r.Time}
		switched := known && prev.TLI != 0 && n.Timeline != 0 && prev.TLI != n.Timeline
		if !switched {
			// What a subscriber that does not answer now had applied.
			maps.Copy(cur.Origins, prev.Origins)
		}
		cur.Owners = maps.Clone(prev.Owners)
		if cur.Owners == nil {
			cur.Owners = map[string]string{}
		}
		bySlot := map[string]diagnose.Subscription{}
		for _, s := range r.Subscriptions {
			if s.Provider != n.Name {
				continue
			}
			key := s.Subscriber + "/" + s.Name
			bySlot[s.SlotName], cur.Owners[s.SlotName] = s, key
			if s.OriginRemoteLSN != "" {
				cur.Origins[key] = s.OriginRemoteLSN
			}
			switch {
			case switched:
				w.judgeSwitch(log, r.Time, n, prev, s)
			case !s.SlotFound:
				// Its slot is gone (slot_missing): a new one starts
				// afresh, and so does what its origin is compared with
				// (slot_missing's plan moves the origin to where the new
				// slot starts, which may be back).
				delete(cur.Origins, key)
			default:
				w.judgeOrigin(log, r.Time, n, prev, s)
			}
		}
		cur.Idle = w.watchIdleSlots(log, r.Time, n, prev, bySlot, cur.Owners)
		dirty = dirty || !known || switched || !maps.Equal(prev.Idle, cur.Idle) || !maps.Equal(prev.Owners, cur.Owners) ||
			(!maps.Equal(prev.Origins, cur.Origins) && r.Time.Sub(w.keptAt) >= time.Minute)
		w.providers[n.Name] = cur
	}
	return dirty
}

// watchIdleSlots finds a provider's slot moved on while its subscription
// could not consume it (disabled, or its subscriber not answering, at two
// probes in a row, the slot inactive at both, and the subscriber's origin,
// where it answered, not moved between them): pg_replication_slot_advance
// (a runbook's way to free the WAL a slot holds), or a session that read
// it with pg_logical_slot_get_changes. pglogical starts from the slot, so
// the changes in between are lost to the subscriber, silently. It returns
// the idle slots' positions now (by slot name: the confirmed LSN, and the
// subscriber/subscription using it).
func (w *rewindWatch) watchIdleSlots(log *slog.Logger, now time.Time, n diagnose.Node, prev seenProvider, bySlot map[string]diagnose.Subscription, owners map[string]string) map[string]idleSlot {
	out := map[string]idleSlot{}
	for _, sl := range n.Slots {
		s, present := bySlot[sl.Name]
		if sl.Active || (present && s.Enabled) || owners[sl.Name] == "" {
			// Streaming, or its worker may have between two probes; or no
			// subscription pglmon knows of uses it.
			continue
		}
		was, seen := prev.Idle[sl.Name]
		idle := idleSlot{Confirmed: sl.ConfirmedFlushLSN.String(), Subscription: owners[sl.Name]}
		out[sl.Name] = idle
		before, err := probe.ParseLSN(was.Confirmed)
		if !seen || err != nil || sl.ConfirmedFlushLSN <= before {
			continue
		}
		if _, held := w.held[idle.Subscription]; held {
			continue
		}
		subscriber, name, _ := strings.Cut(idle.Subscription, "/")
		if applied := prev.Origins[idle.Subscription]; present && applied != "" && s.OriginRemoteLSN != "" && s.OriginRemoteLSN != applied {
			// Its subscriber applied changes since: the subscription was
			// enabled, streamed and disabled again between two probes.
			log.Info("slot moved on while idle, and its subscriber applied changes meanwhile: its subscription streamed between two probes",
				keySubscription, name, keySubscriber, subscriber, keyNode, n.Name, "slot", sl.Name, "from_lsn", was.Confirmed, "to_lsn", idle.Confirmed,
				"origin_before", applied, "origin_lsn", s.OriginRemoteLSN)
			continue
		}
		log.Error("slot moved on while its subscription could not consume it: the changes in between are lost to the subscriber",
			keySubscription, name, keySubscriber, subscriber, keyNode, n.Name, "slot", sl.Name, "from_lsn", was.Confirmed, "to_lsn", idle.Confirmed)
		w.held[idle.Subscription] = heldRewind{Subscriber: subscriber, Subscription: name, Provider: n.Name, First: prev.At, Last: now,
			Rewind: diagnose.Rewind{SlotConfirmedLSN: idle.Confirmed}, SlotMovedFrom: was.Confirmed, Slot: sl.Name}
	}
	return out
}

// judgeOrigin finds a subscriber put back to an earlier state (restored
// from a backup or snapshot, failed over to a standby short of its WAL):
// the origin of subscription s has gone back since pglmon last saw it,
// while provider n's slot confirmed past where it is now. The provider's
// logical decoding never starts below what its slot confirmed, so what
// the subscriber applied in between, and lost, is never sent again:
// pglogical goes on from the slot, silently. Not an origin created anew
// (0/0: pglogical starts from the slot, as the origin_missing repair
// means it to), nor one pglmon holds a rewind for (rewind-origin moves it
// back on purpose).
func (w *rewindWatch) judgeOrigin(log *slog.Logger, now time.Time, n diagnose.Node, prev seenProvider, s diagnose.Subscription) {
	key := s.Subscriber + "/" + s.Name
	if _, held := w.held[key]; held || s.OriginRemoteLSN == "" || prev.Origins[key] == "" {
		return
	}
	before, err1 := probe.ParseLSN(prev.Origins[key])
	origin, err2 := probe.ParseLSN(s.OriginRemoteLSN)
	if err1 != nil || err2 != nil || origin == 0 || origin >= before {
		return
	}
	i := slices.IndexFunc(n.Slots, func(sl probe.Slot) bool { return sl.Name == s.SlotName })
	if i < 0 || n.Slots[i].ConfirmedFlushLSN <= origin {
		// The provider sends again from the origin: nothing is lost.
		return
	}
	confirmed := n.Slots[i].ConfirmedFlushLSN
	log.Error("subscriber rewound: its origin went back, past what the provider's slot had confirmed, and the provider never sends those changes again",
		keySubscription, s.Name, keySubscriber, s.Subscriber, keyNode, n.Name, "origin_before", prev.Origins[key], "origin_lsn", s.OriginRemoteLSN, "slot_confirmed_lsn", confirmed.String())
	w.held[key] = heldRewind{Subscriber: s.Subscriber, Subscription: s.Name, Provider: n.Name, First: prev.At, Last: now,
		Rewind: diagnose.Rewind{OriginLSN: s.OriginRemoteLSN, SlotConfirmedLSN: confirmed.String()}, OriginBefore: prev.Origins[key]}
}

// judgeGaps holds heartbeats_lost for each subscription whose subscriber
// lacks heartbeats its provider wrote while holding later ones, or holds
// heartbeats the provider no longer has (gaps, by subscriber/subscription:
// heartbeat.Compare), and adds its finding to r. What a verification that
// started since they were written found equal is put behind (equalSince),
// as is a subscription pglmon holds another rewind for (the same loss,
// told otherwise): it runs after annotate, whose judgements say more.
func (w *rewindWatch) judgeGaps(log *slog.Logger, r *diagnose.Report, gaps map[string]heartbeat.Gap, equalSince func(subscriber, subscription, table string) time.Time) {
	w.init()
	added := false
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		key := s.Subscriber + "/" + s.Name
		g, ok := gaps[key]
		if _, held := w.held[key]; !ok || held {
			continue
		}
		var since time.Time
		if equalSince != nil {
			since = equalSince(s.Subscriber, s.Name, "")
		}
		after := func(ts []time.Time) []time.Time {
			return slices.DeleteFunc(slices.Clone(ts), func(t time.Time) bool { return !t.After(since) })
		}
		missing, extra := after(g.Missing), after(g.Extra)
		if len(missing) == 0 && len(extra) == 0 {
			continue
		}
		lb := &lostBeats{From: g.From, To: g.To, Compared: g.Compared, Missing: len(missing), Extra: len(extra)}
		if len(missing) > 0 {
			lb.MissingFrom, lb.MissingTo = missing[0], missing[len(missing)-1]
		}
		if len(extra) > 0 {
			lb.ExtraFrom, lb.ExtraTo = extra[0], extra[len(extra)-1]
		}
		log.Error("heartbeats lost: the subscriber lacks heartbeats its provider wrote while holding later ones, or holds some the provider no longer has",
			keySubscription, s.Name, keySubscriber, s.Subscriber, keyNode, s.Provider, "missing", lb.Missing, "missing_from", lb.MissingFrom, "missing_to", lb.MissingTo,
			"extra", lb.Extra, "extra_from", lb.ExtraFrom, "extra_to", lb.ExtraTo, "compared", lb.Compared)
		h := heldRewind{Subscriber: s.Subscriber, Subscription: s.Name, Provider: s.Provider, First: r.Time, Last: r.Time, Heartbeats: lb}
		w.held[key], added = h, true
		r.AddFinding(s, h.finding(r, s))
	}
	if added {
		w.keep(log)
	}
}

// judgeSwitch judges subscription s of provider n, which was on timeline
// prev.TLI last time pglmon saw it.
func (w *rewindWatch) judgeSwitch(log *slog.Logger, now time.Time, n diagnose.Node, prev seenProvider, s diagnose.Subscription) {
	key := s.Subscriber + "/" + s.Name
	applied := prev.Origins[key]
	if _, held := w.held[key]; held || applied == "" {
		return // held already, or it had applied nothing pglmon saw
	}
	h := heldRewind{Subscriber: s.Subscriber, Subscription: s.Name, Provider: n.Name, First: prev.At, Last: now,
		FromTimeline: prev.TLI, ToTimeline: n.Timeline, Rewind: diagnose.Rewind{OriginLSN: applied}}
	end, found := probe.SwitchedAt(n.TimelineHistory, prev.TLI)
	origin, err := probe.ParseLSN(applied)
	switch {
	case n.TimelineHistoryError != "":
		h.Unsure = "the new timeline's history could not be read (" + n.TimelineHistoryError + "; a role that is not a superuser needs GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint))"
	case !found:
		h.Unsure = fmt.Sprintf("timeline %d is not in the history of timeline %d: the provider is another server, or was restored from a backup of another history", prev.TLI, n.Timeline)
	case err != nil:
		h.Unsure = fmt.Sprintf("the origin pglmon saw (%s) could not be read: %v", applied, err)
	case origin <= end:
		log.Info("provider switched timeline: the subscriber had applied nothing past where the old one ended",
			keySubscription, s.Name, keySubscriber, s.Subscriber, keyNode, n.Name, "from_timeline", prev.TLI, "to_timeline", n.Timeline, "switch_lsn", end.String(), "origin_lsn", applied)
		return
	default:
		h.ProviderLSN = end.String()
		log.Error("provider rewound: it switched timeline where its WAL ended before what the subscriber had applied, and pglogical skipped what the provider committed until its WAL passed that point",
			keySubscription, s.Name, keySubscriber, s.Subscriber, keyNode, n.Name, "from_timeline", prev.TLI, "to_timeline", n.Timeline, "switch_lsn", h.ProviderLSN, "origin_lsn", applied)
		w.held[key] = h
		return
	}
	log.Warn("provider switched timeline: pglmon cannot tell whether it lost what the subscriber had applied",
		keySubscription, s.Name, keySubscriber, s.Subscriber, keyNode, n.Name, "from_timeline", prev.TLI, "to_timeline", n.Timeline, "why", h.Unsure)
	w.held[key] = h
}

// annotate records the rewinds r shows and adds, to each subscription no
// longer rewound whose rewind is held, the finding that says what it
// skipped; equalSince (as the log watcher's) clears one.
func (w *rewindWatch) annotate(log *slog.Logger, r *diagnose.Report, equalSince func(subscriber, subscription, table string) time.Time) {
	w.init()
	dirty := w.watchProviders(log, r)
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		key := s.Subscriber + "/" + s.Name
		h, held := w.held[key]
		if s.Rewound != nil {
			if !held {
				h = heldRewind{Subscriber: s.Subscriber, Subscription: s.Name, First: r.Time}
				log.Error("provider rewound: the subscriber has applied changes past the provider's end of WAL, and pglogical skips what the provider commits until it passes them",
					keySubscription, s.Name, keySubscriber, s.Subscriber, keyNode, s.Provider, "origin_lsn", s.Rewound.OriginLSN, "provider_lsn", s.Rewound.ProviderLSN)
			}
			// Seen while it lasts: what a switch of timeline left unsure
			// or inferred is now seen.
			h.Provider, h.Rewind, h.Last = s.Provider, *s.Rewound, r.Time
			h.FromTimeline, h.ToTimeline, h.Unsure, h.OriginBefore, h.SlotMovedFrom, h.Heartbeats = 0, 0, "", "", "", nil
			w.held[key], dirty = h, true
			continue
		}
		if !held || s.Status == diagnose.StatusMissing || s.Status == "" {
			continue
		}
		if equalSince != nil && equalSince(s.Subscriber, s.Name, "").After(h.Last) {
			log.Info("held finding put behind: a verification that started since found every table equal", keySubscription, s.Name, keySubscriber, s.Subscriber, "finding", h.finding(r, s).Code)
			delete(w.held, key)
			dirty = true
			continue
		}
		r.AddFinding(s, h.finding(r, s))
	}
	if dirty {
		w.keep(log)
	}
}

// finding is what a held rewind says of subscription s of r.
func (h heldRewind) finding(r *diagnose.Report, s *diagnose.Subscription) diagnose.Finding {
	subscriber, sub := s.Subscriber, s.Name
	span := fmt.Sprintf("between %s and %s", h.First.UTC().Format(time.RFC3339), h.Last.UTC().Format(time.RFC3339))
	verify := fmt.Sprintf("pglmon verify --subscription %s names the rows either side lacks (--copy-script writes what copies them); this finding stands until a verification that started since finds every table equal", shellword.Quote(sub))
	switch {
	case h.Heartbeats != nil:
		return h.Heartbeats.finding(subscriber, sub, h.Provider, verify, siblings(r, s))
	case h.SlotMovedFrom != "":
		return diagnose.Finding{Code: diagnose.CodeSlotAdvanced, Severity: diagnose.Critical, Human: true, Slot: h.Slot,
			Message: fmt.Sprintf("slot %s on %s moved on from %s to %s %s, while nothing streamed from it and %s could not consume it (disabled, or %s not answering): someone ran pg_replication_slot_advance on it (to free the WAL it held), or read it with pg_logical_slot_get_changes. pglogical starts from the slot, so the changes %s committed in between are lost to %s, silently: %s, or resynchronise the tables",
				h.Slot, h.Provider, h.SlotMovedFrom, h.SlotConfirmedLSN, span, sub, subscriber, h.Provider, subscriber, verify)}
	case h.OriginBefore != "":
		return diagnose.Finding{Code: diagnose.CodeSubscriberRewound, Severity: diagnose.Critical, Human: true,
			Message: fmt.Sprintf("%s's replication origin for %s went back from %s to %s %s, while %s's slot had confirmed up to %s: %s was restored from a backup or snapshot, or failed over to a standby short of its WAL (or the origin was moved back by hand), and lost what it had applied from %s in between. %s never sends those changes again (its logical decoding starts where the slot confirmed), so pglogical goes on from there, silently, and the rows %s changed between %s and %s are missing or out of date on %s: %s, or resynchronise the tables",
				subscriber, h.Provider, h.OriginBefore, h.OriginLSN, span, h.Provider, h.SlotConfirmedLSN, subscriber, h.Provider, h.Provider, h.Provider, h.OriginLSN, minLSN(h.OriginBefore, h.SlotConfirmedLSN), subscriber, verify)}
	case h.Unsure != "":
		return diagnose.Finding{Code: diagnose.CodeProviderTimelineChanged, Severity: diagnose.Warning, Human: true,
			Message: fmt.Sprintf("%s switched from timeline %d to %d %s (a promotion: a failover or switchover; or a point-in-time restore), and pglmon cannot tell whether it lost changes %s had applied from it (up to %s when pglmon last saw it): %s. If it did, %s holds changes %s no longer has, and pglogical skipped, silently, what %s committed on its new timeline until its WAL passed them: %s",
				h.Provider, h.FromTimeline, h.ToTimeline, span, subscriber, h.OriginLSN, h.Unsure, subscriber, h.Provider, h.Provider, verify)}
	case h.ToTimeline != 0:
		return diagnose.Finding{Code: diagnose.CodeProviderRewound, Severity: diagnose.Critical, Human: true,
			Message: fmt.Sprintf("%s switched from timeline %d to %d %s, where its WAL went on from %s (its new timeline's history), while %s had applied its changes up to %s: a failover to a standby short of that WAL, or a point-in-time restore. %s holds changes %s no longer has, and pglogical skipped, silently, the transactions %s committed on its new timeline until its WAL passed %s. Nothing more is skipped now, but what was skipped stays lost: %s",
				h.Provider, h.FromTimeline, h.ToTimeline, span, h.ProviderLSN, subscriber, h.OriginLSN, subscriber, h.Provider, h.Provider, h.OriginLSN, verify)}
	}
	return diagnose.Finding{Code: diagnose.CodeProviderRewound, Severity: diagnose.Critical, Human: true,
		Message: fmt.Sprintf("%s pglmon saw %s's replication origin past %s's end of WAL (origin at %s, %s's WAL at %s): %s had been restored from a backup or snapshot, or failed over to a standby short of that WAL, and pglogical skipped, silently, the transactions %s committed meanwhile; %s holds changes %s no longer has. Nothing more is skipped now (%s's WAL has passed that point, or the origin was moved back), but what was skipped stays lost: %s",
			strings.Replace(span, "between", "from", 1), subscriber, h.Provider, h.OriginLSN, h.Provider, h.ProviderLSN, h.Provider, h.Provider, subscriber, h.Provider, h.Provider, verify)}
}

// siblings are the other subscriptions of r from s's provider on s's
// subscriber: they do not carry the heartbeats (one subscription does, the
// set pglmon_heartbeat), so what heartbeats_lost finds is not measured for
// them, though most of its causes hit them alike.
func siblings(r *diagnose.Report, s *diagnose.Subscription) []string {
	var out []string
	for _, o := range r.Subscriptions {
		if o.Subscriber == s.Subscriber && o.Provider == s.Provider && o.Name != s.Name && o.Provider != "" {
			out = append(out, o.Name)
		}
	}
	return out
}

// finding is what lost heartbeats say of subscription sub on subscriber
// from provider, whose other subscriptions there are siblings.
func (lb *lostBeats) finding(subscriber, sub, provider, verify string, siblings []string) diagnose.Finding {
	at := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	var said []string
	if lb.Missing > 0 {
		said = append(said, fmt.Sprintf("%d of the %d heartbeats %s wrote between %s and %s never reached %s (written %s to %s), while later ones did: %s skipped or lost the transactions %s committed then (a restore of %s from a backup or snapshot, a failover short of its WAL, a slot advanced, a provider restored while %s applied on), and the rows they changed are missing or out of date on %s",
			lb.Missing, lb.Compared, provider, at(lb.From), at(lb.To), subscriber, at(lb.MissingFrom), at(lb.MissingTo), sub, provider, subscriber, subscriber, subscriber))
	}
	if lb.Extra > 0 {
		beats := fmt.Sprintf("%d heartbeats", lb.Extra)
		if lb.Extra == 1 {
			beats = "1 heartbeat"
		}
		said = append(said, fmt.Sprintf("%s holds %s from %s (written %s to %s) that %s no longer has: %s lost transactions it had committed and %s had applied (restored from a backup or snapshot, or failed over to a standby short of its WAL), and %s holds changes %s no longer has",
			subscriber, beats, provider, at(lb.ExtraFrom), at(lb.ExtraTo), provider, provider, subscriber, subscriber, provider))
	}
	msg := strings.Join(said, "; ") + ". pglogical says nothing of it: " + verify + ", or resynchronise the tables"
	switch len(siblings) {
	case 0:
	case 1:
		msg += fmt.Sprintf(". Subscription %s from %s on %s does not carry the heartbeats, so pglmon cannot tell whether it lost the same span: unless only the slot of %s was advanced, it did (a restore or a failover hits every subscription there); verify it too",
			siblings[0], provider, subscriber, sub)
	default:
		msg += fmt.Sprintf(". Subscriptions %s from %s on %s do not carry the heartbeats, so pglmon cannot tell whether they lost the same span: unless only the slot of %s was advanced, they did (a restore or a failover hits every subscription there); verify them too",
			strings.Join(siblings, ", "), provider, subscriber, sub)
	}
	return diagnose.Finding{Code: diagnose.CodeHeartbeatsLost, Severity: diagnose.Critical, Human: true, Subscriptions: siblings, Message: msg}
}

// minLSN is the lower of two LSNs as PostgreSQL writes them (a when
// either cannot be read).
func minLSN(a, b string) string {
	la, err1 := probe.ParseLSN(a)
	lb, err2 := probe.ParseLSN(b)
	if err1 == nil && err2 == nil && lb < la {
		return b
	}
	return a
}

// keep writes the held rewinds to the state file.
func (w *rewindWatch) keep(log *slog.Logger) {
	if w.path == "" {
		return
	}
	st := rewindState{Version: 1}
	for _, key := range slices.Sorted(maps.Keys(w.held)) {
		st.Held = append(st.Held, w.held[key])
	}
	for _, node := range slices.Sorted(maps.Keys(w.providers)) {
		st.Providers = append(st.Providers, w.providers[node])
	}
	w.keptAt = time.Now()
	if err := saveState(w.path, st); err != nil {
		if w.err != err.Error() {
			log.Warn("cannot keep the provider rewinds seen: a restart forgets them", "file", w.path, keyError, err.Error())
		}
		w.err = err.Error()
		return
	}
	w.err = ""
}

// StandingRewinds adds to r the provider rewinds a daemon with configuration
// cfg holds (its state file), less those a verification that started since
// found put right (scheduled: its verification state; by hand:
// verified.json): for pglmon status and repair, which see a rewind only
// while it lasts. Nothing is written.
func StandingRewinds(cfg *config.Config, r *diagnose.Report) error {
	st, err := loadState[rewindState](cfg.RewindStateFile())
	if err != nil || len(st.Held) == 0 {
		return err
	}
	v := &verifier{}
	vst, err := (&stateFile{cfg.VerifyStateFile()}).load()
	if err == nil {
		v.restore(vst)
	}
	v.hand = verified.Watcher{Path: cfg.VerifiedFile()}
	var handErr error
	v.byHand, handErr = v.hand.Since()
	w := &rewindWatch{}
	w.restore("", st)
	w.annotate(slog.New(slog.NewTextHandler(io.Discard, nil)), r, v.equalSince)
	return errors.Join(err, handErr)
}
