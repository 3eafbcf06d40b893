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
	src := n.LogSource()
	switch {
	case src == config.ServerLogOff:
		return "", "", ErrOff
	case n.RDS != nil:
		api, err := awsclient.New(cfg.AWS, awsclient.Options{}).RDS(ctx, cfg.NodeRegion(n))
		if err != nil {
			return "", "", err
		}
		return (&rdsadmin.Client{API: api}).LogTail(ctx, n.RDS.Identifier, Lines)
	}
	conn, err := probe.Connect(ctx, n, max(cfg.Probe.Timeout.D(), 10*time.Second))
	if err != nil {
		return "", "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	path := src
	if src == config.ServerLogAuto {
		if path, err = current(ctx, conn); err != nil {
			return "", "", explain(n, "find the server log file", err)
		}
	}
	text, err = tail(ctx, conn, path, Bytes)
	if err != nil {
		return path, "", explain(n, "read the server log "+path, err)
	}
	return path, text, nil
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

// tailSQL reads the last $2 bytes of file $1 (NULLs when it does not exist).
const tailSQL = `SELECT s.size, CASE WHEN s.size IS NOT NULL
	THEN pg_read_binary_file($1, greatest(s.size - $2, 0), least(s.size, $2)) END
FROM pg_stat_file($1, true) s`

func tail(ctx context.Context, conn *pgx.Conn, path string, n int64) (string, error) {
	var size *int64
	var b []byte
	if err := conn.QueryRow(ctx, tailSQL, path, n).Scan(&size, &b); err != nil {
		return "", err
	}
	if size == nil {
		return "", errors.New("no such file on the server")
	}
	if *size > n {
		// Started inside a line: drop its end.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b), nil
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
