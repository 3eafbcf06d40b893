package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/rdsstorage"
)

// storageWatcher reads, every aws.storage_check_every, how much storage each
// node with rds: has left (DescribeDBInstances for the allocated storage,
// CloudWatch FreeStorageSpace over the last hour for the free storage and
// its trend). PostgreSQL cannot tell it: on RDS there is no SQL for free
// space, and an inactive slot fills the volume with WAL until the instance
// is storage-full.
type storageWatcher struct {
	mu       sync.Mutex
	readings map[string]rdsstorage.Reading // node -> last reading
	read     map[string]time.Time          // node -> when it was read
	errs     map[string]string
	period   period
}

func (w *storageWatcher) maybeRun(ctx context.Context, d *Daemon, wg *sync.WaitGroup) {
	cfg := d.cfg.Load()
	every := cfg.AWS.StorageCheckEvery.D()
	nodes := rdsNodes(cfg)
	w.mu.Lock()
	due := len(nodes) > 0 && w.period.start(every)
	w.mu.Unlock()
	if due {
		wg.Go(func() { w.run(ctx, d, cfg, nodes, every) })
	}
}

func (w *storageWatcher) run(ctx context.Context, d *Daemon, cfg *config.Config, nodes []config.Node, every time.Duration) {
	f := awsclient.New(cfg.AWS, awsclient.Options{})
	got, errs := map[string]rdsstorage.Reading{}, map[string]string{}
	for _, n := range nodes {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		r, err := rdsstorage.ReadNode(cctx, f, cfg, n, time.Now())
		cancel()
		if errors.Is(err, rdsstorage.ErrAurora) {
			continue
		}
		if err != nil {
			errs[n.Name] = err.Error()
			continue
		}
		got[n.Name] = r
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.readings == nil {
		w.readings, w.read = map[string]rdsstorage.Reading{}, map[string]time.Time{}
	}
	now := time.Now()
	for node, e := range errs {
		if w.errs[node] != e {
			d.log.Warn("cannot read the free storage of an RDS node", keyNode, node, keyError, e)
		}
		// A reading three checks old no longer says how the volume is.
		if now.Sub(w.read[node]) > 3*every {
			delete(w.readings, node)
			delete(w.read, node)
		}
	}
	for node, r := range got {
		w.readings[node], w.read[node] = r, now
	}
	for node := range w.readings {
		if !configured(cfg, node) {
			delete(w.readings, node)
			delete(w.read, node)
		}
	}
	w.errs = errs
	w.period.finish()
}

func configured(cfg *config.Config, node string) bool {
	n, ok := cfg.Node(node)
	return ok && n.RDS != nil
}

// annotate records each node's reading and adds its storage_low finding.
func (w *storageWatcher) annotate(r *diagnose.Report, th config.Thresholds) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for node, st := range w.readings {
		r.AddStorage(node, st, th)
	}
}
