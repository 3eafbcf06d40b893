package upgrade

import (
	"context"
	"fmt"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/pgident"
)

// transferChange is what an upgrade does to how pglogical sends the values
// of one subscription: between servers of the same major version in
// binary, which the subscriber's column type must read as it is; between
// others as text, which a wider type reads too (drift.TypesIn).
type transferChange int

const (
	// transferKept: the upgrade leaves the transfer as it is, or moves it
	// to text, which reads whatever binary read.
	transferKept transferChange = iota
	// transferToBinary: the servers' major versions differ now and match
	// after the upgrade.
	transferToBinary
	// transferMayBeBinary: they differ now and no target version was
	// given: they match after the upgrade if it brings the node to the
	// other server's major version.
	transferMayBeBinary
)

// transferAfter says what upgrading node (one side of a subscription whose
// provider and subscriber run the major versions prov and sub) to the
// major version target ("" when not given) does to the transfer.
func transferAfter(nodeIsProvider bool, prov, sub, target string) transferChange {
	if prov == sub {
		return transferKept
	}
	if target == "" {
		return transferMayBeBinary
	}
	if nodeIsProvider {
		prov = target
	} else {
		sub = target
	}
	if prov == sub {
		return transferToBinary
	}
	return transferKept
}

// typeProblems names, for each subscription of the manifest (those of the
// node, and those of other configured nodes it provides), the replicated
// columns whose type differs between provider and subscriber in a way
// pglogical's apply reads while the servers' major versions differ (as
// text) and not once they match (in binary): an upgrade that brings them
// to one major version stops the subscription at the first change to such
// a table, after restore, or writes wrong values. Blocking when the target
// version makes them match; a warning when no target version was given.
func (r *Runner) typeProblems(ctx context.Context, node string, m *Manifest) []Problem {
	target := ""
	if r.Target.Version != "" {
		target = drift.Major(r.Target.Version)
	}
	var out []Problem
	for _, s := range m.Subscriptions {
		out = append(out, r.subscriptionTypes(ctx, node, s, target)...)
	}
	return out
}

// subscriptionTypes is typeProblems for subscription s.
func (r *Runner) subscriptionTypes(ctx context.Context, node string, s SubDef, target string) []Problem {
	notChecked := func(err error) []Problem {
		return []Problem{{Kind: "column_type", Object: s.Name,
			Message: fmt.Sprintf("the column types of subscription %s (%s to %s) were not compared: %v", s.Name, s.Provider, s.Subscriber, err),
			Fix:     fmt.Sprintf("make %s and %s reachable from pglmon and run the check again, or compare the replicated tables' column types by hand", s.Provider, s.Subscriber)}}
	}
	prov, err := r.connect(ctx, s.Provider)
	if err != nil {
		return notChecked(err)
	}
	defer prov.Close(ctx)
	sub, err := r.connect(ctx, s.Subscriber)
	if err != nil {
		return notChecked(err)
	}
	defer sub.Close(ctx)
	pv, sv := drift.MajorVersion(prov), drift.MajorVersion(sub)
	if v, ok := r.majors[s.Provider]; ok {
		pv = v
	}
	if v, ok := r.majors[s.Subscriber]; ok {
		sv = v
	}
	change := transferAfter(s.Provider == node, pv, sv, target)
	if change == transferKept {
		return nil
	}
	// What the apply would do with the values in binary (in text it never
	// fails at once: drift's compareType).
	now, later, err := drift.TypesBoth(ctx, prov, sub, s.Sets)
	if err != nil {
		return notChecked(err)
	}
	nowEffect := map[string]string{}
	for _, d := range now {
		nowEffect[d.Table+"."+d.Column] = d.Effect
	}
	other, otherVersion := s.Subscriber, sv
	if s.Subscriber == node {
		other, otherVersion = s.Provider, pv
	}
	var out []Problem
	for _, d := range later {
		if d.Effect != diagnose.TypeBreaks {
			continue // the same, read as text or in binary
		}
		reads := "which " + d.Subscriber + " reads"
		if e := nowEffect[d.Table+"."+d.Column]; e != "" && e != diagnose.TypeBreaksLater {
			reads += fmt.Sprintf(" with effect %s (pglmon status warns of it)", e)
		}
		p := Problem{Kind: "column_type", Object: d.Table + "." + d.Column, Database: sub.Config().Database, Blocking: change == transferToBinary}
		col, table := pgident.Ident(d.Column), pgident.RegclassOf(d.Table)
		when := fmt.Sprintf("once %s runs PostgreSQL %s, as %s does", node, otherVersion, other)
		if change == transferMayBeBinary {
			when = fmt.Sprintf("if the upgrade brings %s to PostgreSQL %s, as %s runs (give --target-version to know)", node, otherVersion, other)
		}
		p.Message = fmt.Sprintf("column %s of %s is %s on provider %s and %s on subscriber %s (subscription %s): between PostgreSQL %s and %s pglogical sends its values as text, %s; %s, it sends them in binary, which %s cannot read, and after restore the first change to the table stops the subscription or is applied wrong (measured with pglogical 2.4.2 between servers of one version)",
			d.Column, d.Table, d.Provider, s.Provider, d.Subscriber, s.Subscriber, s.Name, pv, sv, reads, when, d.Subscriber)
		p.Fix = fmt.Sprintf("before the upgrade, give both sides the same type, the one the data needs: on subscriber %s, ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s; or on provider %s, SELECT pglogical.replicate_ddl_command(%s); (either rewrites the table under an exclusive lock)",
			s.Subscriber, table, col, d.Provider, col, d.Provider, s.Provider, pgident.Literal(fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s", table, col, d.Subscriber)))
		out = append(out, p)
	}
	return out
}
