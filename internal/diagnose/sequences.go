package diagnose

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SequenceBehind is a sequence of a subscription's replication sets whose
// value on the subscriber has stayed short of one its provider had, for
// longer than pglogical's own copy takes (sequence_behind).
type SequenceBehind struct {
	// Sequence is schema.name, quoted where SQL needs it.
	Sequence string `json:"sequence"`
	// Provider and Subscriber are last_value; nil before the first nextval.
	Provider   *int64 `json:"provider_value"`
	Subscriber *int64 `json:"subscriber_value"`
	// Since is when the subscriber was first seen short of a value the
	// provider had then, and has not reached it since.
	Since time.Time `json:"since"`
	// Sent is the value pglogical last sent the subscriptions of the
	// sequence's sets (pglogical.sequence_state on the provider; nil when
	// not read).
	Sent *int64 `json:"pglogical_sent,omitempty"`
}

// sequenceResendMargin: pglogical's periodic copy sends a sequence again
// once the provider's value comes within this of the value it last sent
// (pglogical 2.4.2, synchronize_sequences: SEQUENCE_REPLICATION_MIN_CACHE / 2).
const sequenceResendMargin = 500

func value(v *int64) string {
	if v == nil {
		return "none"
	}
	return strconv.FormatInt(*v, 10)
}

// describeSequences names each sequence with both sides' values, and what
// pglogical last sent and when it sends again.
func describeSequences(ss []SequenceBehind, now time.Time) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		p := fmt.Sprintf("%s (%s on the provider, %s on the subscriber", s.Sequence, value(s.Provider), value(s.Subscriber))
		if !s.Since.IsZero() {
			p += fmt.Sprintf(", for %s", now.Sub(s.Since).Round(time.Second))
		}
		if s.Sent != nil && s.Provider != nil && *s.Sent > *s.Provider {
			p += fmt.Sprintf("; pglogical last sent %d and sends again only once the provider's value passes %d", *s.Sent, *s.Sent-sequenceResendMargin)
		}
		parts[i] = p + ")"
	}
	return strings.Join(parts, ", ")
}

// SequenceFinding is the finding for a subscription's sequences behind.
func SequenceFinding(sub string, ss []SequenceBehind, now time.Time) Finding {
	what := "sequence"
	if len(ss) > 1 {
		what = "sequences"
	}
	return Finding{Code: CodeSequenceBehind, Severity: Warning, Human: true,
		Message: fmt.Sprintf("the subscriber of %s lacks the provider's value of %s %s: a subscriber taking over the writes (a switchover, the end of an upgrade) would hand out values the provider used, and its inserts would fail on duplicate keys; pglogical copies a sequence's value only when asked (pglogical.synchronize_sequence) or when the provider's value nears the last value it sent, so a subscription made or given the set after that copy waits",
			sub, what, describeSequences(ss, now))}
}
