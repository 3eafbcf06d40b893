package upgrade

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/rdsadmin"
)

// TargetOptions name what an RDS node is upgraded to, so check can ask
// RDS what it would refuse (and what restore would then miss) before
// anything is taken apart.
type TargetOptions struct {
	// Version is the engine version the instance is upgraded to (16.4).
	Version string
	// ParameterGroup is the DB parameter group the upgraded instance is
	// to use (modify-db-instance --db-parameter-group-name).
	ParameterGroup string
	// AWS overrides SDK settings (tests shorten retry backoff).
	AWS awsclient.Options
}

// set reports whether anything of the target was given.
func (t TargetOptions) set() bool { return t.Version != "" || t.ParameterGroup != "" }

// targetProblems asks RDS whether it offers the upgrade of n's instance to
// the target version on its instance class, and whether the target
// parameter group exists, is of the target's family and loads pglogical
// with logical decoding (without them restore could not run afterwards).
func (r *Runner) targetProblems(ctx context.Context, n config.Node) ([]Problem, error) {
	if n.RDS == nil {
		return nil, fmt.Errorf("--target-version/--target-parameter-group: node %s names no RDS instance (set rds.identifier)", n.Name)
	}
	api, err := awsclient.New(r.Config.AWS, r.Target.AWS).RDS(ctx, r.Config.NodeRegion(n))
	if err != nil {
		return nil, err
	}
	c := &rdsadmin.Client{API: api}
	id := n.RDS.Identifier
	in, err := c.Describe(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.Engine != "postgres" {
		return nil, fmt.Errorf("--target-version/--target-parameter-group: instance %s runs %s: an Aurora cluster is upgraded as a whole, with DB cluster parameter groups, which pglmon does not check; the rest of the check needs no target", id, in.Engine)
	}
	out := precheckLog(ctx, c, id)
	add := func(p Problem) { out = append(out, p) }
	family := ""
	if v := r.Target.Version; v != "" {
		family = "postgres" + drift.Major(v)
		targets, known, err := c.UpgradeTargets(ctx, in.Engine, in.EngineVersion)
		if err != nil {
			return nil, err
		}
		var offered []string
		var target *rdsadmin.UpgradeTarget
		for i, t := range targets {
			if t.Major {
				offered = append(offered, t.Version)
			}
			if t.Version == v {
				target = &targets[i]
			}
		}
		switch {
		case !known:
			add(Problem{Kind: "target_version", Object: v,
				Message: fmt.Sprintf("RDS does not list instance %s's engine version %s %s, so the upgrade path to %s was not checked", id, in.Engine, in.EngineVersion, v),
				Fix:     fmt.Sprintf("aws rds describe-db-engine-versions --engine %s --engine-version %s --query 'DBEngineVersions[].ValidUpgradeTarget[].EngineVersion'", in.Engine, in.EngineVersion)})
		case target == nil:
			list := "none"
			if len(offered) > 0 {
				list = strings.Join(offered, ", ")
			}
			add(Problem{Kind: "target_version", Object: v, Blocking: true,
				Message: fmt.Sprintf("RDS offers no upgrade of instance %s from %s to %s: it refuses the modify-db-instance (major versions it offers from %s: %s)", id, in.EngineVersion, v, in.EngineVersion, list),
				Fix:     fmt.Sprintf("choose a version RDS offers from %s, or first upgrade to a minor version of %s that lists %s (aws rds describe-db-engine-versions --engine %s)", in.EngineVersion, drift.Major(in.EngineVersion), v, in.Engine)})
		case !target.Major:
			add(Problem{Kind: "target_version", Object: v,
				Message: fmt.Sprintf("%s to %s is a minor-version upgrade: replication slots and origins survive it, so prepare and restore are not needed", in.EngineVersion, v),
				Fix:     "upgrade without taking pglogical apart (pglmon maintenance start, then the minor-version upgrade)"})
		}
		// The class is asked about for a version RDS offers (or does not say).
		if in.Class != "" && (target != nil || !known) {
			ok, err := c.Orderable(ctx, in.Engine, v, in.Class)
			if err != nil {
				return nil, err
			}
			if !ok {
				add(Problem{Kind: "instance_class", Object: in.Class, Blocking: true,
					Message: fmt.Sprintf("instance %s's class %s is not offered with %s %s in %s: RDS refuses the upgrade", id, in.Class, in.Engine, v, r.Config.NodeRegion(n)),
					Fix:     fmt.Sprintf("move the instance to a class offered with %s first (aws rds describe-orderable-db-instance-options --engine %s --engine-version %s --query 'OrderableDBInstanceOptions[].DBInstanceClass')", v, in.Engine, v)})
			}
		}
	}
	g := r.Target.ParameterGroup
	if g == "" {
		if r.Target.Version != "" && drift.Major(r.Target.Version) != drift.Major(in.EngineVersion) && !in.Default() {
			add(Problem{Kind: "target_parameter_group", Object: in.ParameterGroup,
				Message: fmt.Sprintf("instance %s uses the custom parameter group %s: RDS asks for a group of family %s with the upgrade, and unless it loads pglogical (shared_preload_libraries) with rds.logical_replication = 1, restore cannot run afterwards; it was not checked", id, in.ParameterGroup, family),
				Fix:     "pass the group the upgrade will use: --target-parameter-group NAME"})
		}
		return out, nil
	}
	fam, found, err := c.GroupFamily(ctx, g)
	if err != nil {
		return nil, err
	}
	if family == "" {
		family = "postgres<new major version>"
	}
	create := fmt.Sprintf("aws rds create-db-parameter-group --db-parameter-group-name %s --db-parameter-group-family %s --description pglogical", g, family)
	switch {
	case !found:
		add(Problem{Kind: "target_parameter_group", Object: g, Blocking: true,
			Message: fmt.Sprintf("parameter group %s does not exist in %s", g, r.Config.NodeRegion(n)),
			Fix:     create + ", then set shared_preload_libraries (with pglogical) and rds.logical_replication = 1 in it"})
		return out, nil
	case r.Target.Version != "" && fam != family:
		add(Problem{Kind: "target_parameter_group", Object: g, Blocking: true,
			Message: fmt.Sprintf("parameter group %s is of family %s; an upgrade to %s needs one of family %s: RDS refuses the modify-db-instance", g, fam, r.Target.Version, family),
			Fix:     fmt.Sprintf("use (or create) a group of family %s: %s", family, create)})
	case fam == "postgres"+drift.Major(in.EngineVersion):
		add(Problem{Kind: "target_parameter_group", Object: g, Blocking: true,
			Message: fmt.Sprintf("parameter group %s is of family %s, instance %s's current major version: a major-version upgrade needs a group of the new version's family", g, fam, id),
			Fix:     fmt.Sprintf("use (or create) a group of the new version's family: %s", create)})
	}
	ps, err := c.Parameters(ctx, g, rdsadmin.ParamPreload, rdsadmin.ParamLogical)
	if err != nil {
		return nil, err
	}
	var missing []string
	preload, addLib := rdsadmin.AddLibrary(ps[rdsadmin.ParamPreload], "pglogical")
	if addLib {
		missing = append(missing, fmt.Sprintf("shared_preload_libraries = %q lacks pglogical", ps[rdsadmin.ParamPreload]))
	}
	if ps[rdsadmin.ParamLogical] != "1" {
		missing = append(missing, fmt.Sprintf("rds.logical_replication = %q (needs 1)", ps[rdsadmin.ParamLogical]))
	}
	if len(missing) == 0 {
		return out, nil
	}
	fix := fmt.Sprintf("aws rds modify-db-parameter-group --db-parameter-group-name %s --parameters", g)
	if addLib {
		fix += fmt.Sprintf(" 'ParameterName=shared_preload_libraries,ParameterValue=\"%s\",ApplyMethod=pending-reboot'", preload)
	}
	if ps[rdsadmin.ParamLogical] != "1" {
		fix += " 'ParameterName=rds.logical_replication,ParameterValue=1,ApplyMethod=pending-reboot'"
	}
	if strings.HasPrefix(g, "default.") {
		fix = fmt.Sprintf("RDS does not let anyone change a default group: %s, set both parameters in it, and upgrade with it", create)
	}
	add(Problem{Kind: "target_parameter_group", Object: g, Blocking: true,
		Message: fmt.Sprintf("parameter group %s: %s: the upgraded instance would start without pglogical's replication, and restore could not re-create it", g, strings.Join(missing, ", ")),
		Fix:     fix})
	return out, nil
}

// precheckLogLines is how many lines of RDS's pre-check log a problem quotes.
const precheckLogLines = 12

// precheckLog reads RDS's own log of an upgrade its pre-check refused
// (error/pg_upgrade_precheck.log.<time>, kept for the instance's
// rds.log_retention_period, 3 days by default): what RDS said then, beside
// what this check finds now. It reports, never refuses: what still holds is
// what the other problems say.
func precheckLog(ctx context.Context, c *rdsadmin.Client, id string) []Problem {
	unread := func(err error) []Problem {
		return []Problem{{Kind: "rds_precheck_log", Object: id,
			Message: fmt.Sprintf("RDS's logs of earlier upgrade attempts of instance %s were not read: %v", id, err),
			Fix:     "grant rds:DescribeDBLogFiles and rds:DownloadDBLogFilePortion to read what RDS's pre-check said of a refused upgrade"}}
	}
	files, err := c.UpgradeLogs(ctx, id)
	if err != nil {
		return unread(err)
	}
	i := slices.IndexFunc(files, func(f rdsadmin.LogFileInfo) bool { return strings.Contains(f.Name, "pg_upgrade_precheck") })
	if i < 0 {
		return nil
	}
	pre := files[i]
	text, _, more, err := c.LogSince(ctx, id, pre.Name, "0", 1000, 64<<10)
	if err != nil {
		return unread(err)
	}
	var said []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if strings.Trim(l, "-=*# ") == "" {
			continue
		}
		if len(said) == precheckLogLines {
			more = true
			break
		}
		if len(l) > 300 {
			cut := 300
			for cut > 0 && !utf8.RuneStart(l[cut]) {
				cut-- // not in the middle of a character
			}
			l = l[:cut] + "..."
		}
		said = append(said, l)
	}
	msg := fmt.Sprintf("RDS's pre-check log of instance %s (%s, written %s) says: %s", id, pre.Name, pre.Written.Format(time.RFC3339), strings.Join(said, " | "))
	if more {
		msg += " | ..."
	}
	var others []string
	for _, f := range files {
		if d := f.Written.Sub(pre.Written); f.Name != pre.Name && d < time.Hour && d > -time.Hour {
			others = append(others, f.Name)
		}
	}
	if len(others) > 0 {
		msg += "; the same attempt wrote " + strings.Join(others, ", ")
	}
	return []Problem{{Kind: "rds_precheck_log", Object: pre.Name, Message: msg,
		Fix: fmt.Sprintf("the problems listed here are what still holds; the whole log: aws rds download-db-log-file-portion --db-instance-identifier %s --log-file-name %s --starting-token 0 --output text", id, pre.Name)}}
}
