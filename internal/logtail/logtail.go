// Package logtail reads the end of a node's PostgreSQL server log, where the
// reason a pglogical worker stopped is written: through the RDS API
// (DescribeDBLogFiles, DownloadDBLogFilePortion) for a node with rds:, and
// through SQL (pg_current_logfile, pg_stat_file, pg_read_binary_file) for a
// self-managed one.
package logtail

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rdsadmin"
	"github.com/pglmon/pglmon/internal/serverlog"
)

// How much of the end of a log is read: lines through the RDS API, bytes
// through SQL (about as much, at ~250 bytes a line).
const (
	Lines = 2000
	Bytes = 512 << 10
)

// ErrOff is returned for a node whose server_log is off.
var ErrOff = errors.New("server_log is off")

// Read returns the node's current log file, its last part (from a line's
// start: Tail) and the zone its lines' times are in.
func Read(ctx context.Context, cfg *config.Config, n config.Node) (Chunk, error) {
	var f Follower
	c, err := f.Follow(ctx, cfg, n)
	if err == nil && n.RDS != nil {
		// Read through the RDS API: the zone is asked of the server.
		if conn, cerr := probe.Connect(ctx, n, max(cfg.Probe.Timeout.D(), 10*time.Second)); cerr == nil {
			c.Zone = logZone(ctx, conn)
			conn.Close(context.WithoutCancel(ctx))
		}
	}
	return c, err
}

// currentSQL names the file the server writes its log to: the logging
// collector's (relative to the data directory; its stderr file, else its
// csvlog or jsonlog one), or, without a collector, the file Debian's
// pg_ctlcluster sends a cluster's output to.
const currentSQL = `SELECT coalesce(pg_current_logfile('stderr'), pg_current_logfile('csvlog'),
	CASE WHEN current_setting('server_version_num')::int >= 150000 THEN pg_current_logfile('jsonlog') END,
	CASE WHEN current_setting('cluster_name') ~ '^[0-9]+/[A-Za-z0-9_.-]+$'
	THEN '/var/log/postgresql/postgresql-' || replace(current_setting('cluster_name'), '/', '-') || '.log' END)`

// collectorSQL says whether the logging collector writes a log pglmon
// reads (pg_current_logfile(text): what Grants grants, not the form
// without argument).
const collectorSQL = `SELECT coalesce(pg_current_logfile('stderr'), pg_current_logfile('csvlog'),
	CASE WHEN current_setting('server_version_num')::int >= 150000 THEN pg_current_logfile('jsonlog') END) IS NOT NULL`

func current(ctx context.Context, conn *pgx.Conn) (string, error) {
	var path *string
	if err := conn.QueryRow(ctx, currentSQL).Scan(&path); err != nil {
		return "", err
	}
	if path == nil {
		return "", errors.New("the server has no log file pglmon can find (logging_collector is off, or log_destination has none of stderr, csvlog, jsonlog): set the node's server_log to the file's path, or to off")
	}
	return *path, nil
}

// logZone is the server's log_timezone (nil: not known to Go, such as a
// POSIX rule without a zoneinfo file of its name).
func logZone(ctx context.Context, conn *pgx.Conn) *time.Location {
	var name string
	if conn.QueryRow(ctx, "SELECT current_setting('log_timezone')").Scan(&name) != nil {
		return nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil
	}
	return loc
}

// tailSQL reads the last $2 bytes of file $1, and its size (NULLs when it
// does not exist).
const tailSQL = `SELECT s.size, CASE WHEN s.size IS NOT NULL
	THEN pg_read_binary_file($1, greatest(s.size - $2, 0), least(s.size, $2)) END
FROM pg_stat_file($1, true) s`

// tailBytes reads the last n bytes of file as they are (the first line may
// be cut) and the file's size.
func tailBytes(ctx context.Context, conn *pgx.Conn, path string, n int64) (raw []byte, size int64, err error) {
	var sz *int64
	if err := conn.QueryRow(ctx, tailSQL, path, n).Scan(&sz, &raw); err != nil {
		return nil, 0, err
	}
	if sz == nil {
		return nil, 0, errors.New("no such file on the server")
	}
	return raw, *sz, nil
}

// tail reads the end of file, at most n bytes, from a line's start.
func tail(ctx context.Context, conn *pgx.Conn, path string, n int64) (string, error) {
	raw, size, err := tailBytes(ctx, conn, path, n)
	if err != nil {
		return "", err
	}
	if size > n {
		raw = fromLine(raw)
	}
	return string(raw), nil
}

// Grants is what a role that is not a superuser needs to read the log.
const Grants = "GRANT EXECUTE ON FUNCTION pg_current_logfile(text), pg_stat_file(text, boolean), pg_read_binary_file(text, bigint, bigint) TO <pglmon's role> (and GRANT pg_read_server_files for a log outside the data directory)"

// explain adds what to grant to a refused read.
func explain(n config.Node, what string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		return fmt.Errorf("%s on %s: %s; %s, or set server_log: off", what, n.Name, pe.Message, Grants)
	}
	return fmt.Errorf("%s on %s: %w", what, n.Name, err)
}

// ListRotated checks that pglmon's role may list the logging collector's
// directory (pg_ls_logdir, which pg_monitor may call): a Follower needs it
// to read the files a log rotated through between two reads. nil too when
// the node's log is no collector's (RDS, a server_log path, no collector).
func ListRotated(ctx context.Context, cfg *config.Config, n config.Node) error {
	if n.RDS != nil || n.LogSource() != config.ServerLogAuto {
		return nil
	}
	conn, err := probe.Connect(ctx, n, max(cfg.Probe.Timeout.D(), 10*time.Second))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var collector bool
	if err := conn.QueryRow(ctx, collectorSQL).Scan(&collector); err != nil || !collector {
		return err
	}
	_, err = conn.Exec(ctx, "SELECT FROM pg_ls_logdir() LIMIT 1")
	return err
}

// MaxFollow bounds what one Follow takes of what a log gained since the
// last: past it, the oldest part is skipped.
const MaxFollow = 16 << 20

// Follower reads, node by node, what a server log gained since its last
// read, so that every line is seen once however fast the log grows (up to
// MaxFollow a read). Not safe for concurrent use.
type Follower struct {
	// Max is what one Follow reads at most of what a log gained (0: MaxFollow).
	Max int64
	pos map[string]Position
	// resumed holds the nodes whose Position came from Resume, until
	// their next Follow.
	resumed map[string]bool
}

// Positions returns where the last Follow of each node ended: what a
// daemon keeps across restarts.
func (f *Follower) Positions() map[string]Position { return maps.Clone(f.pos) }

// Resume takes over positions kept by an earlier Follower (Positions): the
// next Follow of such a node is no baseline, but reads what its log gained
// since (Chunk.Resumed), as if the same Follower had gone on.
func (f *Follower) Resume(pos map[string]Position) {
	f.pos, f.resumed = maps.Clone(pos), map[string]bool{}
	for node := range pos {
		f.resumed[node] = true
	}
}

func (f *Follower) max() int64 {
	if f.Max > 0 {
		return f.Max
	}
	return MaxFollow
}

// Position is where a Follow of a node's log ended.
type Position struct {
	File   string `json:"file"`
	Offset int64  `json:"offset,omitempty"` // SQL: the byte after the last whole line read
	// Mark (SQL) fingerprints the bytes before Offset (markLen at most):
	// the next read goes on at Offset only in a file that holds them there,
	// which tells a file truncated and written anew, or replaced, from one
	// that grew, and finds the copy logrotate's copytruncate made. A hash:
	// a log line may hold what the state file should not.
	Mark   string `json:"mark,omitempty"`
	Marker string `json:"marker,omitempty"` // RDS: the Marker after the last portion read
}

// Chunk is one Follow of a node's log.
type Chunk struct {
	File string
	// Tail is the end of the log, as Read returns it.
	Tail string
	// Zone is the server's log_timezone, in which the times of its lines
	// are written (serverlog.PrefixTime); nil when not known (a zone Go has
	// no rules for; an RDS node's Follow, whose logs say UTC by default;
	// Read asks it).
	Zone *time.Location
	// New holds the whole lines written since the previous Follow of the
	// node, across rotations (the rest of the file read last time, the
	// files written since, the current one); nothing on the first
	// (Baseline), which only finds the end.
	New      string
	Baseline bool
	// Resumed is set on the first Follow from a Position taken over with
	// Resume: New holds what the log gained while no Follower read it.
	Resumed bool
	// Skipped says why part of what the log gained was not read ("": all
	// of it was): more than MaxFollow, a rotated file already gone, a file
	// truncated in place, log files that could not be listed.
	Skipped string
}

// skip records why part of the log was not read (the first reason stands).
func (c *Chunk) skip(format string, args ...any) {
	if c.Skipped == "" {
		c.Skipped = fmt.Sprintf(format, args...)
	}
}

// Forget drops what the follower knows of a node: its next Follow is a
// baseline again.
func (f *Follower) Forget(node string) {
	delete(f.pos, node)
	delete(f.resumed, node)
}

// Follow reads the node's log: its tail and what it gained since the
// node's last Follow. A failed read keeps the position.
func (f *Follower) Follow(ctx context.Context, cfg *config.Config, n config.Node) (Chunk, error) {
	if f.pos == nil {
		f.pos = map[string]Position{}
	}
	prev, known := f.pos[n.Name]
	src := n.LogSource()
	if known && src != config.ServerLogAuto && src != config.ServerLogOff && n.RDS == nil && prev.File != src {
		// server_log names another file than the one read last (the
		// configuration changed): a new log, not a rotation of the old.
		known = false
		delete(f.resumed, n.Name)
	}
	var c Chunk
	var next Position
	var err error
	switch {
	case src == config.ServerLogOff:
		return Chunk{}, ErrOff
	case n.RDS != nil:
		c, next, err = f.followRDS(ctx, cfg, n, prev, known)
	default:
		c, next, err = f.followSQL(ctx, cfg, n, prev, known)
	}
	if err != nil {
		return c, err
	}
	if format := serverlog.FormatOf(c.File); format != serverlog.Stderr {
		// csvlog and jsonlog records read as the lines stderr would hold.
		c.Tail, c.New = serverlog.AsLines(format, c.Tail), serverlog.AsLines(format, c.New)
	}
	c.Baseline, c.Resumed = !known, f.resumed[n.Name]
	delete(f.resumed, n.Name)
	f.pos[n.Name] = next
	return c, nil
}

// logFile is one of a server's log files as a listing shows it.
type logFile struct {
	name    string
	size    int64
	written time.Time
}

// between returns the files of list (oldest first: by when each was last
// written, then by name) written after prev and before cur: those a
// follower that last read prev has not read, cur aside. When prev is no
// longer listed, the files before cur whose names sort after prev's (the
// default names, postgresql-%Y-%m-%d_%H%M%S.log and RDS's
// postgresql.log.<hour>, sort by time), and gone is set.
func between(list []logFile, prev, cur string) (files []logFile, gone bool) {
	c := slices.IndexFunc(list, func(f logFile) bool { return f.name == cur })
	if c < 0 {
		c = len(list)
	}
	p := slices.IndexFunc(list, func(f logFile) bool { return f.name == prev })
	if p < 0 {
		for _, f := range list[:c] {
			if f.name > prev {
				files = append(files, f)
			}
		}
		return files, true
	}
	if p >= c {
		return nil, false
	}
	return list[p+1 : c], false
}

// part is a file of what a log gained since the last read, in order.
type part struct {
	file string
	// read reads the file's new lines, at most limit bytes of them (the
	// newest where it can), and says whether some were left out.
	read func(limit int64) (text []byte, cut bool, err error)
}

// gather reads parts (oldest first) within f.max() bytes in all, newest
// first: past the bound, the oldest are what is left out. The last part is
// the current file, whose error is returned; another's is a skipped part.
func (f *Follower) gather(c *Chunk, parts []part) ([]byte, error) {
	texts := make([][]byte, len(parts))
	left := f.max()
	for i := len(parts) - 1; i >= 0; i-- {
		b, cut, err := parts[i].read(left)
		if err != nil {
			if i == len(parts)-1 {
				return nil, err
			}
			c.skip("%s could not be read: %v", parts[i].file, err)
			continue
		}
		if cut {
			c.skip("more than %d KiB written since the last read", f.max()>>10)
		}
		texts[i], left = b, max(left-int64(len(b)), 0)
	}
	return bytes.Join(texts, nil), nil
}

func (f *Follower) followRDS(ctx context.Context, cfg *config.Config, n config.Node, prev Position, known bool) (Chunk, Position, error) {
	rc, err := rdsadmin.ForNode(ctx, awsclient.New(cfg.AWS, awsclient.Options{}), cfg, n)
	if err != nil {
		return Chunk{}, prev, err
	}
	id := n.RDS.Identifier
	// One listing: the file written last is the one followed, and those
	// before it are the ones a rotation passed.
	list, err := rc.ServerLogs(ctx, id)
	if err != nil || len(list) == 0 {
		return Chunk{}, prev, err
	}
	name := list[len(list)-1].Name
	tail, end, err := rc.FileTail(ctx, id, name, Lines)
	if err != nil {
		return Chunk{}, prev, err
	}
	c := Chunk{File: name, Tail: tail}
	next := Position{File: name, Marker: end}
	if !known {
		return c, next, nil
	}
	// since reads file from marker, up to limit bytes (from its start:
	// a Marker only goes forward).
	since := func(file, marker string, current bool) part {
		return part{file, func(limit int64) ([]byte, bool, error) {
			if limit <= 0 {
				return nil, true, nil
			}
			text, after, more, err := rc.LogSince(ctx, id, file, marker, Lines, int(limit))
			if err != nil {
				return nil, false, err
			}
			if current && !more {
				next.Marker = after // else: skip to the end the tail read found
			}
			b, cut := []byte(text), more
			if int64(len(b)) > limit { // a portion is 2,000 lines: the newest of them
				b, cut = fromLine(b[int64(len(b))-limit-1:]), true
			}
			return b, cut, nil
		}}
	}
	var parts []part
	from := prev.Marker
	if prev.File != name && prev.File != "" {
		// Rotated: the rest of the previous file, the files written since,
		// then the new one from its start.
		files := make([]logFile, len(list))
		for i, l := range list {
			files[i] = logFile{l.Name, l.Size, l.Written}
		}
		mid, gone := between(files, prev.File, name)
		if gone {
			// RDS keeps files for rds.log_retention_period.
			c.skip("%s, where the last read ended, is gone", prev.File)
		} else {
			parts = append(parts, since(prev.File, prev.Marker, false))
		}
		for _, m := range mid {
			parts = append(parts, since(m.name, "0", false))
		}
		from = "0"
	}
	parts = append(parts, since(name, from, true))
	gained, err := f.gather(&c, parts)
	if err != nil {
		return Chunk{}, prev, err
	}
	c.New = string(gained)
	return c, next, nil
}

// logDirSQL lists the server's log directory (pg_monitor may).
const logDirSQL = `SELECT name, size, modification FROM pg_ls_logdir() ORDER BY modification, name`

// logDir lists the files of the server's log directory like file (its
// extension: .log, not .csv or .json), oldest first.
func logDir(ctx context.Context, conn *pgx.Conn, file string) ([]logFile, error) {
	rows, err := conn.Query(ctx, logDirSQL)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (logFile, error) {
		var l logFile
		err := r.Scan(&l.name, &l.size, &l.written)
		return l, err
	})
	if err != nil {
		return nil, err
	}
	dir := path.Dir(file)
	out := list[:0]
	for _, l := range list {
		if path.Ext(l.name) == path.Ext(file) {
			l.name = path.Join(dir, l.name)
			out = append(out, l)
		}
	}
	return out, nil
}

func (f *Follower) followSQL(ctx context.Context, cfg *config.Config, n config.Node, prev Position, known bool) (Chunk, Position, error) {
	conn, err := probe.Connect(ctx, n, max(cfg.Probe.Timeout.D(), 10*time.Second))
	if err != nil {
		return Chunk{}, prev, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	file := n.LogSource()
	auto := file == config.ServerLogAuto
	if auto {
		if file, err = current(ctx, conn); err != nil {
			return Chunk{}, prev, explain(n, "find the server log file", err)
		}
	}
	c := Chunk{File: file, Zone: logZone(ctx, conn)}
	fail := func(err error) (Chunk, Position, error) {
		return Chunk{}, prev, explain(n, "read the server log "+file, err)
	}
	raw, size, err := tailBytes(ctx, conn, file, Bytes)
	if err != nil {
		return fail(err)
	}
	tailStart := size - int64(len(raw))
	c.Tail = string(raw)
	if tailStart > 0 {
		c.Tail = string(fromLine(raw))
	}
	end := func(start int64, b []byte) int64 { return start + int64(bytes.LastIndexByte(b, '\n')+1) }
	next := Position{File: file, Offset: end(tailStart, raw)}
	// markAt is the Mark of name at off, from the tail when it holds it.
	markAt := func(name string, off int64) (string, error) {
		n := min(off, markLen)
		if name == file && off-n >= tailStart && off <= size {
			return mark(raw[off-n-tailStart : off-tailStart]), nil
		}
		b, err := readRange(ctx, conn, name, off-n, n)
		if err != nil || int64(len(b)) < n {
			return "", err
		}
		return mark(b), nil
	}
	// holds: name holds at off what the last read ended on (assumed of a
	// position kept without a Mark).
	holds := func(name string, off int64) bool {
		if prev.Mark == "" {
			return true
		}
		m, err := markAt(name, off)
		return err == nil && m == prev.Mark
	}
	if !known {
		next.Mark, _ = markAt(file, next.Offset)
		return c, next, nil
	}
	// span is the whole lines of [from, to) of name: the newest of them
	// when more than limit bytes.
	span := func(name string, from, to int64) part {
		return part{name, func(limit int64) ([]byte, bool, error) {
			if limit <= 0 {
				return nil, to > from, nil
			}
			cut := to-from > limit
			if cut {
				from = to - limit
			}
			var b []byte
			if name == file && from >= tailStart {
				b = raw[from-tailStart : to-tailStart]
			} else {
				var err error
				if b, err = readRange(ctx, conn, name, from, to-from); err != nil {
					return nil, false, err
				}
			}
			if cut { // from a line's start
				rest := fromLine(b)
				from, b = from+int64(len(b)-len(rest)), rest
			}
			b = b[:bytes.LastIndexByte(b, '\n')+1]
			if name == file {
				next.Offset = from + int64(len(b))
			}
			return b, cut, nil
		}}
	}
	var parts []part
	from := prev.Offset
	switch {
	case prev.File == file && size >= prev.Offset && holds(file, prev.Offset):
	case prev.File == file:
		// Truncated in place and written anew: by logrotate's copytruncate
		// (Debian's /var/log/postgresql), which copied it to file.1 first
		// (delaycompress keeps that one as it is for a rotation; else
		// file.1.gz; with dateext file-YYYYMMDD), or by
		// log_truncate_on_rotation. The rest, from the copy if it is one.
		from = 0
		if p, ok, why := f.rotatedCopy(ctx, conn, file, prev, span, holds); ok {
			parts = append(parts, p)
		} else {
			c.skip("%s was truncated in place and written anew, and %s", file, why)
		}
	default:
		// Rotated: the rest of the previous file, if it is still there,
		// the files written since (the logging collector's directory),
		// then the new one from its start.
		if old, err := fileSize(ctx, conn, prev.File); err != nil || old < prev.Offset || !holds(prev.File, prev.Offset) {
			c.skip("%s, where the last read ended, is gone, shorter or written anew", prev.File)
		} else {
			parts = append(parts, span(prev.File, prev.Offset, old))
		}
		if auto && path.Dir(prev.File) == path.Dir(file) {
			list, err := logDir(ctx, conn, file)
			if err != nil {
				c.skip("the log directory could not be listed (pg_ls_logdir, which pg_monitor may call): %v", err)
			}
			mid, _ := between(list, prev.File, file)
			for _, m := range mid {
				parts = append(parts, span(m.name, 0, m.size))
			}
		}
		from = 0
	}
	parts = append(parts, span(file, from, size))
	gained, err := f.gather(&c, parts)
	if err != nil {
		return fail(err)
	}
	c.New = string(gained)
	next.Mark, _ = markAt(file, next.Offset)
	return c, next, nil
}

// markLen is how many bytes before its Offset a Position's Mark hashes.
const markLen = 256

// mark fingerprints b: its length and the start of its SHA-256.
func mark(b []byte) string {
	h := sha256.Sum256(b)
	return fmt.Sprintf("%d:%x", len(b), h[:8])
}

// fromLine drops what precedes the first line start of b (b starts inside a line).
func fromLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b[:0]
}

// fileSize is the size of file on the server, -1 when it does not exist.
func fileSize(ctx context.Context, conn *pgx.Conn, file string) (int64, error) {
	var size *int64
	if err := conn.QueryRow(ctx, "SELECT (pg_stat_file($1, true)).size", file).Scan(&size); err != nil {
		return 0, err
	}
	if size == nil {
		return -1, nil
	}
	return *size, nil
}

// readRange reads n bytes of file from offset.
func readRange(ctx context.Context, conn *pgx.Conn, file string, offset, n int64) ([]byte, error) {
	var b []byte
	err := conn.QueryRow(ctx, "SELECT pg_read_binary_file($1, $2, $3)", file, offset, n).Scan(&b)
	return b, err
}
