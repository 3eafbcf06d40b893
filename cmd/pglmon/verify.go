package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pglmon/pglmon/internal/atomicfile"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rowcopy"
	"github.com/pglmon/pglmon/internal/serverlog"
	"github.com/pglmon/pglmon/internal/shellword"
	"github.com/pglmon/pglmon/internal/verified"
	"github.com/pglmon/pglmon/internal/verify"
)

// Exit codes of `pglmon verify`, as `pglmon status`.
const (
	verifyEqual   = 0
	verifyDiffers = 2
	verifyUnknown = 3
)

func runVerify(ctx context.Context, e env, args []string) error {
	fs := newFlags("verify", e)
	path := fs.String("config", "", "configuration file")
	sub := fs.String("subscription", "", "only this subscription (default: all)")
	var tables nameList
	fs.Var(&tables, "table", "only this table (schema.table, table, as SQL writes it: \"Sales\".\"Orders\", a pattern: public.orders_*, or a partitioned table: its partitions); repeat it, or separate names with commas, for several")
	mode := fs.String("mode", "", "count or checksum (default: verify.mode)")
	scan := fs.String("scan", "", "checksum mode: auto, index or pages, how rows are read (default: verify.scan)")
	output := fs.String("output", "table", "table or json")
	parallel := fs.Int("parallel", 0, "tables compared at once, each over its own connections (default: verify.parallel)")
	from := fs.String("from", "", "with --table, checksum mode: start at this key, where an interrupted run stopped (a JSON array of strings for a key of several columns)")
	copyScript := fs.String("copy-script", "", "write to this file the psql script that copies the differing rows from the provider to the subscriber (for a person to read and run; pglmon never runs it)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *copyScript != "" {
		abs, err := filepath.Abs(*copyScript)
		if err != nil {
			return usageError("--copy-script %s: %v", *copyScript, err)
		}
		if strings.ContainsAny(abs, "'\\\n\r") {
			return usageError("--copy-script %q: the script names its CSV files after it in psql's \\copy, which cannot take a quote, a backslash or a line break", *copyScript)
		}
		*copyScript = abs
	}
	var fromKey []string
	if *from != "" {
		if len(tables) != 1 || strings.ContainsAny(tables[0], "*?[") {
			return usageError("--from needs one --table, not a pattern: a key belongs to one table")
		}
		var err error
		if fromKey, err = parseKey(*from); err != nil {
			return usageError("--from %s: %v", *from, err)
		}
	}
	if *output != "table" && *output != "json" {
		return usageError("--output must be table or json, not %q", *output)
	}
	if *parallel < 0 || *parallel > config.MaxVerifyParallel {
		return usageError("--parallel must be between 1 and %d, not %d", config.MaxVerifyParallel, *parallel)
	}
	if *mode != "" && *mode != verify.ModeCount && *mode != verify.ModeChecksum {
		return usageError("--mode must be count or checksum, not %q", *mode)
	}
	if *scan != "" && *scan != verify.ScanAuto && *scan != verify.ScanIndex && *scan != verify.ScanPages {
		return usageError("--scan must be auto, index or pages, not %q", *scan)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if *mode == "" {
		*mode = cfg.Verify.Mode
	}
	if fromKey != nil && *mode != verify.ModeChecksum {
		return usageError("--from works in checksum mode only (count mode counts whole tables)")
	}
	m := monitor.New(cfg)
	_, snaps := m.Cycle(ctx)
	m.Close(context.WithoutCancel(ctx))
	targets, terr := verify.Targets(snaps, *sub)
	if len(targets) == 0 {
		if terr == nil {
			terr = errors.New("no subscription on the reachable subscribers: nothing to verify (pglmon status)")
		}
		return &exitErr{verifyUnknown, terr}
	}
	if terr != nil {
		// Verify the others; the exit code still says not all were.
		fmt.Fprintf(e.stderr, "pglmon verify: %v\n", terr)
	}
	opt := verify.ConfigOptions(cfg.Verify, *mode)
	if *parallel > 0 {
		opt.Parallel = *parallel
	}
	if *scan != "" {
		opt.Scan = *scan
	}
	listed := opt.MaxKeys
	if *copyScript != "" {
		// The script copies more rows than are listed.
		opt.MaxKeys = max(opt.MaxKeys, copyScriptRows)
	}
	// Tables several subscriptions feed (data gathering) hold the other
	// providers' rows too.
	all, _ := verify.Targets(snaps, "")
	sources := verify.Sources(ctx, cfg, all)
	if fromKey != nil {
		opt.Resume = map[string][]string{tables[0]: fromKey}
	}
	if isTerminal(e.stderr) {
		opt.Progress = progressBar(e.stderr)
	}
	var results []verify.Result
	var equal []verified.Entry
	var others []string // subscriptions that replicate none of --table
	var ran []verify.Result
	code := verifyEqual
	for _, tg := range targets {
		opt.OtherSources = sources[tg.Subscriber+"/"+tg.Subscription]
		started := time.Now()
		r := verify.Run(ctx, cfg, tg, opt, tables...)
		ran = append(ran, r)
		if opt.Progress != nil {
			fmt.Fprint(e.stderr, "\r\033[K")
		}
		if r.NotReplicated && *sub == "" {
			// --table alone: the subscriptions that replicate it.
			others = append(others, tg.Subscription)
			continue
		}
		results = append(results, r)
		equal = append(equal, verified.Entries(r, started, len(tables) == 0 && fromKey == nil)...)
		switch {
		case r.Error != "" || hasTableError(r):
			code = max(code, verifyUnknown)
		case !r.Equal:
			code = verifyDiffers
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(results) == 0 && len(others) > 0 && ctx.Err() == nil {
		return &exitErr{verifyUnknown, errors.New(verify.NotReplicatedBy(tables, others...) + verify.DidYouMean(tables, ran...))}
	}
	// A --table that picks no table anywhere is an error (with
	// --subscription: not in that subscription), the others compared.
	if missing := notReplicatedAnywhere(tables, results); len(missing) > 0 && ctx.Err() == nil {
		compared := others
		for _, r := range results {
			compared = append(compared, r.Subscription)
		}
		slices.Sort(compared)
		fmt.Fprintf(e.stderr, "pglmon verify: %s%s\n", verify.NotReplicatedBy(missing, compared...), verify.DidYouMean(missing, ran...))
		code = max(code, verifyUnknown)
	}
	if terr != nil {
		code = max(code, verifyUnknown)
	}
	if code == verifyUnknown && anyDiffers(results) {
		code = verifyDiffers // a difference found outweighs a table that could not be compared
	}
	if anyDiffers(results) {
		addConflicts(ctx, e, cfg, results)
	}
	var script *rowcopy.Script
	if *copyScript != "" {
		s, err := writeCopyScript(cfg, results, *copyScript)
		if err != nil {
			fmt.Fprintf(e.stderr, "pglmon verify: --copy-script: %v\n", err)
		} else {
			script = &s
		}
	}
	listOnly(results, listed)
	// The daemon clears what stands until the rows are put right (a failed
	// table copy, a data_divergence) with what was found equal; on a host
	// without the daemon's state directory there is no daemon to tell.
	if err := verified.Tell(cfg.VerifiedFile(), equal); err != nil {
		fmt.Fprintf(e.stderr, "pglmon verify: the daemon will not learn what this run found equal (it keeps its findings until a verification of its own): %v\n", err)
	}
	if *output == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		out := map[string]any{"results": results}
		if script != nil {
			out["copy_script"] = copyScriptJSON(*script, *copyScript)
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printVerify(e.stdout, results, *path, script != nil && len(script.Tables) > 0)
		printCopyScript(e.stdout, script, *copyScript, *path)
	}
	return &exitErr{code: code}
}

// copyScriptRows is how many differing rows of a table --copy-script copies
// at most; verify.max_keys of them are listed.
const copyScriptRows = 100000

// listOnly cuts each table's differing keys to the n listed.
func listOnly(results []verify.Result, n int) {
	for i := range results {
		for j := range results[i].Tables {
			t := &results[i].Tables[j]
			if len(t.Keys) > n {
				t.Keys, t.KeyValues = t.Keys[:n], t.KeyValues[:min(n, len(t.KeyValues))]
			}
		}
	}
}

// notReplicatedAnywhere are the --table names that pick no table in any
// subscription compared. A result that picked none of them is left out (its
// error says so), and so is a name a result could not look for (it failed
// before it listed its tables: its error says why).
func notReplicatedAnywhere(names []string, results []verify.Result) []string {
	var out []string
	for _, name := range names {
		looked, found := false, false
		for _, r := range results {
			if r.NotReplicated {
				continue
			}
			looked = true
			found = found || !slices.Contains(r.NotReplicatedTables, name)
		}
		if looked && !found {
			out = append(out, name)
		}
	}
	return out
}

// maxConflicts is how many of a table's conflicts are kept.
const maxConflicts = 20

// addConflicts adds to each table that differs the conflicts pglogical
// logged on it (resolving them by itself can leave the tables different):
// one read of the end of each such subscriber's server log (package
// logtail). A log that cannot be read is said on stderr.
func addConflicts(ctx context.Context, e env, cfg *config.Config, results []verify.Result) {
	type read struct {
		file      string
		conflicts []serverlog.Conflict
		ok        bool
	}
	logs := map[string]read{}
	for i := range results {
		r := &results[i]
		for j := range r.Tables {
			t := &r.Tables[j]
			if t.Equal || t.Error != "" {
				continue
			}
			rd, seen := logs[r.Subscriber]
			if !seen {
				if c, ok := readServerLog(ctx, e, cfg, r.Subscriber, "the conflicts pglogical logged"); ok {
					rd = read{file: c.File, conflicts: serverlog.Conflicts(c.Tail), ok: true}
				}
				logs[r.Subscriber] = rd
			}
			if !rd.ok {
				continue
			}
			for _, c := range rd.conflicts {
				if c.Table == t.Table {
					t.ConflictsLogged++
					t.Conflicts = append(t.Conflicts, c)
				}
			}
			if len(t.Conflicts) > maxConflicts {
				t.Conflicts = t.Conflicts[len(t.Conflicts)-maxConflicts:]
			}
			if t.ConflictsLogged > 0 {
				t.ConflictLog = rd.file
			}
		}
	}
}

// parseKey reads --from: one value, or a JSON array of the key's columns.
func parseKey(s string) ([]string, error) {
	if !strings.HasPrefix(s, "[") {
		return []string{s}, nil
	}
	var key []string
	if err := json.Unmarshal([]byte(s), &key); err != nil || len(key) == 0 {
		return nil, fmt.Errorf("a key of several columns is a JSON array of strings, e.g. [\"eu\",\"42\"]")
	}
	return key, nil
}

// fromFlag spells key as --from takes it, quoted for a shell.
func fromFlag(key []string) string {
	v := key[0]
	if len(key) > 1 || strings.HasPrefix(v, "[") {
		b, _ := json.Marshal(key)
		v = string(b)
	}
	return shellword.Quote(v)
}

func hasTableError(r verify.Result) bool {
	for _, t := range r.Tables {
		if t.Error != "" {
			return true
		}
	}
	return false
}

func anyDiffers(rs []verify.Result) bool {
	for _, r := range rs {
		if slices.ContainsFunc(r.Tables, differs) {
			return true
		}
	}
	return false
}

// differs reports whether a table was found differing; rows found differing
// before it was interrupted differ too.
func differs(t verify.TableResult) bool { return (t.Error == "" && !t.Equal) || t.DifferingRows > 0 }

// printVerify writes results as text; tables are named as SQL writes them
// (a mixed-case name quoted), as --table takes them.
func printVerify(w io.Writer, results []verify.Result, path string, scripted bool) {
	for _, r := range results {
		fmt.Fprintf(w, "Subscription %s (%s -> %s), mode %s: %s compared in %s, %s and %s fetched\n",
			r.Subscription, r.Subscriber, r.Provider, r.Mode, plural(int(r.RowsChecked), "row"), r.Duration.Round(time.Millisecond), plural(int(r.RowsFetched), "row"), config.FormatBytes(r.BytesFetched))
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", r.Error)
		}
		if len(r.Excluded) > 0 {
			fmt.Fprintf(w, "  not compared (verify.exclude): %s\n", strings.Join(r.Excluded, ", "))
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  TABLE\tROWS\tRESULT\tDIFFERING\tTIME")
		for _, t := range r.Tables {
			result := "equal"
			switch {
			case t.Error == "interrupted":
				result = "interrupted"
			case t.Error != "":
				result = "error: " + t.Error
			case !t.Equal:
				result = "differs"
			}
			rows := fmt.Sprint(t.RowsCompared)
			if t.Mode == verify.ModeCount {
				rows = fmt.Sprintf("%d / %d", t.ProviderRows, t.SubscriberRows)
			}
			took := t.Duration.Round(time.Millisecond).String()
			if t.Duration < time.Millisecond/2 {
				took = "<1ms" // a small table summed with others at the run's start
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\n", regclassName(t), rows, result, t.DifferingRows, took)
		}
		tw.Flush()
		for _, t := range r.Tables {
			if t.Note != "" {
				fmt.Fprintf(w, "  %s: %s\n", regclassName(t), t.Note)
			}
			if len(t.Keys) == 0 {
				continue
			}
			var keys []string
			for _, k := range t.Keys {
				keys = append(keys, k.Key+" ("+k.Kind+")")
			}
			more := ""
			if int64(len(t.Keys)) < t.DifferingRows {
				more = fmt.Sprintf(" ... and %d more", t.DifferingRows-int64(len(t.Keys)))
			}
			fmt.Fprintf(w, "  %s keys: %s%s\n", regclassName(t), strings.Join(keys, ", "), more)
		}
		for _, t := range r.Tables {
			if t.ConflictsLogged == 0 {
				continue
			}
			fmt.Fprintf(w, "  %s: pglogical resolved %s on it by itself (the end of the subscriber's log, %s), which can leave the tables different; the last:\n", regclassName(t), plural(t.ConflictsLogged, "conflict"), t.ConflictLog)
			for _, c := range t.Conflicts[max(len(t.Conflicts)-3, 0):] {
				fmt.Fprintf(w, "    %s\n", c)
			}
		}
		for _, t := range r.Tables {
			switch {
			case t.ResumeFrom != nil:
				fmt.Fprintf(w, "  %s: stopped at key %s (every key below it was compared); to go on from there:\n", regclassName(t), strings.Join(t.ResumeFrom, ", "))
				fmt.Fprintf(w, "    pglmon verify --config %s --subscription %s --table %s --mode checksum --from %s\n", shellword.Quote(path), shellword.Quote(r.Subscription), shellword.Quote(regclassName(t)), fromFlag(t.ResumeFrom))
			case t.Error == "interrupted" && t.Scan == verify.ScanPages:
				fmt.Fprintf(w, "  %s: stopped while reading it in page order, by a hash of its key: no key below which every row was compared; to compare it in key order, which a later stop can resume:\n", regclassName(t))
				fmt.Fprintf(w, "    pglmon verify --config %s --subscription %s --table %s --mode checksum --scan index\n", shellword.Quote(path), shellword.Quote(r.Subscription), shellword.Quote(regclassName(t)))
			}
		}
		printSequences(w, r)
		if anyDiffers([]verify.Result{r}) {
			var resync, refused []verify.TableResult
			for _, t := range r.Tables {
				switch {
				case differs(t) && t.ResyncWarning != "":
					refused = append(refused, t)
				case differs(t):
					resync = append(resync, t)
				}
			}
			if len(resync) > 0 {
				fmt.Fprintf(w, "  To repair a table, resynchronise it (TRUNCATES it on the subscriber, then copies it again; run on %s):\n", r.Subscriber)
			}
			for _, t := range resync {
				fmt.Fprintf(w, "    SELECT pglogical.alter_subscription_resynchronize_table(%s, %s);\n", pgident.Literal(r.Subscription), pgident.Literal(regclassName(t)))
			}
			for _, t := range refused {
				fmt.Fprintf(w, "  %s%s.\n", strings.ToUpper(t.ResyncWarning[:1]), t.ResyncWarning[1:])
			}
			or, never := "or copy", "pglmon never does either by itself."
			if len(resync) == 0 {
				or, never = "To repair it, copy", "pglmon never does it by itself."
			}
			if scripted {
				fmt.Fprintf(w, "  %s just the differing rows from the provider (the script below). %s\n", or, never)
			} else {
				fmt.Fprintf(w, "  %s just the differing rows from the provider: --copy-script FILE writes the psql script that does it, e.g.\n", or)
				fmt.Fprintf(w, "    pglmon verify --config %s --subscription %s --copy-script rows.psql\n", shellword.Quote(path), shellword.Quote(r.Subscription))
				fmt.Fprintln(w, "  "+never)
			}
			for _, t := range r.Tables {
				if t.Equal || t.Error != "" {
					continue
				}
				if t.ExpectedRows > 0 {
					fmt.Fprintf(w, "  %s: resynchronising it also undoes the %d rows that differ as expected (what its replication sets leave out): copy the differing rows instead to keep them.\n", regclassName(t), t.ExpectedRows)
				}
				if t.Scan == verify.ScanRows {
					fmt.Fprintf(w, "  %s has no primary key: its rows are named by their contents (\"#n\": the n-th copy of a row); the copy script gives %s as many copies of each listed row as the provider has.\n", regclassName(t), r.Subscriber)
				}
			}
		}
	}
}

// printSequences lists the sequences that are not ok, and what to do.
func printSequences(w io.Writer, r verify.Result) {
	if r.SequenceError != "" {
		fmt.Fprintf(w, "  sequences not compared: %s\n", r.SequenceError)
	}
	if len(r.Sequences) == 0 {
		return
	}
	val := func(v *int64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprint(*v)
	}
	ok := 0
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  SEQUENCE\tPROVIDER\tSUBSCRIBER\tRESULT")
	for _, s := range r.Sequences {
		if s.Result == verify.SeqOK {
			ok++
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Sequence, val(s.Provider), val(s.Subscriber), s.Result)
	}
	if ok == len(r.Sequences) {
		fmt.Fprintf(w, "  sequences: %d, none behind the provider\n", ok)
		return
	}
	tw.Flush()
	if ok > 0 {
		fmt.Fprintf(w, "  (%d more sequences ok)\n", ok)
	}
	for _, s := range r.Sequences {
		switch s.Result {
		case verify.SeqBehind:
			fmt.Fprintf(w, "  %s is behind on the subscriber (pglogical copies sequences only now and then): it would hand out values the provider used. Before the subscriber takes writes, on %s: SELECT pglogical.synchronize_sequence(%s);\n", s.Sequence, r.Provider, pgident.Literal(s.Sequence))
		case verify.SeqMissing:
			fmt.Fprintf(w, "  %s is in a replication set of %s but does not exist on %s: create it there (pglogical's next copy of it stops the subscription).\n", s.Sequence, r.Subscription, r.Subscriber)
		case verify.SeqUnreadable:
			fmt.Fprintf(w, "  %s: pglmon's role may not read its value on the %s (PostgreSQL shows it as never used then), so it was not compared: GRANT SELECT ON SEQUENCE %s TO <the role>;\n", s.Sequence, s.UnreadableOn, s.Sequence)
		case verify.SeqNotReplicated:
			fmt.Fprintf(w, "  %s gives %s its values but is in no replication set of %s: the subscriber's copy never moves. On %s: SELECT pglogical.replication_set_add_sequence('<set>', %s, true);\n", s.Sequence, s.Table, r.Subscription, r.Provider, pgident.Literal(s.Sequence))
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws tables done, rows checked, rate and ETA on one line.
func progressBar(w io.Writer) func(verify.Progress) {
	last := time.Time{}
	return func(p verify.Progress) {
		if time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		rate := float64(p.RowsChecked) / max(p.Elapsed.Seconds(), 0.001)
		eta := "?"
		if p.RowsEstimated > p.RowsChecked && rate > 0 {
			eta = time.Duration(float64(p.RowsEstimated-p.RowsChecked) / rate * float64(time.Second)).Round(time.Second).String()
		}
		frac := 0.0
		if p.RowsEstimated > 0 {
			frac = min(float64(p.RowsChecked)/float64(p.RowsEstimated), 1)
		}
		bar := strings.Repeat("#", int(frac*20)) + strings.Repeat(".", 20-int(frac*20))
		fmt.Fprintf(w, "\r\033[K[%s] table %d/%d %s  %d rows  %.0f rows/s  ETA %s", bar, p.TableIndex, p.Tables, p.Table, p.RowsChecked, rate, eta)
	}
}

// regclassName is a table's name as a regclass reads it: schema and table
// double-quoted where they need it (capitals, spaces, dots ...).
func regclassName(t verify.TableResult) string {
	if t.Spec.Name == "" {
		return t.Table
	}
	return t.Spec.Regclass()
}

// writeCopyScript writes the psql script that copies the differing rows
// (package rowcopy) to path, readable by its owner only: it names keys.
// Nothing is written when no row can be copied by key.
func writeCopyScript(cfg *config.Config, results []verify.Result, path string) (rowcopy.Script, error) {
	node := func(name string) rowcopy.Node {
		n, _ := cfg.Node(name) // not configured: no DSN, and rowcopy leaves it out
		return rowcopy.Node{Name: name, Conninfo: probe.ClientConninfo(n.DSN)}
	}
	var subs []rowcopy.Subscription
	for _, r := range results {
		subs = append(subs, rowcopy.Subscription{Name: r.Subscription, Provider: node(r.Provider), Subscriber: node(r.Subscriber), Tables: r.Tables})
	}
	s, err := rowcopy.Build(subs, path, time.Now(), buildVersion())
	if err != nil || len(s.Tables) == 0 {
		return s, err
	}
	return s, atomicfile.Write(path, []byte(s.Text), 0o600, nil)
}

// copyScriptJSON is what --output json says of the script: path and run
// only when one was written.
func copyScriptJSON(s rowcopy.Script, path string) map[string]any {
	list := func(l []string) []string { return append([]string{}, l...) } // [], never null
	out := map[string]any{"tables": list(s.Tables), "rows": s.Rows, "partial": list(s.Partial), "left_out": list(s.Left)}
	if len(s.Tables) > 0 {
		out["path"] = path
		out["run"] = copyScriptCommand(s, path)
	}
	return out
}

func copyScriptCommand(s rowcopy.Script, path string) string {
	return "psql -X -d " + shellword.Quote(s.Connect.Conninfo) + " -f " + shellword.Quote(path)
}

// printCopyScript says what the script written for --copy-script copies,
// what it leaves out, and how to run it.
func printCopyScript(w io.Writer, s *rowcopy.Script, path, config string) {
	if s == nil {
		return
	}
	for _, l := range s.Left {
		fmt.Fprintf(w, "Not in the copy script: %s\n", l)
	}
	if len(s.Tables) == 0 {
		fmt.Fprintf(w, "No differing row to copy by key: %s not written.\n", path)
		return
	}
	fmt.Fprintf(w, "Wrote %s: it copies %s that differ, of %s, from the provider to the subscriber. Read it, then run:\n", path, plural(s.Rows, "row"), strings.Join(s.Tables, ", "))
	fmt.Fprintf(w, "  %s\n", copyScriptCommand(*s, path))
	for _, p := range s.Partial {
		fmt.Fprintf(w, "  only part of a table (a script copies at most %d rows of one): %s; run pglmon verify --copy-script again afterwards for the rest, or resynchronise the table\n", copyScriptRows, p)
	}
	fmt.Fprintf(w, "then check: pglmon verify --config %s\n", shellword.Quote(config))
}
