// Package logtail reads the end of a node's PostgreSQL server log, where the
// reason a pglogical worker stopped is written: through the RDS API
// (DescribeDBLogFiles, DownloadDBLogFilePortion) for a node with rds:, and
// through SQL (pg_current_logfile, pg_stat_file, pg_read_binary_file) for a
// self-managed one.
package logtail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rdsadmin"
)

// How much of the end of a log is read: lines through the RDS API, bytes
// through SQL (about as much, at ~250 bytes a line).
const (
	Lines = 2000
	Bytes = 512 << 10
)

// ErrOff is returned for a node whose server_log is off.
var ErrOff = errors.New("server_log is off")

// Read returns the name of the node's current log file and its last part
// (from a line's start).
func Read(ctx context.Context, cfg *config.Config, n config.Node) (file, text string, err error) {
	var f Follower
	c, err := f.Follow(ctx, cfg, n)
	return c.File, c.Tail, err
}

// currentSQL names the file the server writes its log to: the logging
// collector's (relative to the data directory), or, without a collector, the
// file Debian's pg_ctlcluster sends a cluster's output to.
const currentSQL = `SELECT coalesce(pg_current_logfile('stderr'),
	CASE WHEN current_setting('cluster_name') ~ '^[0-9]+/[A-Za-z0-9_.-]+$'
	THEN '/var/log/postgresql/postgresql-' || replace(current_setting('cluster_name'), '/', '-') || '.log' END)`

func current(ctx context.Context, conn *pgx.Conn) (string, error) {
	var path *string
	if err := conn.QueryRow(ctx, currentSQL).Scan(&path); err != nil {
		return "", err
	}
	if path == nil {
		return "", errors.New("the server has no log file pglmon can find (logging_collector is off, or log_destination lacks stderr): set the node's server_log to the file's path, or to off")
	}
	return *path, nil
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
	Marker string `json:"marker,omitempty"` // RDS: the Marker after the last portion read
}

// Chunk is one Follow of a node's log.
type Chunk struct {
	File string
	// Tail is the end of the log, as Read returns it.
	Tail string
	// New holds the whole lines written since the previous Follow of the
	// node; nothing on the first (Baseline), which only finds the end.
	New      string
	Baseline bool
	// Resumed is set on the first Follow from a Position taken over with
	// Resume: New holds what the log gained while no Follower read it.
	Resumed bool
	// Skipped is set when part of what the log gained was not read: more
	// than MaxFollow, a rotated file already gone, or a file truncated.
	Skipped bool
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
	var c Chunk
	var next Position
	var err error
	src := n.LogSource()
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
	c.Baseline, c.Resumed = !known, f.resumed[n.Name]
	delete(f.resumed, n.Name)
	f.pos[n.Name] = next
	return c, nil
}

func (f *Follower) followRDS(ctx context.Context, cfg *config.Config, n config.Node, prev Position, known bool) (Chunk, Position, error) {
	rc, err := rdsadmin.ForNode(ctx, awsclient.New(cfg.AWS, awsclient.Options{}), cfg, n)
	if err != nil {
		return Chunk{}, prev, err
	}
	id := n.RDS.Identifier
	name, tail, end, err := rc.LogTail(ctx, id, Lines)
	if err != nil || name == "" {
		return Chunk{}, prev, err
	}
	c := Chunk{File: name, Tail: tail}
	next := Position{File: name, Marker: end}
	if !known {
		return c, next, nil
	}
	var parts []string
	if prev.File != name && prev.File != "" {
		// Rotated: the rest of the previous file, then the new one from its start.
		rest, _, more, err := rc.LogSince(ctx, id, prev.File, prev.Marker, Lines, int(f.max()))
		if err != nil {
			c.Skipped = true // gone (RDS keeps files for rds.log_retention_period)
		}
		c.Skipped = c.Skipped || more
		parts = append(parts, rest)
		prev.Marker = "0"
	}
	text, after, more, err := rc.LogSince(ctx, id, name, prev.Marker, Lines, int(f.max()))
	if err != nil {
		return Chunk{}, prev, err
	}
	if more {
		// Too much to read: skip to the end the tail read found.
		c.Skipped = true
	} else {
		next.Marker = after
	}
	c.New = strings.Join(append(parts, text), "")
	return c, next, nil
}

func (f *Follower) followSQL(ctx context.Context, cfg *config.Config, n config.Node, prev Position, known bool) (Chunk, Position, error) {
	conn, err := probe.Connect(ctx, n, max(cfg.Probe.Timeout.D(), 10*time.Second))
	if err != nil {
		return Chunk{}, prev, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	path := n.LogSource()
	if path == config.ServerLogAuto {
		if path, err = current(ctx, conn); err != nil {
			return Chunk{}, prev, explain(n, "find the server log file", err)
		}
	}
	c := Chunk{File: path}
	fail := func(err error) (Chunk, Position, error) {
		return Chunk{}, prev, explain(n, "read the server log "+path, err)
	}
	raw, size, err := tailBytes(ctx, conn, path, Bytes)
	if err != nil {
		return fail(err)
	}
	tailStart := size - int64(len(raw))
	c.Tail = string(raw)
	if tailStart > 0 {
		c.Tail = string(fromLine(raw))
	}
	end := func(start int64, b []byte) int64 { return start + int64(bytes.LastIndexByte(b, '\n')+1) }
	next := Position{File: path, Offset: end(tailStart, raw)}
	if !known {
		return c, next, nil
	}
	// read returns the whole lines of [from, to) of file, f.max() at most
	// (the newest), and where the last one ends.
	read := func(file string, from, to int64) ([]byte, int64, error) {
		if to-from > f.max() {
			from, c.Skipped = to-f.max(), true
			b, err := readRange(ctx, conn, file, from, to-from)
			b = fromLine(b)
			return b[:bytes.LastIndexByte(b, '\n')+1], end(to-int64(len(b)), b), err
		}
		var b []byte
		if file == path && from >= tailStart {
			b = raw[from-tailStart : to-tailStart]
		} else if b, err = readRange(ctx, conn, file, from, to-from); err != nil {
			return nil, from, err
		}
		return b[:bytes.LastIndexByte(b, '\n')+1], end(from, b), nil
	}
	var gained []byte
	switch {
	case prev.File == path && size >= prev.Offset:
		b, off, err := read(path, prev.Offset, size)
		if err != nil {
			return fail(err)
		}
		gained, next.Offset = b, off
	default:
		if prev.File != path {
			// Rotated: the rest of the previous file, if it is still there.
			if old, err := fileSize(ctx, conn, prev.File); err != nil || old < prev.Offset {
				c.Skipped = true
			} else if b, _, err := read(prev.File, prev.Offset, old); err == nil {
				gained = b
			} else {
				c.Skipped = true
			}
		} else {
			c.Skipped = true // the same name, shorter: truncated and written anew
		}
		b, off, err := read(path, 0, size)
		if err != nil {
			return fail(err)
		}
		gained, next.Offset = append(gained, b...), off
	}
	c.New = string(gained)
	return c, next, nil
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
