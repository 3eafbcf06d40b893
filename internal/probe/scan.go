package probe

import (
	"github.com/jackc/pgx/v5"
)

func scanSlots(rows pgx.Rows) ([]Slot, error) {
	var out []Slot
	for rows.Next() {
		var s Slot
		var restart, confirmed string
		var hasSender bool
		var snd Sender
		var sent, write, flush, replay string
		if err := rows.Scan(&s.Name, &s.Plugin, &s.Type, &s.Active, &s.ActivePID, &restart, &confirmed,
			&s.WALStatus, &s.SafeWALSize, &s.RetainedBytes, &s.LagBytes,
			&hasSender, &snd.ApplicationName, &snd.State, &sent, &write, &flush, &replay,
			&snd.WriteLag, &snd.FlushLag, &snd.ReplayLag, &s.XminAge, &s.CatalogXminAge,
			&snd.ClientAddr, &snd.ClientPort, &snd.ConnectedSeconds, &snd.ReplySeconds, &snd.User); err != nil {
			return nil, err
		}
		s.RestartLSN, _ = ParseLSN(restart)
		s.ConfirmedFlushLSN, _ = ParseLSN(confirmed)
		if hasSender {
			snd.SentLSN, _ = ParseLSN(sent)
			snd.WriteLSN, _ = ParseLSN(write)
			snd.FlushLSN, _ = ParseLSN(flush)
			snd.ReplayLSN, _ = ParseLSN(replay)
			snd.PID = s.ActivePID
			s.Sender = &snd
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func scanSubscriptions(rows pgx.Rows) ([]Subscription, error) {
	var out []Subscription
	for rows.Next() {
		var s Subscription
		var remote, dsn string
		if err := rows.Scan(&s.Name, &s.Enabled, &s.Status, &s.ProviderNode, &s.SlotName, &s.ReplicationSets,
			&s.OriginExists, &remote, &s.SyncStatus, &s.WorkerRunning, &s.ApplyWorker, &s.ProviderInterface, &dsn, &s.ApplyDelaySeconds, &s.WorkerAgeSeconds, &s.ForwardOrigins); err != nil {
			return nil, err
		}
		// The stored connection string may hold a password: only where it goes is kept.
		s.ProviderConninfo = SafeConninfo(dsn)
		s.OriginRemoteLSN, _ = ParseLSN(remote)
		out = append(out, s)
	}
	return out, rows.Err()
}

func scanTableSync(rows pgx.Rows) ([]TableSync, error) {
	var out []TableSync
	for rows.Next() {
		var t TableSync
		if err := rows.Scan(&t.Subscription, &t.Schema, &t.Table, &t.Status, &t.Partitioned, &t.CopiedRows, &t.CopiedBytes); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// scanLockWaits reads lockWaitsQuery: the waiting apply workers by their
// "<database oid>:<subscription id>", each blocker once (at its least depth).
func scanLockWaits(rows pgx.Rows) (map[string]*LockWait, error) {
	out := map[string]*LockWait{}
	type key struct {
		worker string
		pid    int
	}
	seen := map[key]bool{}
	for rows.Next() {
		var worker string
		var w LockWait
		var b Blocker
		if err := rows.Scan(&worker, &w.PID, &w.WaitEvent, &w.Seconds, &w.Tables,
			&b.PID, &b.Depth, &b.User, &b.Application, &b.ClientAddr, &b.State, &b.BackendType, &b.Waiting,
			&b.XactSeconds, &b.StateSeconds); err != nil {
			return nil, err
		}
		cur := out[worker]
		if cur == nil {
			cur = &w
			out[worker] = cur
		}
		if k := (key{worker, b.PID}); !seen[k] {
			seen[k] = true
			cur.Blockers = append(cur.Blockers, b)
		}
	}
	return out, rows.Err()
}
