// Package daemon runs pglmon as a service: it probes and diagnoses on an
// interval, serves metrics and status over HTTP, repairs what its policy
// allows, and speaks to systemd.
package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/credentials"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/httpsec"
	"github.com/pglmon/pglmon/internal/metrics"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/repair"
	"github.com/pglmon/pglmon/internal/sdnotify"
	"github.com/pglmon/pglmon/internal/seen"
	pslack "github.com/pglmon/pglmon/internal/slack"
)

// Log keys.
const (
	keyNode         = "node"
	keySubscriber   = "subscriber"
	keySubscription = "subscription"
	keyFrom         = "from"
	keyTo           = "to"
	keyFindings     = "findings"
	keyError        = "error"
	keyFailures     = "failures"
	keyDowntime     = "down_for"
	keyRemedy       = "remedy"
	keyResult       = "result"
	keyReason       = "reason"
	keyDuration     = "duration"
	keyAddr         = "addr"
	keyConfig       = "config"
	keyUnhealthyFor = "unhealthy_for"
	keyBlips        = "brief_recoveries"
	keyHealth       = "health"
	keyAdded        = "added"
	keyRemoved      = "removed"
)

// Options configure a daemon.
type Options struct {
	// ConfigPath is re-read on reload.
	ConfigPath string
	Config     *config.Config
	Logger     *slog.Logger
	Version    string
	Notifier   *sdnotify.Notifier
	// Reload receives a value for each SIGHUP.
	Reload <-chan struct{}
	// WatchdogInterval is how often to send WATCHDOG=1 while healthy (0: never).
	WatchdogInterval time.Duration
	// LogEvery, when set, is how often a subscriber's server log is read,
	// instead of the configuration's probe.log_interval (tests).
	LogEvery time.Duration
	// ResumeRetry is how long to wait before trying again to finish an
	// interrupted repair whose nodes could not be reached (0: 30 s).
	ResumeRetry time.Duration
}

// logEvery is Options.LogEvery, else the configuration's
// probe.log_interval.
func (d *Daemon) logEvery() time.Duration {
	if d.opts.LogEvery > 0 {
		return d.opts.LogEvery
	}
	if cfg := d.cfg.Load(); cfg != nil && cfg.Probe.LogInterval > 0 {
		return cfg.Probe.LogInterval.D()
	}
	return time.Minute
}

// Daemon is a running pglmon service.
type Daemon struct {
	opts     Options
	log      *slog.Logger
	cfg      atomic.Pointer[config.Config]
	mon      *monitor.Monitor
	reg      *prometheus.Registry
	metrics  *metrics.Set
	expo     *metrics.Cache
	listener net.Listener
	srv      *http.Server
	repairer *autoRepairer
	seen     seenWatch
	verifier verifier
	rds      rdsWatcher
	rdsState rdsStatusWatcher
	storage  storageWatcher
	logs     logWatcher
	rewinds  rewindWatch
	seqs     sequenceKeeper
	maint    maintenanceWatch
	beats    heartbeats
	slack    *pslack.Notifier
	buttons  *pslack.Interactions
	botToken config.Secret
	appToken config.Secret
	// httpToken is http.bearer_token, read again at each reload.
	httpToken atomic.Pointer[config.Secret]
	tlsCert   *httpsec.Certificate // nil: plain HTTP
	bg        sync.WaitGroup       // scheduled verifications

	latest    atomic.Pointer[diagnose.Report]
	lastCycle atomic.Int64 // unix nanoseconds of the last completed cycle
	ready     atomic.Bool

	health *transitions
	nodes  map[string]*nodeLog
}

type nodeLog struct {
	failures   int
	since      time.Time
	lastLogged time.Time
	suppressed int
}

// New prepares a daemon and opens its HTTP listener.
func New(opts Options) (*Daemon, error) {
	if opts.Logger == nil {
		return nil, errors.New("daemon: a logger is required")
	}
	if opts.Notifier == nil {
		opts.Notifier = &sdnotify.Notifier{}
	}
	d := &Daemon{opts: opts, log: opts.Logger, reg: prometheus.NewRegistry(),
		health: newTransitions(diagnose.FlapWindow), nodes: map[string]*nodeLog{}}
	d.cfg.Store(opts.Config)
	d.mon = monitor.New(opts.Config)
	d.mon.KeepSetTables(seen.NewTables(opts.Config.SeenFile(), true))
	d.metrics = metrics.New(d.reg, opts.Version, d.Healthy)
	d.expo = metrics.NewCache(d.reg, d.healthLimit)
	audit, err := repair.NewAudit(opts.Config.Repair.AuditLog)
	if err != nil {
		return nil, err
	}
	d.repairer = &autoRepairer{d: d, audit: audit, state: map[string]*repairState{}}
	d.verifier.state = &stateFile{opts.Config.VerifyStateFile()}
	d.metrics.VerifyEvery(opts.Config.Verify.Every.D())
	if opts.Config.Verify.Every.D() > 0 {
		if st, err := os.Stat(filepath.Dir(d.verifier.state.path)); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("verify.state_file: the directory of %s does not exist", d.verifier.state.path)
		}
	}
	if st, err := d.verifier.state.load(); err != nil {
		d.setAside("verification", d.verifier.state.path, err)
	} else {
		d.verifier.restore(st)
		d.metrics.Verified(0, d.verifier.divergent(), st.Complete)
	}
	d.logs.state = opts.Config.LogStateFile()
	if st, err := loadState[logState](d.logs.state); err != nil {
		d.setAside("server log", d.logs.state, err)
	} else {
		d.logs.restore(st)
	}
	if st, err := loadState[rewindState](opts.Config.RewindStateFile()); err != nil {
		d.setAside("provider rewind", opts.Config.RewindStateFile(), err)
		d.rewinds.restore(opts.Config.RewindStateFile(), rewindState{})
	} else {
		d.rewinds.restore(opts.Config.RewindStateFile(), st)
	}
	d.seqs.restore(d, opts.Config.SequenceStateFile())
	if sc := opts.Config.Slack; sc.Enabled() {
		token, err := sc.BotToken.Resolve("slack.bot_token")
		if err != nil {
			return nil, err
		}
		secret, err := sc.SigningSecret.Resolve("slack.signing_secret")
		if err != nil {
			return nil, err
		}
		if d.appToken, err = sc.AppToken.Resolve("slack.app_token"); err != nil {
			return nil, err
		}
		d.botToken = token
		d.slack = pslack.NewNotifier(pslack.NewClient(sc, token), sc, func() map[string]string { return d.cfg.Load().Repair.Policy }, d.log, d.metrics.Notifications)
		approvers := map[string]bool{}
		for _, a := range sc.Approvers {
			approvers[a] = true
		}
		client := pslack.NewClient(sc, token)
		var groups *pslack.Groups
		if len(sc.ApproverGroups) > 0 {
			groups = &pslack.Groups{API: client, IDs: sc.ApproverGroups, TTL: 5 * time.Minute, Log: d.log}
		}
		d.buttons = &pslack.Interactions{Secret: secret, Approvers: approvers, Groups: groups, Exec: d, Latest: d.latest.Load,
			Policy:   func() map[string]string { return d.cfg.Load().Repair.Policy },
			Notifier: d.slack, Audit: audit, Log: d.log, HTTP: &http.Client{Timeout: 10 * time.Second}}
	}
	hc := opts.Config.HTTP
	token, err := hc.BearerToken.Resolve("http.bearer_token")
	if err != nil {
		return nil, err
	}
	d.httpToken.Store(&token)
	var tlsConfig *tls.Config
	if hc.TLS.Enabled() {
		if d.tlsCert, err = httpsec.LoadCertificate(hc.TLS, d.log); err != nil {
			return nil, err
		}
		if tlsConfig, err = httpsec.ServerConfig(hc.TLS, d.tlsCert); err != nil {
			return nil, err
		}
		metrics.TLSCertificateExpiry(d.reg, d.tlsCert.NotAfter)
	}
	l, err := net.Listen("tcp", hc.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (http.listen): %w", hc.Listen, err)
	}
	d.listener = l
	// The server's own messages (a failed TLS handshake: a client without
	// the CA, or plain HTTP to the HTTPS port) go to the JSON log.
	d.srv = &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second, TLSConfig: tlsConfig,
		ErrorLog: slog.NewLogLogger(d.log.With("component", "http").Handler(), slog.LevelInfo)}
	return d, nil
}

// Addr is the address the HTTP server listens on.
func (d *Daemon) Addr() string { return d.listener.Addr().String() }

// Config is the configuration in force.
func (d *Daemon) Config() *config.Config { return d.cfg.Load() }

// Healthy reports whether the loop completes cycles on time.
func (d *Daemon) Healthy() bool {
	last := d.lastCycle.Load()
	if last == 0 {
		return false
	}
	return time.Since(time.Unix(0, last)) < d.healthLimit()
}

// healthLimit is how old the last cycle may be while the loop counts as on time.
func (d *Daemon) healthLimit() time.Duration {
	cfg := d.cfg.Load()
	return 2*cfg.Probe.Interval.D() + cfg.Probe.Timeout.D() + time.Second
}

// Run probes until ctx ends, then drains the HTTP server and returns nil.
func (d *Daemon) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	go func() {
		if d.tlsCert != nil {
			serveErr <- d.srv.ServeTLS(d.listener, "", "")
			return
		}
		serveErr <- d.srv.Serve(d.listener)
	}()
	d.log.Info("pglmon started", keyAddr, d.Addr(), "scheme", d.Scheme(), keyConfig, d.opts.ConfigPath, "version", d.opts.Version)
	d.warnIfOpen()

	var wg sync.WaitGroup
	if d.slack != nil {
		d.buttons.Ctx = ctx
		wg.Go(func() { d.slack.Run(ctx) })
		if sc := d.cfg.Load().Slack; sc.Mode == "socket" {
			wg.Go(func() { pslack.RunSocket(ctx, sc, d.botToken, d.appToken, d.buttons, d.log) })
		}
	}
	if iv := d.opts.WatchdogInterval; iv > 0 {
		wg.Go(func() { d.watchdog(ctx, iv) })
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return d.shutdown(&wg)
		case err := <-serveErr:
			return fmt.Errorf("http server: %w", err)
		case <-d.opts.Reload:
			d.reload()
		case <-timer.C:
			d.cycle(ctx)
			if ctx.Err() != nil {
				continue
			}
			if !d.ready.Swap(true) {
				d.log.Info("first cycle complete: ready")
				d.notify(sdnotify.Ready)
				wg.Go(func() { d.repairer.resume(ctx) })
			}
			timer.Reset(jitter(d.cfg.Load().Probe.Interval.D()))
		}
	}
}

// jitter spreads cycles by ±10% so many pglmons do not probe in step.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

func (d *Daemon) shutdown(wg *sync.WaitGroup) error {
	d.notify(sdnotify.Stopping)
	d.log.Info("stopping")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	err := d.srv.Shutdown(ctx)
	d.repairer.wait()
	if d.buttons != nil {
		d.buttons.Wait()
	}
	wg.Wait()
	d.bg.Wait()
	// A log read that ended after the last cycle: where it ended, and what
	// it found, are kept too, or the next start reads (and counts) it again.
	d.logs.keep(d)
	// The providers' timelines, origins and idle slots: what a switch of
	// timeline, a subscriber's restore or a slot's advance while the
	// daemon was stopped is judged by.
	d.rewinds.keep(d.log)
	d.mon.Close(ctx)
	d.beats.close(ctx, nil)
	if err != nil {
		return fmt.Errorf("drain http server: %w", err)
	}
	return nil
}

func (d *Daemon) notify(state string) {
	if err := d.opts.Notifier.Notify(state); err != nil {
		d.log.Warn("systemd notification failed", keyError, err.Error())
	}
}

func (d *Daemon) watchdog(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if d.Healthy() {
				d.notify(sdnotify.Watchdog)
			}
		}
	}
}

// setAside moves an unreadable state file aside: the daemon starts
// without what it held.
func (d *Daemon) setAside(what, path string, err error) {
	aside := path + ".unreadable"
	d.log.Warn("cannot read the "+what+" state: starting without it (moved aside)", keyError, err.Error(), "moved_to", aside)
	_ = os.Rename(path, aside)
}

// cycle probes, diagnoses, repairs what policy allows and publishes.
func (d *Daemon) cycle(ctx context.Context) {
	r, snaps := d.mon.Cycle(ctx)
	if ctx.Err() != nil {
		return
	}
	d.logNodes(snaps)
	d.verifier.maybeRun(ctx, d, snaps, &d.bg)
	d.verifier.absorb(d)
	d.verifier.annotate(&r)
	d.rds.maybeRun(ctx, d, &d.bg)
	d.rds.annotate(&r)
	d.rdsState.maybeRun(ctx, d, snaps, &d.bg)
	d.rdsState.annotate(&r)
	d.storage.maybeRun(ctx, d, &d.bg)
	d.storage.annotate(&r, d.cfg.Load().Thresholds)
	d.logs.maybeRun(ctx, d, snaps, &r, &d.bg)
	d.logs.annotate(&r, d.verifier.equalSince)
	d.logs.keep(d)
	d.rewinds.annotate(d.log, &r, d.verifier.equalSince)
	d.rewinds.judgeGaps(d.log, &r, d.beats.gaps(ctx, d, snaps, &r), d.verifier.equalSince)
	d.seen.annotate(d, &r)
	d.seqs.keep(d)
	d.maint.annotate(d, &r)
	d.beats.run(ctx, d, snaps, &r)
	d.repairer.consider(ctx, &r)
	d.logTransitions(r)
	d.metrics.Observe(r, snaps)
	d.latest.Store(&r)
	d.lastCycle.Store(time.Now().UnixNano())
	if d.slack != nil {
		d.slack.Observe(r)
	}
	if err := d.expo.Render(); err != nil {
		d.log.Error("render metrics", keyError, err.Error())
	}
}

// logNodes logs a node's failure once, then at most once a minute with a
// count, and its recovery with the number of failures.
func (d *Daemon) logNodes(snaps []probe.Snapshot) {
	now := time.Now()
	for _, s := range snaps {
		nl := d.nodes[s.Node]
		if nl == nil {
			nl = &nodeLog{}
			d.nodes[s.Node] = nl
		}
		if s.Up() {
			if nl.failures > 0 {
				d.log.Info("node reachable again", keyNode, s.Node, keyFailures, nl.failures, keyDowntime, now.Sub(nl.since).Round(time.Millisecond).String())
			}
			*nl = nodeLog{}
			continue
		}
		if s.Skipped {
			continue
		}
		nl.failures++
		if nl.failures == 1 {
			nl.since = now
		}
		if nl.failures == 1 || now.Sub(nl.lastLogged) >= time.Minute {
			d.log.Warn("node unreachable", keyNode, s.Node, keyError, s.Err.Error(), keyFailures, nl.failures, "suppressed", nl.suppressed)
			nl.lastLogged, nl.suppressed = now, 0
		} else {
			nl.suppressed++
		}
	}
}

// logTransitions logs each change of a subscription's or a node's health,
// or of its findings, once; a recovery once it has held for
// diagnose.FlapWindow (transitions).
func (d *Daemon) logTransitions(r diagnose.Report) {
	changes, gone := d.health.observe(time.Now(), r)
	for _, c := range changes {
		level := slog.LevelInfo
		if c.To == diagnose.Critical || c.To == diagnose.Warning {
			level = slog.LevelWarn
		}
		what, attrs := "subscription", []any{keySubscriber, c.Subscriber, keySubscription, c.Subscription}
		if c.Node != "" {
			what, attrs = "node", []any{keyNode, c.Node}
		}
		if c.From == string(c.To) {
			attrs = append(attrs, keyHealth, string(c.To), keyFindings, c.Findings, keyAdded, c.Added, keyRemoved, c.Removed)
			d.log.Log(context.Background(), level, what+" findings changed", attrs...)
			continue
		}
		attrs = append(attrs, keyFrom, c.From, keyTo, string(c.To), keyFindings, c.Findings)
		if c.For > 0 {
			attrs = append(attrs, keyUnhealthyFor, c.For.Round(time.Second).String())
		}
		if c.Blips > 0 {
			attrs = append(attrs, keyBlips, c.Blips)
		}
		d.log.Log(context.Background(), level, what+" health changed", attrs...)
	}
	for _, key := range gone {
		d.log.Info("subscription gone", keySubscription, key)
	}
}

// reload re-reads the configuration; an invalid one is logged and ignored.
func (d *Daemon) reload() {
	d.notify(sdnotify.Reloading)
	defer d.notify(sdnotify.Ready)
	if d.opts.ConfigPath == "" {
		return
	}
	cfg, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		d.log.Error("reload refused: keeping the running configuration", keyConfig, d.opts.ConfigPath, keyError, err.Error())
		return
	}
	credentials.Attach(cfg, awsclient.Options{})
	old := d.cfg.Load()
	if cfg.HTTP.Listen != old.HTTP.Listen {
		d.log.Warn("http.listen changed: takes effect at the next restart", keyAddr, d.Addr())
	}
	if cfg.HTTP.TLS != old.HTTP.TLS {
		d.log.Warn("http.tls changed: takes effect at the next restart (a renewed certificate in the same files is read without one)", keyAddr, d.Addr())
	}
	token, err := cfg.HTTP.BearerToken.Resolve("http.bearer_token")
	if err != nil {
		d.log.Error("reload refused: keeping the running configuration", keyConfig, d.opts.ConfigPath, keyError, err.Error())
		return
	}
	keep := map[string]bool{}
	for _, n := range cfg.Nodes {
		keep[n.Name] = true
	}
	for _, n := range old.Nodes {
		if !keep[n.Name] {
			d.metrics.ForgetNode(n.Name)
			delete(d.nodes, n.Name)
		}
	}
	d.mon.SetConfig(cfg)
	if cfg.SeenFile() != old.SeenFile() {
		d.mon.KeepSetTables(seen.NewTables(cfg.SeenFile(), true))
	}
	d.beats.close(context.Background(), nil) // reopened with the new settings
	d.cfg.Store(cfg)
	d.httpToken.Store(&token)
	d.metrics.VerifyEvery(cfg.Verify.Every.D())
	d.log.Info("configuration reloaded", keyConfig, d.opts.ConfigPath, "nodes", len(cfg.Nodes))
}

// Scheme is how the HTTP server is reached: http, or https with http.tls.
func (d *Daemon) Scheme() string {
	if d.tlsCert != nil {
		return "https"
	}
	return "http"
}

// warnIfOpen says when what the server shows can be read by anyone who
// reaches a port open beyond this host.
func (d *Daemon) warnIfOpen() {
	if !httpsec.BeyondLoopback(d.cfg.Load().HTTP.Listen) || d.httpToken.Load().Reveal() != "" {
		return
	}
	d.log.Warn("http.listen is reachable from other hosts and http.bearer_token is not set: anyone who reaches it reads /metrics and /api/v1/status (node names, findings)", keyAddr, d.Addr())
}

// Handler serves /metrics, /healthz, /readyz, /api/v1/status and
// /slack/interactions; with http.bearer_token, /metrics and /api/v1/status
// need it (health checks stay open, and Slack signs its requests).
func (d *Daemon) Handler() http.Handler {
	token := func() config.Secret { return *d.httpToken.Load() }
	return httpsec.Guard(d.routes(), token, "/healthz", "/readyz", "/slack/interactions")
}

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.expo)
	if d.buttons != nil && d.cfg.Load().Slack.Mode == "http" {
		mux.Handle("POST /slack/interactions", d.buttons)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if d.ready.Load() && !d.Healthy() {
			http.Error(w, "probe loop is late", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "first cycle not complete", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		r := d.latest.Load()
		if r == nil {
			http.Error(w, "first cycle not complete", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	})
	return mux
}
