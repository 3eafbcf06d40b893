package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
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
	// err is why the state could not be kept, last time (logged once).
	err string
}

// heldRewind is a rewind pglmon saw, from First to Last.
type heldRewind struct {
	Subscriber   string `json:"subscriber"`
	Subscription string `json:"subscription"`
	Provider     string `json:"provider"`
	diagnose.Rewind
	First time.Time `json:"first_seen"`
	Last  time.Time `json:"last_seen"`
}

type rewindState struct {
	Version int          `json:"version"`
	Held    []heldRewind `json:"held,omitempty"`
}

func (s rewindState) version() int { return s.Version }

// restore takes over the rewinds a kept state holds.
func (w *rewindWatch) restore(path string, st rewindState) {
	w.path, w.held = path, map[string]heldRewind{}
	for _, h := range st.Held {
		w.held[h.Subscriber+"/"+h.Subscription] = h
	}
}

// annotate records the rewinds r shows and adds, to each subscription no
// longer rewound whose rewind is held, the finding that says what it
// skipped; equalSince (as the log watcher's) clears one.
func (w *rewindWatch) annotate(log *slog.Logger, r *diagnose.Report, equalSince func(subscriber, subscription, table string) time.Time) {
	if w.held == nil {
		w.held = map[string]heldRewind{}
	}
	dirty := false
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
			h.Provider, h.Rewind, h.Last = s.Provider, *s.Rewound, r.Time
			w.held[key], dirty = h, true
			continue
		}
		if !held || s.Status == diagnose.StatusMissing || s.Status == "" {
			continue
		}
		if equalSince != nil && equalSince(s.Subscriber, s.Name, "").After(h.Last) {
			log.Info("provider rewind put behind: a verification that started since found every table equal", keySubscription, s.Name, keySubscriber, s.Subscriber)
			delete(w.held, key)
			dirty = true
			continue
		}
		s.Findings = append(s.Findings, diagnose.Finding{Code: diagnose.CodeProviderRewound, Severity: diagnose.Critical, Human: true,
			Message: fmt.Sprintf("from %s to %s pglmon saw %s's replication origin past %s's end of WAL (origin at %s, %s's WAL at %s): %s had been restored from a backup or snapshot, or failed over to a standby short of that WAL, and pglogical skipped, silently, the transactions %s committed meanwhile; %s holds changes %s no longer has. Nothing more is skipped now (%s's WAL has passed that point, or the origin was moved back), but what was skipped stays lost: pglmon verify --subscription %s names the rows either side lacks (--copy-script writes what copies them); this finding stands until a verification that started since finds every table equal",
				h.First.UTC().Format(time.RFC3339), h.Last.UTC().Format(time.RFC3339), s.Subscriber, h.Provider, h.OriginLSN, h.Provider, h.ProviderLSN, h.Provider, h.Provider, s.Subscriber, h.Provider, h.Provider, shellword.Quote(s.Name))})
		s.Health = diagnose.Worst(s.Health, diagnose.Critical)
		r.Health = diagnose.Worst(r.Health, diagnose.Critical)
	}
	if dirty {
		w.keep(log)
	}
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
