// Package monitor runs one probe-and-diagnose cycle over every configured
// node, remembering across cycles what a single sample cannot tell.
package monitor

import (
	"context"
	"sync"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
)

// Monitor owns one prober per node and the diagnosis history. It is safe for
// concurrent use: cycles run one at a time.
type Monitor struct {
	mu      sync.Mutex
	cfg     *config.Config
	probers []*probe.Prober
	history *diagnose.History
	now     func() time.Time
}

// New returns a monitor for the configured nodes.
func New(cfg *config.Config) *Monitor {
	m := &Monitor{history: diagnose.NewHistory(), now: time.Now}
	m.SetConfig(cfg)
	return m
}

// SetConfig switches to a new configuration, keeping the connections and
// history of nodes whose name and settings did not change.
func (m *Monitor) SetConfig(cfg *config.Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := map[string]*probe.Prober{}
	oldNodes := map[string]config.Node{}
	if m.cfg != nil {
		for i, p := range m.probers {
			old[p.Node()] = p
			oldNodes[p.Node()] = m.cfg.Nodes[i]
		}
	}
	keep := map[string]bool{}
	probers := make([]*probe.Prober, 0, len(cfg.Nodes))
	for _, n := range cfg.Nodes {
		keep[n.Name] = true
		if p, ok := old[n.Name]; ok && sameNode(oldNodes[n.Name], n) && m.cfg.Probe.Timeout == cfg.Probe.Timeout {
			p.SetBackoff(cfg.Probe.MaxBackoff.D())
			probers = append(probers, p)
			delete(old, n.Name)
			continue
		}
		probers = append(probers, probe.NewProber(n, cfg.Probe.Timeout.D()))
		probers[len(probers)-1].SetBackoff(cfg.Probe.MaxBackoff.D())
	}
	for _, p := range old {
		p.Close(context.Background())
	}
	m.cfg, m.probers = cfg, probers
	m.history.Forget(keep)
}

func sameNode(a, b config.Node) bool {
	if a.Name != b.Name || a.DSN != b.DSN || (a.Password == nil) != (b.Password == nil) {
		return false
	}
	return a.Password == nil || *a.Password == *b.Password
}

// Config is the configuration in use.
func (m *Monitor) Config() *config.Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// Cycle probes every node concurrently and diagnoses the result.
func (m *Monitor) Cycle(ctx context.Context) (diagnose.Report, []probe.Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	snaps := probe.ProbeAll(ctx, m.probers)
	now := m.now()
	m.history.Observe(snaps, now)
	r := diagnose.Diagnose(diagnose.Input{Now: now, Thresholds: m.cfg.Thresholds, Snapshots: snaps, History: m.history})
	return r, snaps
}

// Observe runs a cycle and returns its report.
func (m *Monitor) Observe(ctx context.Context) diagnose.Report {
	r, _ := m.Cycle(ctx)
	return r
}

// RoundTrips is the total of network round trips of the last cycle.
func (m *Monitor) RoundTrips() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, p := range m.probers {
		n += p.RoundTrips()
	}
	return n
}

// Close closes every connection.
func (m *Monitor) Close(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.probers {
		p.Close(ctx)
	}
}
