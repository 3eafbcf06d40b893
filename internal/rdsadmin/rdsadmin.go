// Package rdsadmin reads and changes what pglogical needs of an Amazon RDS
// DB instance: its DB parameter group (shared_preload_libraries,
// rds.logical_replication), reboots that apply it, and snapshots.
package rdsadmin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
)

// API is the part of the RDS client pglmon uses.
type API interface {
	DescribeDBInstances(context.Context, *rds.DescribeDBInstancesInput, ...func(*rds.Options)) (*rds.DescribeDBInstancesOutput, error)
	DescribeDBParameters(context.Context, *rds.DescribeDBParametersInput, ...func(*rds.Options)) (*rds.DescribeDBParametersOutput, error)
	DescribeDBParameterGroups(context.Context, *rds.DescribeDBParameterGroupsInput, ...func(*rds.Options)) (*rds.DescribeDBParameterGroupsOutput, error)
	DescribeDBEngineVersions(context.Context, *rds.DescribeDBEngineVersionsInput, ...func(*rds.Options)) (*rds.DescribeDBEngineVersionsOutput, error)
	DescribeOrderableDBInstanceOptions(context.Context, *rds.DescribeOrderableDBInstanceOptionsInput, ...func(*rds.Options)) (*rds.DescribeOrderableDBInstanceOptionsOutput, error)
	ModifyDBParameterGroup(context.Context, *rds.ModifyDBParameterGroupInput, ...func(*rds.Options)) (*rds.ModifyDBParameterGroupOutput, error)
	RebootDBInstance(context.Context, *rds.RebootDBInstanceInput, ...func(*rds.Options)) (*rds.RebootDBInstanceOutput, error)
	CreateDBSnapshot(context.Context, *rds.CreateDBSnapshotInput, ...func(*rds.Options)) (*rds.CreateDBSnapshotOutput, error)
	DescribeDBSnapshots(context.Context, *rds.DescribeDBSnapshotsInput, ...func(*rds.Options)) (*rds.DescribeDBSnapshotsOutput, error)
	DescribeDBLogFiles(context.Context, *rds.DescribeDBLogFilesInput, ...func(*rds.Options)) (*rds.DescribeDBLogFilesOutput, error)
	DownloadDBLogFilePortion(context.Context, *rds.DownloadDBLogFilePortionInput, ...func(*rds.Options)) (*rds.DownloadDBLogFilePortionOutput, error)
}

// LogTail returns the name and the last lines (at most lines) of the
// instance's most recently written PostgreSQL log file ("" when it has
// none), and the Marker after them: where a later LogSince of the file starts.
func (c *Client) LogTail(ctx context.Context, id string, lines int) (name, text, marker string, err error) {
	if name, err = c.LogFile(ctx, id); err != nil || name == "" {
		return name, "", "", err
	}
	text, marker, err = c.FileTail(ctx, id, name, lines)
	return name, text, marker, err
}

// FileTail returns the last lines (at most lines) of the instance's log
// file name, and the Marker after them.
func (c *Client) FileTail(ctx context.Context, id, name string, lines int) (text, marker string, err error) {
	out, err := c.API.DownloadDBLogFilePortion(ctx, &rds.DownloadDBLogFilePortionInput{DBInstanceIdentifier: aws.String(id),
		LogFileName: aws.String(name), NumberOfLines: aws.Int32(int32(lines))})
	if err != nil {
		return "", "", awsclient.Explain("RDS instance "+id+" log file "+name, err)
	}
	return aws.ToString(out.LogFileData), aws.ToString(out.Marker), nil
}

// LogFile names the instance's most recently written PostgreSQL log file
// ("" when it has none): the last of ServerLogs.
func (c *Client) LogFile(ctx context.Context, id string) (string, error) {
	files, err := c.ServerLogs(ctx, id)
	if err != nil || len(files) == 0 {
		return "", err
	}
	return files[len(files)-1].Name, nil
}

// logFiles lists the instance's log files whose names contain contains
// ("": all), every page of them: an instance keeping a week of hourly logs
// has more than one page holds.
func (c *Client) logFiles(ctx context.Context, id, contains string) ([]types.DescribeDBLogFilesDetails, error) {
	in := &rds.DescribeDBLogFilesInput{DBInstanceIdentifier: aws.String(id)}
	if contains != "" {
		in.FilenameContains = aws.String(contains)
	}
	var all []types.DescribeDBLogFilesDetails
	for pages := rds.NewDescribeDBLogFilesPaginator(c.API, in); pages.HasMorePages(); {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, awsclient.Explain("RDS instance "+id+" log files", err)
		}
		all = append(all, page.DescribeDBLogFiles...)
	}
	return all, nil
}

// LogFileInfo is one of an instance's log files.
type LogFileInfo struct {
	Name string
	// Written is when it was last written.
	Written time.Time
	Size    int64
}

// ServerLogs lists the instance's PostgreSQL log files
// (error/postgresql.log.<hour>), oldest first: by when each was last
// written, then by name. Not the .csv files RDS writes beside them with
// log_destination = csvlog: the same messages, in another format.
func (c *Client) ServerLogs(ctx context.Context, id string) ([]LogFileInfo, error) {
	out, err := c.logInfos(ctx, id, "postgresql.log", func(name string) bool {
		return strings.Contains(name, "postgresql.log") && !strings.HasSuffix(name, ".csv") && !strings.HasSuffix(name, ".json")
	})
	slices.SortFunc(out, func(a, b LogFileInfo) int {
		if c := a.Written.Compare(b.Written); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, err
}

// UpgradeLogs lists the log files a major-version upgrade leaves on the
// instance: pg_upgrade's (RDS names its pre-check log
// error/pg_upgrade_precheck.log.<time>) and the error/*.txt detail files
// some of its checks write, newest first.
func (c *Client) UpgradeLogs(ctx context.Context, id string) ([]LogFileInfo, error) {
	out, err := c.logInfos(ctx, id, "", func(name string) bool {
		return strings.Contains(name, "pg_upgrade") || (strings.HasPrefix(name, "error/") && strings.Contains(name, ".txt"))
	})
	slices.SortFunc(out, func(a, b LogFileInfo) int { return b.Written.Compare(a.Written) })
	return out, err
}

// logInfos lists the instance's log files whose names contain contains
// and that keep accepts.
func (c *Client) logInfos(ctx context.Context, id, contains string, keep func(name string) bool) ([]LogFileInfo, error) {
	files, err := c.logFiles(ctx, id, contains)
	if err != nil {
		return nil, err
	}
	var out []LogFileInfo
	for _, f := range files {
		if name := aws.ToString(f.LogFileName); keep(name) {
			out = append(out, LogFileInfo{Name: name, Written: time.UnixMilli(aws.ToInt64(f.LastWritten)).UTC(), Size: aws.ToInt64(f.Size)})
		}
	}
	return out, nil
}

// LogSince reads file from marker ("0": its start) to its end, in portions
// of lines, at most max bytes: the text, the Marker to go on from, and
// whether more was left unread (past max).
func (c *Client) LogSince(ctx context.Context, id, file, marker string, lines, max int) (text, next string, more bool, err error) {
	var b strings.Builder
	next = marker
	for {
		out, err := c.API.DownloadDBLogFilePortion(ctx, &rds.DownloadDBLogFilePortionInput{DBInstanceIdentifier: aws.String(id),
			LogFileName: aws.String(file), Marker: aws.String(next), NumberOfLines: aws.Int32(int32(lines))})
		if err != nil {
			return b.String(), next, false, awsclient.Explain("RDS instance "+id+" log file "+file, err)
		}
		b.WriteString(aws.ToString(out.LogFileData))
		if m := aws.ToString(out.Marker); m != "" {
			next = m
		}
		pending := aws.ToBool(out.AdditionalDataPending)
		if !pending || aws.ToString(out.LogFileData) == "" {
			return b.String(), next, false, nil
		}
		if b.Len() >= max {
			return b.String(), next, true, nil
		}
	}
}

// ForNode returns a client for the region of node n (which has rds:),
// from factory f.
func ForNode(ctx context.Context, f *awsclient.Factory, cfg *config.Config, n config.Node) (*Client, error) {
	api, err := f.RDS(ctx, cfg.NodeRegion(n))
	if err != nil {
		return nil, err
	}
	return &Client{API: api}, nil
}

// Instance is what pglmon needs to know of a DB instance.
type Instance struct {
	Identifier    string
	Status        string // available, rebooting, modifying, ...
	Engine        string
	EngineVersion string
	// Class is the instance class (db.r6g.large).
	Class          string
	ParameterGroup string
	// ApplyStatus is the parameter group's status on the instance:
	// in-sync, pending-reboot or applying.
	ApplyStatus string
	// AllocatedGiB is the instance's storage; MaxAllocatedGiB the limit
	// storage autoscaling may grow it to (0: autoscaling off).
	AllocatedGiB, MaxAllocatedGiB int64
}

// Default reports whether the instance uses a default parameter group,
// which RDS does not let anyone modify.
func (i Instance) Default() bool { return strings.HasPrefix(i.ParameterGroup, "default.") }

// Client works on DB instances of one region.
type Client struct {
	API API
	// Poll is the interval between status reads while waiting (default 15s).
	Poll time.Duration
	// Out receives progress lines while waiting; may be nil.
	Out io.Writer
}

func (c *Client) poll() time.Duration {
	if c.Poll > 0 {
		return c.Poll
	}
	return 15 * time.Second
}

func (c *Client) say(format string, args ...any) {
	if c.Out != nil {
		fmt.Fprintf(c.Out, format+"\n", args...)
	}
}

// Describe reads the instance.
func (c *Client) Describe(ctx context.Context, id string) (Instance, error) {
	out, err := c.API.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	if err != nil {
		return Instance{}, awsclient.Explain("RDS instance "+id, err)
	}
	if len(out.DBInstances) != 1 {
		return Instance{}, fmt.Errorf("RDS instance %s: DescribeDBInstances returned %d instances", id, len(out.DBInstances))
	}
	d := out.DBInstances[0]
	in := Instance{
		Identifier:    aws.ToString(d.DBInstanceIdentifier),
		Status:        aws.ToString(d.DBInstanceStatus),
		Engine:        aws.ToString(d.Engine),
		EngineVersion: aws.ToString(d.EngineVersion),
		Class:         aws.ToString(d.DBInstanceClass),
		AllocatedGiB:  int64(aws.ToInt32(d.AllocatedStorage)),
	}
	if m := int64(aws.ToInt32(d.MaxAllocatedStorage)); m > in.AllocatedGiB {
		in.MaxAllocatedGiB = m
	}
	if len(d.DBParameterGroups) > 0 {
		in.ParameterGroup = aws.ToString(d.DBParameterGroups[0].DBParameterGroupName)
		in.ApplyStatus = aws.ToString(d.DBParameterGroups[0].ParameterApplyStatus)
	}
	return in, nil
}

// Parameters reads the named parameters of a DB parameter group (every
// page); a parameter without a value maps to "".
func (c *Client) Parameters(ctx context.Context, group string, names ...string) (map[string]string, error) {
	out := map[string]string{}
	var marker *string
	for {
		page, err := c.API.DescribeDBParameters(ctx, &rds.DescribeDBParametersInput{DBParameterGroupName: aws.String(group), Marker: marker, MaxRecords: aws.Int32(100)})
		if err != nil {
			return nil, awsclient.Explain("RDS parameter group "+group, err)
		}
		for _, p := range page.Parameters {
			if name := aws.ToString(p.ParameterName); slices.Contains(names, name) {
				out[name] = aws.ToString(p.ParameterValue)
			}
		}
		if aws.ToString(page.Marker) == "" {
			return out, nil
		}
		marker = page.Marker
	}
}

// GroupFamily returns the family of a DB parameter group (postgres16);
// found is false when RDS has no group of that name.
func (c *Client) GroupFamily(ctx context.Context, group string) (family string, found bool, err error) {
	out, err := c.API.DescribeDBParameterGroups(ctx, &rds.DescribeDBParameterGroupsInput{DBParameterGroupName: aws.String(group)})
	var nf *types.DBParameterGroupNotFoundFault
	switch {
	case errors.As(err, &nf):
		return "", false, nil
	case err != nil:
		return "", false, awsclient.Explain("RDS parameter group "+group, err)
	case len(out.DBParameterGroups) != 1:
		return "", false, fmt.Errorf("RDS parameter group %s: DescribeDBParameterGroups returned %d groups", group, len(out.DBParameterGroups))
	}
	return aws.ToString(out.DBParameterGroups[0].DBParameterGroupFamily), true, nil
}

// UpgradeTarget is an engine version RDS upgrades another to.
type UpgradeTarget struct {
	Version string
	Major   bool
}

// UpgradeTargets lists the engine versions RDS upgrades engine version
// to; known is false when RDS does not list the version at all.
func (c *Client) UpgradeTargets(ctx context.Context, engine, version string) (targets []UpgradeTarget, known bool, err error) {
	out, err := c.API.DescribeDBEngineVersions(ctx, &rds.DescribeDBEngineVersionsInput{Engine: aws.String(engine), EngineVersion: aws.String(version)})
	if err != nil {
		return nil, false, awsclient.Explain("RDS engine version "+engine+" "+version, err)
	}
	for _, v := range out.DBEngineVersions {
		if aws.ToString(v.EngineVersion) != version {
			continue
		}
		known = true
		for _, t := range v.ValidUpgradeTarget {
			targets = append(targets, UpgradeTarget{Version: aws.ToString(t.EngineVersion), Major: aws.ToBool(t.IsMajorVersionUpgrade)})
		}
	}
	return targets, known, nil
}

// Orderable reports whether RDS offers instance class with engine version
// (in the client's region).
func (c *Client) Orderable(ctx context.Context, engine, version, class string) (bool, error) {
	out, err := c.API.DescribeOrderableDBInstanceOptions(ctx, &rds.DescribeOrderableDBInstanceOptionsInput{
		Engine: aws.String(engine), EngineVersion: aws.String(version), DBInstanceClass: aws.String(class), MaxRecords: aws.Int32(20)})
	if err != nil {
		return false, awsclient.Explain("RDS orderable instance options for "+engine+" "+version, err)
	}
	for _, o := range out.OrderableDBInstanceOptions {
		if aws.ToString(o.DBInstanceClass) == class {
			return true, nil
		}
	}
	return false, nil
}

// Parameter names pglogical needs on RDS.
const (
	ParamPreload = "shared_preload_libraries"
	ParamLogical = "rds.logical_replication"
	// ParamMaxSlots sizes the slots and the replication origin states:
	// PostgreSQL does not start with fewer than it holds.
	ParamMaxSlots = "max_replication_slots"
)

// Check is the state of an instance's parameters for pglogical.
type Check struct {
	Instance Instance
	// Preload is the group's shared_preload_libraries; Logical its rds.logical_replication.
	Preload, Logical string
	// MaxSlots is the group's max_replication_slots ("" when not read).
	MaxSlots string
	// Changes are the parameter values the group needs (name -> new value).
	Changes map[string]string
}

// PendingReboot reports whether the group holds changes the instance applies only after a reboot.
func (ch Check) PendingReboot() bool { return ch.Instance.ApplyStatus == "pending-reboot" }

// Problems describes what is missing and how to fix it, in words for people.
func (ch Check) Problems() []string {
	var out []string
	in := ch.Instance
	if v, ok := ch.Changes[ParamPreload]; ok {
		out = append(out, fmt.Sprintf("parameter group %s: shared_preload_libraries = %q lacks pglogical (needs %q)", in.ParameterGroup, ch.Preload, v))
	}
	if _, ok := ch.Changes[ParamLogical]; ok {
		out = append(out, fmt.Sprintf("parameter group %s: rds.logical_replication = %q (needs 1)", in.ParameterGroup, ch.Logical))
	}
	if ch.PendingReboot() {
		out = append(out, fmt.Sprintf("instance %s: parameter group %s is pending-reboot: its changes apply only after a reboot", in.Identifier, in.ParameterGroup))
	}
	return out
}

// SlotsShort says, when the group's max_replication_slots is a number below
// what the instance holds now (slots, every database's, or replication
// origin states), what it holds: PostgreSQL refuses to start with fewer
// ("too many replication slots active before shutdown"; "could not find
// free replication state, increase max_replication_slots", measured), so
// the next reboot leaves the instance down. "" otherwise.
func (ch Check) SlotsShort(slots, originStates int) string {
	v, err := strconv.Atoi(strings.TrimSpace(ch.MaxSlots))
	if err != nil || v >= max(slots, originStates) {
		return ""
	}
	if originStates > slots {
		return fmt.Sprintf("%d replication origin states", originStates)
	}
	return fmt.Sprintf("%d replication slots", slots)
}

// Fix says how to fix the problems of a check.
func (ch Check) Fix() string {
	switch {
	case len(ch.Changes) > 0 && ch.Instance.Default():
		return DefaultGroupHowTo(ch.Instance)
	case len(ch.Changes) > 0:
		return "run `pglmon setup apply --rds-parameters --reboot` (or change the group yourself and reboot in a maintenance window)"
	case ch.PendingReboot():
		return "reboot the instance: `pglmon setup apply --reboot` (or `aws rds reboot-db-instance`) in a maintenance window"
	}
	return ""
}

// DefaultGroupHowTo explains how to move an instance off a default parameter group.
func DefaultGroupHowTo(in Instance) string {
	family := "postgres" + strings.SplitN(in.EngineVersion, ".", 2)[0]
	return fmt.Sprintf("instance %s uses the default parameter group %s, which RDS does not allow to change. Create a custom group and attach it: "+
		"`aws rds create-db-parameter-group --db-parameter-group-name %s-pglogical --db-parameter-group-family %s --description 'pglogical'` then "+
		"`aws rds modify-db-instance --db-instance-identifier %s --db-parameter-group-name %s-pglogical --apply-immediately`, and run pglmon setup again",
		in.Identifier, in.ParameterGroup, in.Identifier, family, in.Identifier, in.Identifier)
}

// CheckParameters reads the instance and its parameter group.
func (c *Client) CheckParameters(ctx context.Context, id string) (Check, error) {
	in, err := c.Describe(ctx, id)
	if err != nil {
		return Check{}, err
	}
	if in.ParameterGroup == "" {
		return Check{}, fmt.Errorf("RDS instance %s has no DB parameter group", id)
	}
	ps, err := c.Parameters(ctx, in.ParameterGroup, ParamPreload, ParamLogical, ParamMaxSlots)
	if err != nil {
		return Check{}, err
	}
	ch := Check{Instance: in, Preload: ps[ParamPreload], Logical: ps[ParamLogical], MaxSlots: ps[ParamMaxSlots], Changes: map[string]string{}}
	if v, changed := AddLibrary(ch.Preload, "pglogical"); changed {
		ch.Changes[ParamPreload] = v
	}
	if ch.Logical != "1" {
		ch.Changes[ParamLogical] = "1"
	}
	return ch, nil
}

// AddLibrary appends lib to a shared_preload_libraries value unless it is
// already there; the other libraries are kept in their order.
func AddLibrary(value, lib string) (string, bool) {
	var libs []string
	for _, l := range strings.Split(value, ",") {
		l = strings.TrimSpace(strings.Trim(strings.TrimSpace(l), `"`))
		if l == "" {
			continue
		}
		if l == lib {
			return value, false
		}
		libs = append(libs, l)
	}
	return strings.Join(append(libs, lib), ","), true
}

// ApplyParameters writes ch.Changes to the instance's custom parameter group
// (apply method pending-reboot: both parameters are static). It refuses a
// default group. Re-running it after success changes nothing.
func (c *Client) ApplyParameters(ctx context.Context, ch Check) error {
	if len(ch.Changes) == 0 {
		return nil
	}
	if ch.Instance.Default() {
		return fmt.Errorf("refusing to modify %s: %s", ch.Instance.ParameterGroup, DefaultGroupHowTo(ch.Instance))
	}
	var params []types.Parameter
	for _, name := range []string{ParamPreload, ParamLogical} {
		if v, ok := ch.Changes[name]; ok {
			params = append(params, types.Parameter{ParameterName: aws.String(name), ParameterValue: aws.String(v), ApplyMethod: types.ApplyMethodPendingReboot})
		}
	}
	if _, err := c.API.ModifyDBParameterGroup(ctx, &rds.ModifyDBParameterGroupInput{DBParameterGroupName: aws.String(ch.Instance.ParameterGroup), Parameters: params}); err != nil {
		return awsclient.Explain("RDS parameter group "+ch.Instance.ParameterGroup, err)
	}
	for _, p := range params {
		c.say("set %s = %s in parameter group %s (applies at the next reboot)", aws.ToString(p.ParameterName), aws.ToString(p.ParameterValue), ch.Instance.ParameterGroup)
	}
	return nil
}

// RebootAndWait reboots the instance and waits until it is available with
// its parameter group in-sync. An instance already rebooting is only waited for.
func (c *Client) RebootAndWait(ctx context.Context, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	in, err := c.Describe(ctx, id)
	if err != nil {
		return err
	}
	pending := in.ApplyStatus == "pending-reboot"
	if in.Status != "rebooting" {
		if in.Status != "available" {
			return fmt.Errorf("RDS instance %s is %s, not available: not rebooting it now", id, in.Status)
		}
		if _, err := c.API.RebootDBInstance(ctx, &rds.RebootDBInstanceInput{DBInstanceIdentifier: aws.String(id)}); err != nil {
			return awsclient.Explain("reboot RDS instance "+id, err)
		}
		c.say("rebooting RDS instance %s", id)
	}
	// Done once the reboot was seen (or the pending changes were applied)
	// and the instance is available and in-sync again.
	seen := in.Status == "rebooting"
	return c.waitFor(ctx, id, timeout, "available with its parameter group in-sync", func(in Instance) bool {
		if in.Status != "available" {
			seen = true
		}
		return (seen || pending) && in.Status == "available" && in.ApplyStatus == "in-sync"
	})
}

func (c *Client) waitFor(ctx context.Context, id string, timeout time.Duration, what string, done func(Instance) bool) error {
	t := time.NewTicker(c.poll())
	defer t.Stop()
	last := ""
	for {
		in, err := c.Describe(ctx, id)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil {
			if done(in) {
				c.say("RDS instance %s is %s", id, what)
				return nil
			}
			if s := in.Status + "/" + in.ApplyStatus; s != last {
				c.say("RDS instance %s: %s, parameter group %s", id, in.Status, in.ApplyStatus)
				last = s
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("RDS instance %s: not %s after %s (last: %s)", id, what, timeout, last)
		case <-t.C:
		}
	}
}

// SnapshotAndWait creates a manual snapshot named snapID of the instance, or
// finds the one a previous run created, and waits until it is available.
func (c *Client) SnapshotAndWait(ctx context.Context, id, snapID string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	status, err := c.snapshotStatus(ctx, snapID)
	if err != nil {
		return err
	}
	if status == "" {
		_, err := c.API.CreateDBSnapshot(ctx, &rds.CreateDBSnapshotInput{DBInstanceIdentifier: aws.String(id), DBSnapshotIdentifier: aws.String(snapID),
			Tags: []types.Tag{{Key: aws.String("created-by"), Value: aws.String("pglmon upgrade prepare")}}})
		if err != nil && awsclient.Code(err) != "DBSnapshotAlreadyExists" {
			return awsclient.Explain("snapshot of RDS instance "+id, err)
		}
		c.say("creating snapshot %s of RDS instance %s", snapID, id)
	}
	t := time.NewTicker(c.poll())
	defer t.Stop()
	for {
		status, err := c.snapshotStatus(ctx, snapID)
		if err != nil && ctx.Err() == nil {
			return err
		}
		switch status {
		case "available":
			c.say("snapshot %s is available", snapID)
			return nil
		case "failed", "deleting", "deleted":
			return fmt.Errorf("snapshot %s of RDS instance %s is %s", snapID, id, status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("snapshot %s of RDS instance %s: not available after %s (last: %s)", snapID, id, timeout, status)
		case <-t.C:
		}
	}
}

// snapshotStatus is the snapshot's status, or "" when it does not exist.
func (c *Client) snapshotStatus(ctx context.Context, snapID string) (string, error) {
	out, err := c.API.DescribeDBSnapshots(ctx, &rds.DescribeDBSnapshotsInput{DBSnapshotIdentifier: aws.String(snapID)})
	if awsclient.Code(err) == "DBSnapshotNotFound" {
		return "", nil
	}
	if err != nil {
		return "", awsclient.Explain("RDS snapshot "+snapID, err)
	}
	if len(out.DBSnapshots) == 0 {
		return "", nil
	}
	return aws.ToString(out.DBSnapshots[0].Status), nil
}

// SnapshotID is the name prepare gives its snapshot: letters, digits and
// hyphens, starting with a letter, at most 255 characters.
func SnapshotID(instance string, at time.Time) string {
	return "pglmon-" + instance + "-" + at.UTC().Format("20060102-150405")
}

// Unreachable says what the instance's RDS status means for a node pglmon
// cannot reach: why, and what to do.
func (i Instance) Unreachable() string {
	id := i.Identifier
	switch i.Status {
	case "storage-full":
		return fmt.Sprintf("RDS reports instance %s as storage-full: it used all its allocated storage and PostgreSQL stopped. With pglogical the usual cause is a replication slot retaining WAL (a subscription inactive or far behind). Give it room first: aws rds modify-db-instance --db-instance-identifier %s --allocated-storage <more GiB> --apply-immediately; then get the slot's subscription replicating, or drop a slot nothing needs", id, id)
	case "stopped", "stopping":
		return fmt.Sprintf("RDS reports instance %s as %s (RDS starts a stopped instance by itself after 7 days): aws rds start-db-instance --db-instance-identifier %s", id, i.Status, id)
	case "rebooting", "starting", "modifying", "upgrading", "maintenance", "renaming", "storage-optimization", "configuring-enhanced-monitoring", "configuring-log-exports", "resetting-master-credentials":
		return fmt.Sprintf("RDS reports instance %s as %s: it answers again when that ends", id, i.Status)
	case "incompatible-parameters":
		return fmt.Sprintf("RDS reports instance %s as incompatible-parameters: its parameter group %s holds a value it cannot start with (a memory setting too large, a library shared_preload_libraries names that does not exist): fix the group, then reboot", id, i.ParameterGroup)
	case "available":
		return fmt.Sprintf("RDS reports instance %s as available: what fails is between pglmon and it (network, security group, DNS, credentials, max_connections)", id)
	case "":
		return ""
	}
	return fmt.Sprintf("RDS reports instance %s as %s; its events say more: aws rds describe-events --source-type db-instance --source-identifier %s", id, i.Status, id)
}
