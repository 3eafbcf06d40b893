package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/logtail"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/serverlog"
)

// logWatcher reads, for a subscriber whose subscription is down, the end of
// its PostgreSQL log (package logtail: the RDS API, or SQL on a
// self-managed server) and adds the apply worker's last error to the
// subscription's finding: why it is down is written there and nowhere in
// the catalogs.
type logWatcher struct {
	mu      sync.Mutex
	errs    map[string]serverlog.Errors // node -> its apply workers' errors
	files   map[string]string           // node -> the log file read
	failed  map[string]string           // node -> why it could not be read
	last    map[string]time.Time
	running bool
}

// maybeRun reads the logs that are due, in the background.
func (w *logWatcher) maybeRun(ctx context.Context, d *Daemon, r *diagnose.Report, wg *sync.WaitGroup) {
	cfg := d.cfg.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		return
	}
	var due []config.Node
	for _, s := range r.Subscriptions {
		n, ok := cfg.Node(s.Subscriber)
		if !ok || n.LogSource() == config.ServerLogOff || s.Status != probe.StatusDown || time.Since(w.last[n.Name]) < d.logEvery() {
			continue
		}
		if w.last == nil {
			w.last = map[string]time.Time{}
		}
		w.last[n.Name] = time.Now()
		due = append(due, n)
	}
	if len(due) == 0 {
		return
	}
	w.running = true
	wg.Go(func() { w.run(ctx, d, cfg, due) })
}

func (w *logWatcher) run(ctx context.Context, d *Daemon, cfg *config.Config, nodes []config.Node) {
	type read struct {
		file string
		errs serverlog.Errors
		err  error
	}
	got := map[string]read{}
	for _, n := range nodes {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		var rd read
		var text string
		rd.file, text, rd.err = logtail.Read(cctx, cfg, n)
		cancel()
		rd.errs = serverlog.WorkerErrors(text)
		got[n.Name] = rd
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.errs == nil {
		w.errs, w.files, w.failed = map[string]serverlog.Errors{}, map[string]string{}, map[string]string{}
	}
	for node, rd := range got {
		if rd.err != nil {
			if w.failed[node] != rd.err.Error() {
				d.log.Warn("cannot read the subscriber's server log", keyNode, node, keyError, rd.err.Error())
			}
			w.failed[node] = rd.err.Error()
			continue
		}
		delete(w.failed, node)
		w.errs[node], w.files[node] = rd.errs, rd.file
	}
	w.running = false
}

// annotate adds the apply worker's last error to down subscriptions' findings.
func (w *logWatcher) annotate(r *diagnose.Report) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for node, errs := range w.errs {
		serverlog.Annotate(r, node, w.files[node], errs)
	}
}
