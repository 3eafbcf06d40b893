package logtail

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/awstest"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/serverlog"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func node(c *pgtest.Cluster, user, serverLog string) config.Node {
	return config.Node{Name: "n", DSN: fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslmode=disable", c.Host, c.Port, user), ServerLog: serverLog}
}

// logLine writes a line to the server's log and returns it.
func logLine(t *testing.T, c *pgtest.Cluster, what string) string {
	t.Helper()
	marker := fmt.Sprintf("pglmon-logtail-%s-%d", what, time.Now().UnixNano())
	if err := c.Exec(context.Background(), "postgres", fmt.Sprintf("DO $$ BEGIN RAISE LOG '%s'; END $$", marker)); err != nil {
		t.Fatal(err)
	}
	return marker
}

// readUntil reads the node's log until it holds marker (the logging
// collector writes asynchronously).
func readUntil(t *testing.T, n config.Node, marker string) (file, text string) {
	t.Helper()
	c := readChunkUntil(t, n, marker)
	return c.File, c.Tail
}

func readChunkUntil(t *testing.T, n config.Node, marker string) Chunk {
	t.Helper()
	cfg := config.Default()
	var c Chunk
	var err error
	if perr := pgtest.Poll(context.Background(), 20*time.Second, func() bool {
		c, err = Read(context.Background(), cfg, n)
		return err == nil && strings.Contains(c.Tail, marker)
	}); perr != nil {
		t.Fatalf("log never held %s: file %q, err %v, %d bytes read", marker, c.File, err, len(c.Tail))
	}
	return c
}

// The server's log_timezone here has abbreviations (CET, CEST), which it
// writes in each line's time: Read says which zone that is, so the time
// is read.
func TestReadsTheLoggingCollectorsFile(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t, pgtest.Options{ExtraConf: append([]string{"log_timezone = 'Europe/Berlin'"}, pgtest.LogCollector...)})
	before := time.Now().Truncate(time.Millisecond)
	marker := logLine(t, c, "auto")
	chunk := readChunkUntil(t, node(c, "postgres", ""), marker)
	file, text := chunk.File, chunk.Tail
	if !strings.HasPrefix(file, "log/postgresql-") {
		t.Errorf("file: %q", file)
	}
	if !strings.Contains(text, "] LOG:  "+marker) {
		t.Errorf("the line as the server wrote it is not in the text:\n%s", text)
	}
	if chunk.Zone == nil || chunk.Zone.String() != "Europe/Berlin" {
		t.Fatalf("zone: %v", chunk.Zone)
	}
	var line string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, marker) {
			line = l
		}
	}
	at, ok := serverlog.PrefixTime(line, chunk.Zone)
	if abbr, _ := before.In(chunk.Zone).Zone(); !ok || at.Before(before) || time.Since(at) > time.Minute || !strings.Contains(line, " "+abbr+" ") {
		t.Errorf("time of %q: %s %v (written after %s)", line, at, ok, before)
	}
	if _, ok := serverlog.PrefixTime(line, nil); ok {
		t.Errorf("%q read without its zone", line)
	}
	// Off: nothing is read.
	if _, err := Read(context.Background(), config.Default(), node(c, "postgres", "off")); !errors.Is(err, ErrOff) {
		t.Errorf("server_log off: %v", err)
	}
	// A role without the grants gets told what to grant.
	if err := c.Exec(context.Background(), "postgres", "CREATE ROLE nobody LOGIN"); err != nil {
		t.Fatal(err)
	}
	_, err := Read(context.Background(), config.Default(), node(c, "nobody", ""))
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), Grants) {
		t.Errorf("unprivileged: %v", err)
	}
	// With the grants the README gives, it reads.
	grant := strings.Replace(strings.SplitN(Grants, " (", 2)[0], "<pglmon's role>", "nobody", 1)
	if err := c.Exec(context.Background(), "postgres", grant); err != nil {
		t.Fatal(err)
	}
	readUntil(t, node(c, "nobody", ""), marker)
}

func TestReadsAFileByPathAndFindsDebiansFile(t *testing.T) {
	t.Parallel()
	// No logging collector: pg_ctl -l sends the output to a file outside the
	// data directory, as Debian's pg_ctlcluster does.
	c := pgtest.NewCluster(t, pgtest.Options{ExtraConf: []string{"cluster_name = '15/pglmontest'"}})
	marker := logLine(t, c, "path")
	file, _ := readUntil(t, node(c, "postgres", c.LogPath()), marker)
	if file != c.LogPath() {
		t.Errorf("file: %q", file)
	}
	// auto, without a collector: Debian's file for the cluster's name.
	_, err := Read(context.Background(), config.Default(), node(c, "postgres", ""))
	if err == nil || !strings.Contains(err.Error(), "read the server log /var/log/postgresql/postgresql-15-pglmontest.log on n: no such file on the server") {
		t.Errorf("auto without a collector: %v", err)
	}
	if _, err := Read(context.Background(), config.Default(), node(c, "postgres", "/nonexistent/pg.log")); err == nil || !strings.Contains(err.Error(), "/nonexistent/pg.log") {
		t.Errorf("missing file: %v", err)
	}
}

func TestTailStartsAtALine(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t, pgtest.Options{})
	marker := logLine(t, c, "tail")
	readUntil(t, node(c, "postgres", c.LogPath()), marker)
	conn, err := c.Connect(context.Background(), "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const n = 300 // a few lines: starts inside one
	text, err := tail(context.Background(), conn, c.LogPath(), n)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(c.LogPath()) // after: the server may have written more
	if err != nil {
		t.Fatal(err)
	}
	at := strings.Index(string(whole), text)
	if text == "" || len(text) > n || at < 0 || len(whole) <= n {
		t.Fatalf("tail of %d bytes of %d: %q", n, len(whole), text)
	}
	if at == 0 || whole[at-1] != '\n' || !strings.HasSuffix(text, "\n") {
		t.Errorf("the tail does not start at a line (at %d): %q", at, text)
	}
}

// burst logs n lines of about 10 KB each, then marker, in one statement.
func burst(t *testing.T, c *pgtest.Cluster, n int, marker string) {
	t.Helper()
	sql := fmt.Sprintf("DO $$ BEGIN FOR i IN 1..%d LOOP RAISE LOG 'pglmon-burst %% %%', i, repeat('x', 10000); END LOOP; RAISE LOG '%s'; END $$", n, marker)
	if err := c.Exec(context.Background(), "postgres", sql); err != nil {
		t.Fatal(err)
	}
}

// followUntil follows until the text gained holds marker's message (the LOG
// line RAISE LOG wrote), and returns all of it (the collector writes
// asynchronously). Not the marker alone: the server logs the statement of
// every LOG message, so burst's first line, long before its last, already
// holds the marker it ends with (a wait that ended there failed in CI).
func followUntil(t *testing.T, f *Follower, n config.Node, marker string) (string, []Chunk) {
	t.Helper()
	var all strings.Builder
	var chunks []Chunk
	if err := pgtest.Poll(context.Background(), 20*time.Second, func() bool {
		c, err := f.Follow(context.Background(), config.Default(), n)
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString(c.New)
		chunks = append(chunks, c)
		return strings.Contains(all.String(), "LOG:  "+marker)
	}); err != nil {
		t.Fatalf("never followed up to %s: %d bytes gained", marker, all.Len())
	}
	return all.String(), chunks
}

// Following reads every line once: more than the tail between two reads,
// across a rotation, and says when it skipped some.
func TestFollowReadsEveryLineOnce(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t, pgtest.Options{ExtraConf: pgtest.LogCollector})
	n := node(c, "postgres", "")
	before := logLine(t, c, "before")
	readUntil(t, n, before)
	var f Follower
	first, err := f.Follow(context.Background(), config.Default(), n)
	if err != nil || !first.Baseline || first.New != "" || !strings.Contains(first.Tail, before) {
		t.Fatalf("first follow: baseline %v, new %q, err %v", first.Baseline, first.New, err)
	}
	// A line, then 60 lines of 10 KB (more than the 512 KiB tail), then another.
	early := logLine(t, c, "early")
	late := "pglmon-logtail-late-" + fmt.Sprint(time.Now().UnixNano())
	burst(t, c, 60, late)
	got, chunks := followUntil(t, &f, n, late)
	if strings.Count(got, "LOG:  "+early) != 1 || strings.Count(got, "LOG:  "+late) != 1 || strings.Contains(got, before) || strings.Count(got, "LOG:  pglmon-burst") != 60 {
		var missing []int
		for i := 1; i <= 60; i++ {
			if !strings.Contains(got, fmt.Sprintf("LOG:  pglmon-burst %d x", i)) {
				missing = append(missing, i)
			}
		}
		var ends []string
		for _, ch := range chunks {
			ends = append(ends, fmt.Sprintf("%d bytes, skipped %q", len(ch.New), ch.Skipped))
		}
		t.Errorf("gained: early %d, late %d, before %d, burst lines %d (missing %v); reads: %v", strings.Count(got, "LOG:  "+early), strings.Count(got, "LOG:  "+late), strings.Count(got, "LOG:  "+before), strings.Count(got, "LOG:  pglmon-burst"), missing, ends)
	}
	last := chunks[len(chunks)-1]
	if strings.Contains(last.Tail, early) || !strings.Contains(last.Tail, late) || last.Skipped != "" || last.Baseline {
		t.Errorf("the tail reaches back to the early line, or misses the late one, or skipped %q", last.Skipped)
	}
	for _, ch := range chunks {
		if ch.New != "" && !strings.HasSuffix(ch.New, "\n") {
			t.Errorf("a read ends inside a line: %q", ch.New[max(len(ch.New)-80, 0):])
		}
	}
	// Rotation: the end of the old file, then the new one.
	beforeRotation := logLine(t, c, "before-rotation")
	fileBefore := last.File
	rotate(t, c, n, fileBefore)
	afterRotation := logLine(t, c, "after-rotation")
	got, chunks = followUntil(t, &f, n, afterRotation)
	if strings.Count(got, "LOG:  "+beforeRotation) != 1 || strings.Count(got, "LOG:  "+afterRotation) != 1 || chunks[len(chunks)-1].File == fileBefore {
		t.Errorf("across the rotation: before %d, after %d, file %s:\n%s", strings.Count(got, "LOG:  "+beforeRotation), strings.Count(got, "LOG:  "+afterRotation), chunks[len(chunks)-1].File, got)
	}
	for _, ch := range chunks {
		if ch.Skipped != "" {
			t.Errorf("skipped across a rotation whose old file is still there: %s", ch.Skipped)
		}
	}
	// More than Max since the last read: the newest part, and Skipped.
	small := Follower{Max: 64 << 10}
	if _, err := small.Follow(context.Background(), config.Default(), n); err != nil {
		t.Fatal(err)
	}
	end := "pglmon-logtail-end-" + fmt.Sprint(time.Now().UnixNano())
	burst(t, c, 20, end)
	got, chunks = followUntil(t, &small, n, end)
	skipped := ""
	for _, ch := range chunks {
		skipped += ch.Skipped
	}
	if !strings.Contains(skipped, "more than 64 KiB written since the last read") || strings.Count(got, "LOG:  pglmon-burst") >= 20 {
		t.Errorf("over Max: skipped %q, %d of 20 burst lines read", skipped, strings.Count(got, "LOG:  pglmon-burst"))
	}
}

// rotate rotates the server's log and waits for the new file, which it
// returns (the names are to the second: a rotation in the second of the
// last one goes on writing the same file, so it rotates again).
func rotate(t *testing.T, c *pgtest.Cluster, n config.Node, from string) string {
	t.Helper()
	var cur string
	if err := pgtest.Poll(context.Background(), 20*time.Second, func() bool {
		if err := c.Exec(context.Background(), "postgres", "SELECT pg_rotate_logfile()"); err != nil {
			t.Fatal(err)
		}
		var err error
		var chunk Chunk
		chunk, err = Read(context.Background(), config.Default(), n)
		cur = chunk.File
		return err == nil && cur != from
	}); err != nil {
		t.Fatalf("the log never rotated from %s", from)
	}
	return cur
}

// Several rotations between two reads (a daemon stopped for hours, a log
// rotated by size): the files between the one read last and the current
// one are read too, each line once, and nothing is said to be skipped.
func TestFollowReadsTheFilesBetweenRotations(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t, pgtest.Options{ExtraConf: pgtest.LogCollector})
	// pglmon's role as the README makes it: pg_monitor (which may list the
	// log directory) and the grants to read the log.
	grant := strings.Replace(strings.SplitN(Grants, " (", 2)[0], "<pglmon's role>", "watcher", 1)
	if err := c.Exec(context.Background(), "postgres", "CREATE ROLE watcher LOGIN IN ROLE pg_monitor; "+grant); err != nil {
		t.Fatal(err)
	}
	n := node(c, "watcher", "")
	readUntil(t, n, logLine(t, c, "before"))
	var f Follower
	first, err := f.Follow(context.Background(), config.Default(), n)
	if err != nil || !first.Baseline {
		t.Fatalf("baseline: %+v %v", first, err)
	}
	file, files := first.File, []string{first.File}
	var lines []string
	for i := range 3 {
		lines = append(lines, logLine(t, c, fmt.Sprintf("rotation-%d", i)))
		file = rotate(t, c, n, file)
		files = append(files, file)
	}
	lines = append(lines, logLine(t, c, "last"))
	got, chunks := followUntil(t, &f, n, lines[len(lines)-1])
	for _, l := range lines {
		if k := strings.Count(got, "LOG:  "+l); k != 1 {
			t.Errorf("%s read %d times (files %v)", l, k, files)
		}
	}
	for _, ch := range chunks {
		if ch.Skipped != "" {
			t.Errorf("skipped: %s", ch.Skipped)
		}
		if !strings.HasSuffix(ch.New, "\n") && ch.New != "" {
			t.Error("a read ends inside a line")
		}
	}
	// The same with the files between larger than Max: the newest part
	// is read, and the oldest is said to be skipped.
	small := Follower{Max: 64 << 10}
	if _, err := small.Follow(context.Background(), config.Default(), n); err != nil {
		t.Fatal(err)
	}
	oldest := logLine(t, c, "oldest")
	burst(t, c, 20, "pglmon-logtail-burst-end")
	file = rotate(t, c, n, file)
	newest := logLine(t, c, "newest")
	got, chunks = followUntil(t, &small, n, newest)
	skipped := ""
	for _, ch := range chunks {
		skipped += ch.Skipped
	}
	if strings.Contains(got, oldest) || !strings.Contains(skipped, "more than 64 KiB written since the last read") {
		t.Errorf("over Max across a rotation: oldest line read %v, skipped %q", strings.Contains(got, oldest), skipped)
	}
	// A role without pg_monitor cannot list the directory: it reads the
	// rest of the old file and the new one, and says what it could not.
	plain := strings.Replace(grant, "watcher", "plain", 1)
	if err := c.Exec(context.Background(), "postgres", "CREATE ROLE plain LOGIN; "+plain); err != nil {
		t.Fatal(err)
	}
	var p Follower
	pn := node(c, "plain", "")
	if _, err := p.Follow(context.Background(), config.Default(), pn); err != nil {
		t.Fatal(err)
	}
	rotate(t, c, n, file)
	last := logLine(t, c, "unlisted")
	_, chunks = followUntil(t, &p, pn, last)
	if s := chunks[0].Skipped; !strings.Contains(s, "the log directory could not be listed (pg_ls_logdir, which pg_monitor may call): ERROR: permission denied") {
		t.Errorf("without pg_monitor: skipped %q", s)
	}
}

// inFile waits until the file holds marker (the server writes its
// output asynchronously to pglmon's reads).
func inFile(t *testing.T, file, marker string) {
	t.Helper()
	if err := pgtest.Poll(context.Background(), 20*time.Second, func() bool {
		b, err := os.ReadFile(file)
		return err == nil && strings.Contains(string(b), marker)
	}); err != nil {
		t.Fatalf("%s never held %s", file, marker)
	}
}

// Debian's logrotate rotates /var/log/postgresql with copytruncate: the
// file is copied to .1, then truncated, and the server writes on at its
// start. The lines between the last read and the copy are read from the
// copy (.1, or logrotate's other names: .1.gz, -YYYYMMDD[.gz]); a file
// truncated with no copy, even written past the old offset since, is read
// from its start, and the part lost is said.
func TestFollowFindsLogrotatesCopy(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t, pgtest.Options{})
	file := c.LogPath()
	n := node(c, "postgres", file)
	inFile(t, file, logLine(t, c, "start"))
	var f Follower
	if _, err := f.Follow(context.Background(), config.Default(), n); err != nil {
		t.Fatal(err)
	}
	// copytruncate copies the file to name (gzipped for .gz; "": no copy),
	// then truncates it.
	copytruncate := func(name string) {
		t.Helper()
		if name != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(name, ".gz") {
				var z bytes.Buffer
				zw := gzip.NewWriter(&z)
				zw.Write(b)
				zw.Close()
				b = z.Bytes()
			}
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Truncate(file, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Debian's .1, then logrotate's other names: compressed at once (no
	// delaycompress), dated (dateext), compressed or not. Each is found by
	// where the last read ended (the .1 of before no longer holds it).
	today := time.Now().UTC().Format("20060102")
	for _, name := range []string{file + ".1", file + ".1.gz", file + "-" + today, file + "-" + today + ".gz"} {
		before := logLine(t, c, "before-copy")
		inFile(t, file, before)
		copytruncate(name)
		after := logLine(t, c, "after-copy")
		got, chunks := followUntil(t, &f, n, after)
		if strings.Count(got, "LOG:  "+before) != 1 || strings.Count(got, "LOG:  "+after) != 1 {
			t.Errorf("across copytruncate to %s: before %d, after %d:\n%s", filepath.Base(name), strings.Count(got, "LOG:  "+before), strings.Count(got, "LOG:  "+after), got)
		}
		for _, ch := range chunks {
			if ch.Skipped != "" {
				t.Errorf("skipped across copytruncate to %s: %s", filepath.Base(name), ch.Skipped)
			}
		}
		if name != file+".1" {
			if err := os.Remove(name); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Truncated with no copy of what was written since (.1 is the copy
	// of before), then written past where the last read ended.
	lost := logLine(t, c, "lost")
	inFile(t, file, lost)
	copytruncate("")
	regrown := "pglmon-logtail-regrown-" + fmt.Sprint(time.Now().UnixNano())
	burst(t, c, 5, regrown)
	got, chunks := followUntil(t, &f, n, regrown)
	if strings.Contains(got, lost) || strings.Count(got, "LOG:  pglmon-burst") != 5 || !strings.Contains(chunks[0].Skipped, "server.log was truncated in place and written anew, and no copy of it (server.log.1, or dated: -YYYYMMDD, compressed or not) holds where the last read ended") {
		t.Errorf("truncated, no copy: lost line read %v, %d of 5 burst lines, skipped %q", strings.Contains(got, lost), strings.Count(got, "LOG:  pglmon-burst"), chunks[0].Skipped)
	}
}

// server_log set to another file (a configuration changed while the daemon
// was stopped): a new baseline, not the old file's rest.
func TestFollowANewServerLogIsABaseline(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t, pgtest.Options{ExtraConf: pgtest.LogCollector})
	auto := node(c, "postgres", "")
	file, _ := readUntil(t, auto, logLine(t, c, "before"))
	var f Follower
	f.Resume(map[string]Position{"n": {File: "log/gone.log", Offset: 10}})
	ch, err := f.Follow(context.Background(), config.Default(), node(c, "postgres", file))
	if err != nil || !ch.Baseline || ch.Resumed || ch.New != "" || ch.Skipped != "" {
		t.Errorf("another file named: %+v %v", ch, err)
	}
}

// Following an RDS instance's log through the API: the Marker after each
// read is where the next starts, across an hourly file change.
func TestFollowRDS(t *testing.T) {
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t) // sets the environment: not parallel
	srv.AddInstance("db1", "15.7", "pg15-custom", nil)
	cfg, err := config.Parse("rds.yaml", []byte(a.YAML()+"nodes:\n  - name: n\n    dsn: host=db1.example\n    rds: {identifier: db1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Nodes[0]
	const h18, h19 = "error/postgresql.log.2026-11-24-18", "error/postgresql.log.2026-11-24-19"
	srv.SetLog("db1", h18, 1000, "old 1\nold 2\n")
	var f Follower
	ctx := context.Background()
	c, err := f.Follow(ctx, cfg, n)
	if err != nil || !c.Baseline || c.New != "" || c.Tail != "old 1\nold 2\n" || c.File != h18 {
		t.Fatalf("baseline: %+v %v", c, err)
	}
	srv.SetLog("db1", h18, 2000, "old 1\nold 2\nold 3\n")
	if c, err = f.Follow(ctx, cfg, n); err != nil || c.Baseline || c.New != "old 3\n" {
		t.Errorf("new line: %+v %v", c, err)
	}
	if c, err = f.Follow(ctx, cfg, n); err != nil || c.New != "" {
		t.Errorf("nothing new: %+v %v", c, err)
	}
	// The hour turns: the rest of the old file, then the new one.
	srv.SetLog("db1", h18, 3000, "old 1\nold 2\nold 3\nold 4\n")
	srv.SetLog("db1", h19, 4000, "new 1\nnew 2\n")
	if c, err = f.Follow(ctx, cfg, n); err != nil || c.New != "old 4\nnew 1\nnew 2\n" || c.File != h19 || c.Skipped != "" {
		t.Errorf("rotation: %+v %v", c, err)
	}
	srv.SetLog("db1", h19, 5000, "new 1\nnew 2\nnew 3\n")
	if c, err = f.Follow(ctx, cfg, n); err != nil || c.New != "new 3\n" {
		t.Errorf("after the rotation: %+v %v", c, err)
	}
	// A daemon restarted: another Follower, from the positions kept (as
	// JSON), reads what the log gained meanwhile, no baseline.
	b, err := json.Marshal(f.Positions())
	if err != nil {
		t.Fatal(err)
	}
	var kept map[string]Position
	if err := json.Unmarshal(b, &kept); err != nil {
		t.Fatal(err)
	}
	srv.SetLog("db1", h19, 6000, "new 1\nnew 2\nnew 3\nwhile stopped\n")
	var g Follower
	g.Resume(kept)
	if c, err = g.Follow(ctx, cfg, n); err != nil || c.Baseline || !c.Resumed || c.New != "while stopped\n" {
		t.Errorf("resumed: %+v %v (kept %s)", c, err, b)
	}
	if c, err = g.Follow(ctx, cfg, n); err != nil || c.Resumed || c.New != "" {
		t.Errorf("after the resumed read: %+v %v", c, err)
	}
	// Three hours between two reads (a daemon stopped): the rest of the
	// file read last, the two hours between, the current one.
	const h20, h21, h22 = "error/postgresql.log.2026-11-24-20", "error/postgresql.log.2026-11-24-21", "error/postgresql.log.2026-11-24-22"
	srv.SetLog("db1", h19, 7000, "new 1\nnew 2\nnew 3\nwhile stopped\nlast of 19\n")
	srv.SetLog("db1", h20, 8000, "hour 20\n")
	srv.SetLog("db1", h21, 9000, "hour 21\n")
	srv.SetLog("db1", h22, 10000, "hour 22\n")
	if c, err = g.Follow(ctx, cfg, n); err != nil || c.New != "last of 19\nhour 20\nhour 21\nhour 22\n" || c.File != h22 || c.Skipped != "" {
		t.Errorf("hours between: %+v %v", c, err)
	}
	// The file read last gone (rds.log_retention_period): the files after
	// it, and said.
	const h23, h24 = "error/postgresql.log.2026-11-24-23", "error/postgresql.log.2026-11-25-00"
	srv.SetLog("db1", h23, 11000, "hour 23\n")
	srv.SetLog("db1", h24, 12000, "hour 0\n")
	srv.RemoveLog("db1", h22)
	if c, err = g.Follow(ctx, cfg, n); err != nil || c.New != "hour 23\nhour 0\n" || !strings.Contains(c.Skipped, h22+", where the last read ended, is gone") {
		t.Errorf("the last file gone: %+v %v", c, err)
	}
	// More than Max in all: the newest hours are read.
	small := Follower{Max: 10}
	small.Resume(g.Positions())
	srv.SetLog("db1", "error/postgresql.log.2026-11-25-01", 13000, "hour 1 is long\n")
	srv.SetLog("db1", "error/postgresql.log.2026-11-25-02", 14000, "hour 2\n")
	if c, err = small.Follow(ctx, cfg, n); err != nil || c.New != "hour 2\n" || !strings.Contains(c.Skipped, "written since the last read") {
		t.Errorf("over Max: %+v %v", c, err)
	}
}

// A server logging in csvlog or jsonlog only (log_destination) is read from
// that file: its records as the lines a stderr log holds, every one once
// across reads (a message over several lines, with quotes and commas, too),
// and across a rotation.
func TestFollowsACSVOrJSONLog(t *testing.T) {
	t.Parallel()
	for _, format := range []string{serverlog.CSVLog, serverlog.JSONLog} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			c := pgtest.NewCluster(t, pgtest.Options{ExtraConf: []string{"logging_collector = on", "log_directory = 'log'", "log_destination = '" + format + "'"}})
			n := node(c, "postgres", "")
			before := logLine(t, c, "before")
			file, text := readUntil(t, n, before)
			if serverlog.FormatOf(file) != format || !strings.Contains(text, "] LOG:  "+before+"\n") {
				t.Fatalf("file %q, text:\n%s", file, text)
			}
			var f Follower
			if _, err := f.Follow(context.Background(), config.Default(), n); err != nil {
				t.Fatal(err)
			}
			odd := fmt.Sprintf("pglmon-odd-%d", time.Now().UnixNano())
			if err := c.Exec(context.Background(), "postgres", fmt.Sprintf(`DO $$ BEGIN RAISE LOG '%%', '%s "quoted", with commas,' || chr(10) || 'next line'; END $$`, odd)); err != nil {
				t.Fatal(err)
			}
			late := "pglmon-logtail-late-" + fmt.Sprint(time.Now().UnixNano())
			burst(t, c, 60, late) // more than one tail between two reads
			got, _ := followUntil(t, &f, n, late)
			if strings.Count(got, "] LOG:  "+odd+` "quoted", with commas,`+"\n\tnext line\n") != 1 || strings.Count(got, "LOG:  pglmon-burst") != 60 || strings.Contains(got, before) {
				t.Errorf("gained: odd %d, burst lines %d, before %d", strings.Count(got, odd), strings.Count(got, "LOG:  pglmon-burst"), strings.Count(got, before))
			}
			// Rotation: the rest of the old file, then the new one.
			beforeRotation := logLine(t, c, "before-rotation")
			rotate(t, c, n, file)
			after := logLine(t, c, "after-rotation")
			got, chunks := followUntil(t, &f, n, after)
			if strings.Contains(got, late) || strings.Count(got, "LOG:  "+beforeRotation) != 1 || strings.Count(got, "LOG:  "+after) != 1 || serverlog.FormatOf(chunks[len(chunks)-1].File) != format {
				t.Errorf("across the rotation:\n%s", got)
			}
		})
	}
}
