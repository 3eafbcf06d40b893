// Command pglmon monitors, diagnoses and repairs pglogical replication.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	_ "time/tzdata" // log_timezone's rules on a host without /usr/share/zoneinfo

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/credentials"
	"github.com/pglmon/pglmon/internal/preflight"
)

// Exit codes beyond the Nagios ones (0 ok, 1 warning, 2 critical, 3 unknown).
const (
	exitUsage    = 64 // EX_USAGE: bad command line
	exitConfig   = 78 // EX_CONFIG: bad configuration file
	exitSoftware = 70 // EX_SOFTWARE: anything else that stopped the command
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// env is what a subcommand gets from the process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command struct {
	name, summary string
	run           func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"run", "run the daemon: probe, diagnose, serve metrics and status, repair by policy", runDaemon},
		{"status", "probe every node once and print the diagnosis (Nagios exit codes)", runStatus},
		{"repair", "run a remedy for a subscription: plan, confirm, execute, verify, audit", runRepair},
		{"audit", "list the attempts of the audit log: repairs, setup apply, upgrade prepare and restore (who ran what, on what, and how it ended)", runAudit},
		{"verify", "compare the data of replicated tables on provider and subscriber", runVerify},
		{"setup", "plan or apply the pglogical topology in the configuration, checking prerequisites first", runSetup},
		{"upgrade", "prepare (drop pglogical, keep a manifest) and restore around a major-version upgrade", runUpgrade},
		{"heartbeat", "install or remove the heartbeats that measure how far behind each subscriber's data is, in seconds", runHeartbeat},
		{"maintenance", "start, end or list maintenance windows: nodes whose subscriptions the daemon does not repair or post", runMaintenance},
		{"forget", "stop reporting a subscription the daemon saw and that was dropped on purpose (subscription_missing), or, with --table, a table taken out of its sets on purpose (table_left_set)", runForget},
		{"check-config", "validate a configuration file (--connect: and what pglmon can do on each node)", runCheckConfig},
		{"version", "print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(stderr, c.name, c.run(ctx, e, args[1:]))
		}
	}
	fmt.Fprintf(stderr, "pglmon: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: pglmon COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `pglmon COMMAND -h` for the flags of a command.")
}

// exitErr carries an exit code; a nil err with a code is a quiet exit.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitErr) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitErr{exitUsage, fmt.Errorf(format, args...)}
}

// unknownNode is the usage error for a flag naming a node the
// configuration does not have ("" when it has it).
func unknownNode(cfg *config.Config, flag, name string) error {
	if _, ok := cfg.Node(name); ok {
		return nil
	}
	var names []string
	for _, n := range cfg.Nodes {
		names = append(names, n.Name)
	}
	return usageError("%s %s: no such node in the configuration (nodes: %s)", flag, name, strings.Join(names, ", "))
}

func exitCode(stderr io.Writer, name string, err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "pglmon %s: %v\n", name, ee.err)
		}
		return ee.code
	}
	var ce config.Errors
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, ce.Error())
		return exitConfig
	}
	fmt.Fprintf(stderr, "pglmon %s: %v\n", name, err)
	return exitSoftware
}

// newFlags returns a flag set that reports errors as usage errors.
func newFlags(name string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("pglmon "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitErr{exitUsage, nil} // flag already printed the problem
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// defaultConfig is the configuration read when neither --config nor
// PGLMON_CONFIG names one: where the systemd unit's is.
var defaultConfig = "/etc/pglmon/pglmon.yaml"

// loadConfig reads the configuration *path names; without --config, the
// one PGLMON_CONFIG names, else defaultConfig when it exists. *path is set
// to the file read, for the commands a plan prints.
func loadConfig(path *string) (*config.Config, error) {
	if *path == "" {
		*path = os.Getenv("PGLMON_CONFIG")
	}
	if *path == "" {
		if _, err := os.Stat(defaultConfig); err != nil {
			return nil, usageError("--config FILE is required (or PGLMON_CONFIG; %s does not exist)", defaultConfig)
		}
		*path = defaultConfig
	}
	cfg, err := config.Load(*path)
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, &exitErr{exitConfig, err}
	}
	credentials.Attach(cfg, awsclient.Options{})
	return cfg, nil
}

func runCheckConfig(ctx context.Context, e env, args []string) error {
	fs := newFlags("check-config", e)
	path := fs.String("config", "", "configuration file")
	connect := fs.Bool("connect", false, "also connect to every node (and AWS for nodes with rds:) and say what pglmon can do there")
	output := fs.String("output", "table", "with --connect: table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return usageError("--output must be table or json")
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if !*connect {
		fmt.Fprintf(e.stdout, "%s: ok (%d nodes)\n", *path, len(cfg.Nodes))
		return nil
	}
	checks := preflight.Run(ctx, cfg, cfg.Probe.Timeout.D()+10*time.Second)
	if *output == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"config": *path, "result": preflight.Worst(checks), "checks": checks}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "%s: ok (%d nodes)\n\n", *path, len(cfg.Nodes))
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tRESULT\tCHECK\tDETAIL")
		warns, errs := 0, 0
		for _, c := range checks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Node, c.Level, c.Check, c.Detail)
			switch c.Level {
			case preflight.Warn:
				warns++
			case preflight.Error:
				errs++
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "\n%s, %s\n", plural(warns, "warning"), plural(errs, "error"))
	}
	switch preflight.Worst(checks) {
	case preflight.Error:
		return &exitErr{code: 2}
	case preflight.Warn:
		return &exitErr{code: 1}
	}
	return nil
}

// plural says "1 warning", "2 warnings".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

func runVersion(ctx context.Context, e env, args []string) error {
	fmt.Fprintln(e.stdout, "pglmon", buildVersion())
	return nil
}
