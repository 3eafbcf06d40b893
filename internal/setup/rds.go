package setup

import (
	"context"
	"fmt"
	"time"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/rdsadmin"
)

// RDSOptions say what setup may do to RDS instances; nothing of it happens
// unless asked for.
type RDSOptions struct {
	// Parameters lets apply write missing values to custom parameter groups.
	Parameters bool
	// Reboot lets apply reboot instances whose parameter group is pending-reboot.
	Reboot bool
	// Timeout bounds each reboot and wait (default 30 minutes).
	Timeout time.Duration
	// Poll is the interval between status reads (default 15 s).
	Poll time.Duration
	// AWS overrides SDK settings (tests shorten retry backoff).
	AWS awsclient.Options
}

func (r *Runner) rdsClient(ctx context.Context, n config.Node) (*rdsadmin.Client, error) {
	if r.aws == nil {
		r.aws = awsclient.New(r.Config.AWS, r.RDS.AWS)
	}
	c, err := rdsadmin.ForNode(ctx, r.aws, r.Config, n)
	if err != nil {
		return nil, err
	}
	c.Poll, c.Out = r.RDS.Poll, r.Out
	return c, nil
}

// rdsNodes lists the involved nodes that name an RDS instance.
func (r *Runner) rdsNodes() []config.Node {
	var out []config.Node
	for _, name := range r.involved() {
		if n, _ := r.Config.Node(name); n.RDS != nil {
			out = append(out, n)
		}
	}
	return out
}

// checkRDS adds a problem for each RDS parameter group that is not ready.
func (r *Runner) checkRDS(ctx context.Context, p *Plan) {
	for _, n := range r.rdsNodes() {
		c, err := r.rdsClient(ctx, n)
		var ch rdsadmin.Check
		if err == nil {
			ch, err = c.CheckParameters(ctx, n.RDS.Identifier)
		}
		if err != nil {
			p.Problems = append(p.Problems, Problem{n.Name, "cannot read RDS instance " + n.RDS.Identifier + ": " + err.Error(),
				"check rds.identifier and rds.region, and that the AWS credentials allow rds:DescribeDBInstances and rds:DescribeDBParameters"})
			continue
		}
		for _, what := range ch.Problems() {
			p.Problems = append(p.Problems, Problem{n.Name, what, ch.Fix()})
		}
	}
}

// applyRDS writes missing parameters (with --rds-parameters) and reboots
// instances that need it (with --reboot). Re-running it changes nothing
// once the groups are right and in-sync.
func (r *Runner) applyRDS(ctx context.Context) error {
	timeout := r.RDS.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	var waiting []string
	for _, n := range r.rdsNodes() {
		c, err := r.rdsClient(ctx, n)
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		id := n.RDS.Identifier
		ch, err := c.CheckParameters(ctx, id)
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		if len(ch.Changes) > 0 && r.RDS.Parameters {
			if err := r.beginOnce(); err != nil {
				return err
			}
			start := time.Now()
			err := c.ApplyParameters(ctx, ch)
			r.rdsStep(n.Name, "modify parameter group "+ch.Instance.ParameterGroup+" of instance "+id+fmt.Sprintf(" %v", ch.Changes), start, err)
			if err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
			if ch, err = c.CheckParameters(ctx, id); err != nil {
				return fmt.Errorf("node %s: %w", n.Name, err)
			}
		}
		if !ch.PendingReboot() {
			continue
		}
		if !r.RDS.Reboot {
			waiting = append(waiting, fmt.Sprintf("%s (instance %s)", n.Name, id))
			continue
		}
		if err := r.beginOnce(); err != nil {
			return err
		}
		start := time.Now()
		err = c.RebootAndWait(ctx, id, timeout)
		r.rdsStep(n.Name, "reboot instance "+id+" and wait until it is available", start, err)
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	if len(waiting) > 0 {
		return fmt.Errorf("the parameter groups of %v wait for a reboot: re-run with --reboot, or reboot in a maintenance window and run apply again; nothing else was changed", waiting)
	}
	return nil
}

// rdsStep records an RDS API action as a step of the audited attempt.
func (r *Runner) rdsStep(node, action string, start time.Time, err error) {
	var msg string
	if err != nil {
		msg = err.Error()
	}
	r.run.Step(node, action, "", nil, time.Since(start), msg)
}
