package daemon

import (
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/maintenance"
)

// maintenanceWatch follows the maintenance file and marks the report: the
// subscriptions of a node under maintenance are neither repaired nor
// posted to Slack.
type maintenanceWatch struct {
	w      maintenance.Watcher
	active map[string]maintenance.Window
}

func (m *maintenanceWatch) annotate(d *Daemon, r *diagnose.Report) {
	path := d.cfg.Load().MaintenanceFile()
	if m.w.Path != path {
		m.w = maintenance.Watcher{Path: path}
	}
	ws, err := m.w.Windows()
	if err != nil {
		d.log.Error("maintenance file unreadable: keeping the windows last read", keyError, err.Error())
	}
	now := time.Now()
	act := maintenance.ActiveAt(ws, now)
	for node, w := range act {
		if old, ok := m.active[node]; !ok || old != w {
			d.log.Info("maintenance: no automatic repair or Slack message for the node's subscriptions", keyNode, node,
				"until", w.Until.UTC().Format(time.RFC3339), "reason", w.Reason, "by", w.By)
		}
	}
	for node, w := range m.active {
		if _, ok := act[node]; !ok {
			how := "ended"
			if !now.Before(w.Until) {
				how = "expired"
			}
			d.log.Info("maintenance over: automatic repair and Slack messages resume", keyNode, node, "how", how, "reason", w.Reason)
		}
	}
	m.active = act
	r.MarkMaintenance(act)
	d.metrics.Maintenance(act)
}
