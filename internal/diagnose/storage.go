package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rdsstorage"
	"github.com/pglmon/pglmon/internal/shellword"
)

// AddStorage records the storage reading of node (an RDS instance) and adds
// a storage_low finding when its free storage is under
// thresholds.storage_free_percent of the allocated storage (critical under
// half of it), or when, at the last hour's rate, it runs out within
// thresholds.storage_full_within (critical within a quarter of it). The
// finding names the replication slots that hold WAL back on the node, and
// the subscriptions behind them: a slot nothing consumes keeps every byte of
// WAL written since, until the instance is storage-full and stops.
func (r *Report) AddStorage(node string, st rdsstorage.Reading, th config.Thresholds) {
	for i := range r.Nodes {
		n := &r.Nodes[i]
		if n.Name != node {
			continue
		}
		n.Storage = &st
		if f, ok := storageFinding(n, r.Subscriptions, st, th); ok {
			n.Findings = append(n.Findings, f)
			r.Health = Worst(r.Health, f.Severity)
		}
	}
}

func storageFinding(n *Node, subs []Subscription, st rdsstorage.Reading, th config.Thresholds) (Finding, bool) {
	autoscale := st.MaxAllocatedBytes - st.AllocatedBytes // room storage autoscaling may add
	sev := OK
	var why []string
	raise := func(s Severity) { sev = Worst(sev, s) }
	pct := st.FreePercent()
	if lim := th.StorageFreePercent; lim > 0 && pct < lim && autoscale <= 0 {
		raise(Warning)
		if pct < lim/2 {
			raise(Critical)
		}
		why = append(why, fmt.Sprintf("under thresholds.storage_free_percent %g%%", lim))
	}
	ahead := st
	ahead.FreeBytes += float64(max(autoscale, 0))
	if within := th.StorageFullWithin.D(); within > 0 {
		if full, ok := ahead.FullIn(); ok && full < within {
			raise(Warning)
			if full < within/4 {
				raise(Critical)
			}
			w := fmt.Sprintf("at the last hour's rate (%s/h) it runs out in about %s", sizeOf(st.FallingBytesPerHour), roughly(full))
			if autoscale > 0 {
				w += ", counting what autoscaling may add"
			}
			why = append(why, w)
		}
	}
	if sev == OK {
		return Finding{}, false
	}
	var b strings.Builder
	fmt.Fprintf(&b, "RDS instance %s has %s free of %s (%.1f%%, CloudWatch FreeStorageSpace at %s)", st.Instance,
		sizeOf(st.FreeBytes), sizeOf(float64(st.AllocatedBytes)), pct, st.At.UTC().Format("15:04 UTC"))
	if autoscale > 0 {
		fmt.Fprintf(&b, "; storage autoscaling may add up to %s more (it grows the volume when under 10%% is free, at most once every 6 hours)", sizeOf(float64(autoscale)))
	}
	fmt.Fprintf(&b, ": %s. A full volume stops the instance (RDS status storage-full), and with it every subscription it provides", strings.Join(why, "; "))

	// The slots holding WAL back, largest first.
	slots := append([]probe.Slot(nil), n.Slots...)
	sort.SliceStable(slots, func(i, j int) bool { return slots[i].RetainedBytes > slots[j].RetainedBytes })
	var total int64
	var held []string
	for _, sl := range slots {
		if sl.RetainedBytes <= 0 {
			continue
		}
		total += sl.RetainedBytes
		if len(held) == 3 {
			continue
		}
		state := "active"
		if !sl.Active {
			state = "inactive"
		}
		d := fmt.Sprintf("%s (%s, %s", sl.Name, state, sizeOf(float64(sl.RetainedBytes)))
		for _, s := range subs {
			if s.SlotName == sl.Name && s.Provider == n.Name {
				d += fmt.Sprintf("; subscription %s on %s, %s", s.Name, s.Subscriber, s.Status)
				if !s.Enabled && s.Status != "disabled" {
					d += ", disabled"
				}
			}
		}
		for _, f := range n.Findings {
			if f.Code == CodeOrphanSlot && f.Slot == sl.Name {
				d += fmt.Sprintf("; an orphan: pglmon repair --remedy drop-orphan-slot --node %s --slot %s", shellword.Quote(n.Name), shellword.Quote(sl.Name))
			}
		}
		held = append(held, d+")")
	}
	remedy := "add storage (aws rds modify-db-instance --db-instance-identifier " + st.Instance + " --allocated-storage <GiB> --apply-immediately, or turn on storage autoscaling) or free space"
	if total > 0 {
		used := float64(st.AllocatedBytes) - st.FreeBytes
		share := ""
		if used > 0 {
			pct := fmt.Sprintf("%.0f%%", min(100*float64(total)/used, 100))
			if float64(total) < used/100 {
				pct = "under 1%"
			}
			share = fmt.Sprintf(" (%s of the %s in use)", pct, sizeOf(used))
		}
		fmt.Fprintf(&b, ". Replication slots hold back %s of WAL%s: %s", sizeOf(float64(total)), share, strings.Join(held, ", "))
		remedy = "an inactive slot releases its WAL once its subscription streams again: fix that subscription first (see its finding); a slot nothing will consume again can be dropped (orphan_slot: pglmon repair --remedy drop-orphan-slot; a subscription's slot goes with pglogical.drop_subscription on its subscriber, which then needs a new initial copy). Or " +
			remedy + ". max_slot_wal_keep_size caps what one slot may hold (the slot is lost instead of the instance)"
	}
	fmt.Fprintf(&b, ". Fix: %s", remedy)
	return Finding{Code: CodeStorageLow, Severity: sev, Human: true, Message: b.String()}, true
}

func sizeOf(v float64) string { return config.FormatBytes(int64(v)) }

// roughly rounds a duration for people: to minutes under 6 hours, else to hours.
func roughly(d time.Duration) string {
	if d < 6*time.Hour {
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Hour).String()
}
