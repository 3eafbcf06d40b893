package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// timelineQuery reads the timeline the server writes WAL on (the first 8
// hex digits of its current WAL file's name; 0 on a standby, where
// pg_walfile_name refuses). A promotion (failover, switchover) or a
// point-in-time restore starts a new timeline; a crash or a restore of a
// storage snapshot does not.
const timelineQuery = `SELECT CASE WHEN pg_is_in_recovery() THEN 0
	ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END`

// historyQuery reads a timeline's history file from pg_wal (at most 1 MiB),
// with the grant the server log's reading needs (logtail.Grants).
const historyQuery = `SELECT pg_read_binary_file($1, 0, 1048576)`

// TimelineSwitch is a line of a timeline history file: timeline TLI ended
// at End, where the next one began.
type TimelineSwitch struct {
	TLI uint32
	End LSN
}

// timelineSwitchJSON is TimelineSwitch as JSON, its LSN as PostgreSQL
// writes one.
type timelineSwitchJSON struct {
	TLI uint32 `json:"timeline"`
	End string `json:"end_lsn"`
}

func (s TimelineSwitch) MarshalJSON() ([]byte, error) {
	return json.Marshal(timelineSwitchJSON{s.TLI, s.End.String()})
}

func (s *TimelineSwitch) UnmarshalJSON(b []byte) error {
	var j timelineSwitchJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	end, err := ParseLSN(j.End)
	if err != nil {
		return err
	}
	*s = TimelineSwitch{TLI: j.TLI, End: end}
	return nil
}

// ParseHistory reads a timeline history file ("1\t0/3000158\tno recovery
// target specified"), skipping blank and comment lines.
func ParseHistory(text string) ([]TimelineSwitch, error) {
	var out []TimelineSwitch
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: %q is not <timeline> <LSN> <reason>", i+1, line)
		}
		tli, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("line %d: timeline %q: %w", i+1, f[0], err)
		}
		end, err := ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, TimelineSwitch{TLI: uint32(tli), End: end})
	}
	return out, nil
}

// SwitchedAt is where timeline from ended in the history of a later
// timeline (the point the server's WAL went on from on another timeline);
// false when from is not among its ancestors.
func SwitchedAt(history []TimelineSwitch, from uint32) (LSN, bool) {
	for _, s := range history {
		if s.TLI == from {
			return s.End, true
		}
	}
	return 0, false
}

// readTimeline sets snap's timeline history when its timeline is past the
// first, reading the history file once per timeline (the file never
// changes; a failure, such as a role without the grant, is kept for 10
// minutes, so the server's log does not get an error at every cycle).
func (p *Prober) readTimeline(ctx context.Context, snap *Snapshot) {
	if snap.Timeline <= 1 {
		return
	}
	if snap.Timeline != p.histTLI || (p.histErr != "" && time.Since(p.histAt) > 10*time.Minute) {
		p.histTLI, p.hist, p.histErr, p.histAt = snap.Timeline, nil, "", time.Now()
		var b []byte
		err := p.conn.QueryRow(ctx, historyQuery, fmt.Sprintf("pg_wal/%08X.history", snap.Timeline)).Scan(&b)
		if err == nil {
			p.hist, err = ParseHistory(string(b))
		}
		if err != nil {
			p.histErr = fmt.Sprintf("read pg_wal/%08X.history: %v", snap.Timeline, err)
		}
	}
	snap.TimelineHistory, snap.TimelineHistoryErr = p.hist, p.histErr
}

// learnTimeline reads whether the server tells its timeline (a fork of
// PostgreSQL may refuse pg_walfile_name): when it does not, the probes do
// not ask, so that one failing query does not fail the whole probe.
func (p *Prober) learnTimeline(ctx context.Context) {
	var tli int64
	p.noTimeline = p.conn.QueryRow(ctx, timelineQuery).Scan(&tli) != nil
}
