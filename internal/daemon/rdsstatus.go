package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rdsadmin"
)

// rdsStatusEvery is how often the RDS status of a node that does not answer
// is read again.
const rdsStatusEvery = time.Minute

// rdsStatusWatcher reads, for a node with rds: that pglmon cannot reach,
// what RDS says of the instance (storage-full, rebooting, stopped, ...):
// the reason is there, not in the connection error. Read when the node
// stops answering and each minute while it does not; forgotten once it
// answers.
type rdsStatusWatcher struct {
	mu      sync.Mutex
	status  map[string]rdsadmin.Instance // node -> instance as last read
	last    map[string]time.Time         // node -> when last read
	failed  map[string]string            // node -> why it could not be read
	running bool
}

func (w *rdsStatusWatcher) maybeRun(ctx context.Context, d *Daemon, snaps []probe.Snapshot, wg *sync.WaitGroup) {
	cfg := d.cfg.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == nil {
		w.status, w.last, w.failed = map[string]rdsadmin.Instance{}, map[string]time.Time{}, map[string]string{}
	}
	var due []config.Node
	for _, s := range snaps {
		n, ok := cfg.Node(s.Node)
		if !ok || n.RDS == nil {
			continue
		}
		if s.Up() {
			delete(w.status, n.Name)
			delete(w.last, n.Name)
			continue
		}
		if time.Since(w.last[n.Name]) >= rdsStatusEvery {
			due = append(due, n)
		}
	}
	if len(due) == 0 || w.running {
		return
	}
	for _, n := range due {
		w.last[n.Name] = time.Now()
	}
	w.running = true
	wg.Go(func() { w.run(ctx, d, cfg, due) })
}

func (w *rdsStatusWatcher) run(ctx context.Context, d *Daemon, cfg *config.Config, nodes []config.Node) {
	got, errs := map[string]rdsadmin.Instance{}, map[string]string{}
	f := awsclient.New(cfg.AWS, awsclient.Options{})
	for _, n := range nodes {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		rc, err := rdsadmin.ForNode(cctx, f, cfg, n)
		var in rdsadmin.Instance
		if err == nil {
			in, err = rc.Describe(cctx, n.RDS.Identifier)
		}
		cancel()
		if err != nil {
			errs[n.Name] = err.Error()
			continue
		}
		got[n.Name] = in
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for node, e := range errs {
		if w.failed[node] != e {
			d.log.Warn("cannot read the RDS status of an unreachable node", keyNode, node, keyError, e)
		}
		w.failed[node] = e
	}
	for node, in := range got {
		delete(w.failed, node)
		if w.status[node].Status != in.Status {
			d.log.Info("RDS status of an unreachable node", keyNode, node, "instance", in.Identifier, "rds_status", in.Status)
		}
		if _, still := w.last[node]; still { // not answering again meanwhile
			w.status[node] = in
		}
	}
	w.running = false
}

// annotate adds what RDS says to the node_unreachable findings.
func (w *rdsStatusWatcher) annotate(r *diagnose.Report) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for node, in := range w.status {
		r.ExplainUnreachable(node, in.Status, in.Unreachable())
	}
}
