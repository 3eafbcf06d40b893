package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/rdsadmin"
)

// rdsWatcher reads the DB parameter group of every node with rds: on a
// schedule. A group that lost pglogical (or logical replication) does not
// hurt until the next reboot, a maintenance window or a failover, and then
// stops replication: it becomes a warning long before that.
type rdsWatcher struct {
	mu     sync.Mutex
	checks map[string]rdsadmin.Check
	errs   map[string]string
	period period
}

// rdsNodes are the configured nodes with rds:.
func rdsNodes(cfg *config.Config) []config.Node {
	var nodes []config.Node
	for _, n := range cfg.Nodes {
		if n.RDS != nil {
			nodes = append(nodes, n)
		}
	}
	return nodes
}

// period runs a job at most once per interval, never twice at once; its
// owner's lock guards it.
type period struct {
	last    time.Time
	running bool
}

// start reports whether a run is due, and if so marks it running.
func (p *period) start(every time.Duration) bool {
	if every <= 0 || p.running || time.Since(p.last) < every {
		return false
	}
	p.running = true
	return true
}

// finish marks the run over.
func (p *period) finish() { p.last, p.running = time.Now(), false }

func (w *rdsWatcher) maybeRun(ctx context.Context, d *Daemon, wg *sync.WaitGroup) {
	cfg := d.cfg.Load()
	nodes := rdsNodes(cfg)
	w.mu.Lock()
	due := len(nodes) > 0 && w.period.start(cfg.AWS.RDSCheckEvery.D())
	w.mu.Unlock()
	if due {
		wg.Go(func() { w.run(ctx, d, cfg, nodes) })
	}
}

func (w *rdsWatcher) run(ctx context.Context, d *Daemon, cfg *config.Config, nodes []config.Node) {
	f := awsclient.New(cfg.AWS, awsclient.Options{})
	checks, errs := map[string]rdsadmin.Check{}, map[string]string{}
	for _, n := range nodes {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		rc, err := rdsadmin.ForNode(cctx, f, cfg, n)
		var ch rdsadmin.Check
		if err == nil {
			ch, err = rc.CheckParameters(cctx, n.RDS.Identifier)
		}
		cancel()
		if err != nil {
			errs[n.Name] = err.Error()
			continue
		}
		checks[n.Name] = ch
	}
	w.mu.Lock()
	for node, e := range errs {
		if w.errs[node] != e {
			d.log.Warn("cannot read the RDS parameter group", keyNode, node, keyError, e)
		}
	}
	w.checks, w.errs = checks, errs
	w.period.finish()
	w.mu.Unlock()
}

// annotate adds the parameter group findings to their nodes.
func (w *rdsWatcher) annotate(r *diagnose.Report) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range r.Nodes {
		n := &r.Nodes[i]
		ch, ok := w.checks[n.Name]
		if !ok {
			continue
		}
		in := ch.Instance
		var what, fixes []string
		sev := diagnose.Warning
		if _, ok := ch.Changes[rdsadmin.ParamPreload]; ok {
			what = append(what, fmt.Sprintf("shared_preload_libraries = %q lacks pglogical", ch.Preload))
		}
		if _, ok := ch.Changes[rdsadmin.ParamLogical]; ok {
			what = append(what, fmt.Sprintf("rds.logical_replication = %q", ch.Logical))
		}
		next := "replication stops at the next reboot (maintenance, failover)"
		if len(what) > 0 {
			fixes = append(fixes, ch.Fix())
		}
		slots, states := 0, 0
		if n.Capacity != nil {
			slots = n.Capacity.Slots
		}
		if n.OriginStates != nil {
			states = len(n.OriginStates.Held)
		}
		if held := ch.SlotsShort(slots, states); held != "" {
			sev = diagnose.Critical
			what = append(what, fmt.Sprintf("max_replication_slots = %s, below the %s the instance holds now", ch.MaxSlots, held))
			next = "PostgreSQL does not start with fewer slots or origin states than it holds (\"too many replication slots active before shutdown\", \"could not find free replication state\"), so the next reboot (maintenance, failover, a parameter change) leaves the instance down"
			if len(fixes) == 1 {
				next = "replication stops, and " + next
			}
			fixes = append(fixes, fmt.Sprintf("before any reboot, raise max_replication_slots in the group again (aws rds modify-db-parameter-group --db-parameter-group-name %s --parameters ParameterName=max_replication_slots,ParameterValue=<at least %s>,ApplyMethod=pending-reboot), or drop what holds them",
				in.ParameterGroup, strings.Fields(held)[0]))
		}
		if len(what) > 0 {
			n.Findings = append(n.Findings, diagnose.Finding{Code: diagnose.CodeRDSParametersMissing, Severity: sev, Human: true,
				Message: fmt.Sprintf("RDS instance %s, parameter group %s: %s; %s. Fix: %s",
					in.Identifier, in.ParameterGroup, strings.Join(what, ", "), next, strings.Join(fixes, "; and "))})
			r.Health = diagnose.Worst(r.Health, sev)
		}
		if ch.PendingReboot() {
			n.Findings = append(n.Findings, diagnose.Finding{Code: diagnose.CodeRDSPendingReboot, Severity: diagnose.Warning, Human: true,
				Message: fmt.Sprintf("RDS instance %s: parameter group %s has changes that apply only at the next reboot; check them before a maintenance window reboots it", in.Identifier, in.ParameterGroup)})
			r.Health = diagnose.Worst(r.Health, diagnose.Warning)
		}
	}
}
