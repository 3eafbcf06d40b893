// Package pgtest starts real PostgreSQL 15 clusters with pglogical for tests
// and for the demo: on free loopback ports, in private directories, as the
// postgres OS user when the caller is root.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where Debian installs the PostgreSQL 15 server binaries.
const BinDir = "/usr/lib/postgresql/15/bin"

// BaseDir holds every cluster the harness starts, so stale ones can be found.
var BaseDir = filepath.Join(os.TempDir(), "pglmon-pgtest")

// ErrNotInstalled says what to install when the server or pglogical is missing.
var ErrNotInstalled = errors.New("PostgreSQL 15 with pglogical is not installed: run `apt-get install -y postgresql-15-pglogical` (as root)")

// Cluster is one running (or stopped) PostgreSQL server.
type Cluster struct {
	Dir  string // data directory
	Port int
	Host string // always 127.0.0.1

	root     string // directory holding data, socket and log
	portLock *os.File
	cred     *syscall.Credential
	env      []string // Options.Env
}

// LogCollector makes a cluster log through the logging collector, to
// log/ in its data directory, with Debian's line prefix (as RHEL's packages
// and most self-managed servers log).
var LogCollector = []string{"logging_collector = on", "log_directory = 'log'", "log_line_prefix = '%m [%p] '"}

// Options tune a new cluster.
type Options struct {
	// Dir, when set, is used instead of a fresh directory under BaseDir and is
	// kept on Stop (the demo uses it).
	Dir string
	// Port, when set, is used instead of a free one.
	Port int
	// ExtraConf lines are appended to postgresql.conf.
	ExtraConf []string
	// Env ("NAME=value") is added to the server's environment: PGUSER, say,
	// which pglogical's connections take when their connection string
	// names no user.
	Env []string
	// NoPglogical leaves pglogical out of shared_preload_libraries and keeps
	// wal_level at replica (for prerequisite tests).
	NoPglogical bool
}

// CheckInstalled returns ErrNotInstalled when the binaries are missing.
func CheckInstalled() error {
	for _, p := range []string{filepath.Join(BinDir, "initdb"), filepath.Join(BinDir, "pg_ctl"),
		"/usr/lib/postgresql/15/lib/pglogical.so"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (missing %s)", ErrNotInstalled, p)
		}
	}
	return nil
}

// newCluster makes the directory of a new cluster (opt.Dir, or a fresh one
// under BaseDir) and picks its port (opt.Port, or a free one).
func newCluster(opt Options) (*Cluster, error) {
	c := &Cluster{Host: "127.0.0.1", env: opt.Env}
	var err error
	if c.cred, err = serverCredential(); err != nil {
		return nil, err
	}
	if opt.Dir != "" {
		c.root = opt.Dir
		if err := os.MkdirAll(c.root, 0o700); err != nil {
			return nil, fmt.Errorf("create cluster directory: %w", err)
		}
	} else {
		if err := os.MkdirAll(BaseDir, 0o1777); err != nil {
			return nil, fmt.Errorf("create %s: %w", BaseDir, err)
		}
		if c.root, err = os.MkdirTemp(BaseDir, "cluster-"); err != nil {
			return nil, fmt.Errorf("create cluster directory: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(c.root, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		c.cleanup()
		return nil, fmt.Errorf("write owner pid: %w", err)
	}
	if err := c.chown(c.root); err != nil {
		c.cleanup()
		return nil, err
	}
	c.Dir = filepath.Join(c.root, "data")
	if opt.Port != 0 {
		c.Port = opt.Port
	} else if c.Port, c.portLock, err = reservePort(); err != nil {
		c.cleanup()
		return nil, err
	}
	return c, nil
}

// StartCluster initialises and starts a new cluster.
func StartCluster(ctx context.Context, opt Options) (*Cluster, error) {
	if err := CheckInstalled(); err != nil {
		return nil, err
	}
	reapStale()
	c, err := newCluster(opt)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "PG_VERSION")); err != nil {
		if out, err := c.run(ctx, filepath.Join(BinDir, "initdb"), "-D", c.Dir, "-U", "postgres",
			"--auth=trust", "-E", "UTF8", "--no-instructions", "--no-sync"); err != nil {
			c.cleanup()
			return nil, fmt.Errorf("initdb: %w: %s", err, out)
		}
	}
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", c.Port),
		fmt.Sprintf("unix_socket_directories = '%s'", c.root),
		"fsync = off", "synchronous_commit = off", "full_page_writes = off",
		"max_replication_slots = 128", "max_wal_senders = 128", "max_worker_processes = 160",
		"track_commit_timestamp = on",
		"log_min_messages = warning", "log_line_prefix = '%m [%p] '",
		"shared_buffers = 32MB",
	}
	if opt.NoPglogical {
		conf = append(conf, "wal_level = replica")
	} else {
		conf = append(conf, "wal_level = logical", "shared_preload_libraries = 'pglogical'")
	}
	conf = append(conf, opt.ExtraConf...)
	if err := os.WriteFile(filepath.Join(c.Dir, "postgresql.auto.conf"), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		c.cleanup()
		return nil, fmt.Errorf("write postgresql.auto.conf: %w", err)
	}
	if err := c.chown(filepath.Join(c.Dir, "postgresql.auto.conf")); err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		c.cleanup()
		return nil, err
	}
	return c, nil
}

// Start starts a stopped cluster on its port and waits until it accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	out, err := c.run(ctx, filepath.Join(BinDir, "pg_ctl"), "start", "-w", "-t", "60", "-D", c.Dir,
		"-l", filepath.Join(c.root, "server.log"))
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.root, "server.log"))
		return fmt.Errorf("start cluster on port %d: %w: %s\n%s", c.Port, err, out, tail(string(log), 2000))
	}
	return nil
}

// Stop stops the cluster (fast shutdown) and keeps its files.
func (c *Cluster) Stop(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.Dir, "postmaster.pid")); err != nil {
		return nil
	}
	out, err := c.run(ctx, filepath.Join(BinDir, "pg_ctl"), "stop", "-w", "-t", "30", "-m", "fast", "-D", c.Dir)
	if err != nil {
		return fmt.Errorf("stop cluster on port %d: %w: %s", c.Port, err, out)
	}
	return nil
}

// StopImmediate stops the cluster at once (immediate shutdown: the next
// start replays WAL), for a server a fast shutdown does not end, such as
// one restarting in a crash loop.
func (c *Cluster) StopImmediate(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.Dir, "postmaster.pid")); err != nil {
		return nil
	}
	out, err := c.run(ctx, filepath.Join(BinDir, "pg_ctl"), "stop", "-w", "-t", "30", "-m", "immediate", "-D", c.Dir)
	if err != nil {
		return fmt.Errorf("stop cluster on port %d at once: %w: %s", c.Port, err, out)
	}
	return nil
}

// Destroy stops the cluster and removes its files and port reservation.
func (c *Cluster) Destroy(ctx context.Context) error {
	err := c.Stop(ctx)
	if err != nil {
		// An immediate stop is better than a stray server.
		_, _ = c.run(ctx, filepath.Join(BinDir, "pg_ctl"), "stop", "-w", "-m", "immediate", "-D", c.Dir)
	}
	c.cleanup()
	return err
}

func (c *Cluster) cleanup() {
	if c.portLock != nil {
		_ = c.portLock.Close()
		_ = os.Remove(c.portLock.Name())
	}
	if strings.HasPrefix(c.root, BaseDir) {
		_ = os.RemoveAll(c.root)
	}
}

// LogPath is the server log file.
func (c *Cluster) LogPath() string { return filepath.Join(c.root, "server.log") }

// DSN returns a libpq keyword/value connection string for database db.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d dbname=%s user=postgres sslmode=disable", c.Host, c.Port, db)
}

// Connect opens a connection to database db.
func (c *Cluster) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, c.DSN(db))
}

// WaitBackendGone polls until the server process pid has ended (a session
// the server closed: idle_session_timeout, pg_terminate_backend).
func (c *Cluster) WaitBackendGone(ctx context.Context, pid uint32, timeout time.Duration) error {
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var qerr error
	if err := Poll(ctx, timeout, func() bool {
		var alive bool
		qerr = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", int32(pid)).Scan(&alive)
		return qerr != nil || !alive
	}); err != nil {
		return fmt.Errorf("server process %d: %w", pid, err)
	}
	return qerr
}

// Exec runs SQL statements in database db on a new connection.
func (c *Cluster) Exec(ctx context.Context, db, sql string, args ...any) error {
	conn, err := c.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.root
	cmd.Env = append(append(os.Environ(), "LC_ALL=C.UTF-8"), c.env...)
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("give %s to the postgres user: %w", path, err)
	}
	return nil
}

// serverCredential is the postgres user's when running as root (PostgreSQL
// refuses to run as root), nil otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("look up the postgres OS user (installed with the server package): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// reservePort finds a free loopback port and holds an exclusive lock file for
// it, so test binaries running in parallel never pick the same port.
func reservePort() (int, *os.File, error) {
	for range 200 {
		// Below the kernel's ephemeral range (32768+), where outgoing connections
		// can hold a port that looked free.
		port := 20000 + rand.IntN(12000)
		f, err := os.OpenFile(filepath.Join(BaseDir, fmt.Sprintf("port-%d.lock", port)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, nil, fmt.Errorf("create port lock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			f.Close()
			continue
		}
		l.Close()
		return port, f, nil
	}
	return 0, nil, errors.New("no free loopback port found")
}

var reapOnce sync.Once

// reapStale stops clusters left behind by test processes that died without
// cleaning up (a test binary killed by -timeout runs no cleanup). It runs
// once per process, under a lock shared by all test processes.
func reapStale() { reapOnce.Do(reapStaleLocked) }

func reapStaleLocked() {
	if err := os.MkdirAll(BaseDir, 0o1777); err != nil {
		return
	}
	lock, err := os.OpenFile(filepath.Join(BaseDir, "reap.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(BaseDir, "cluster-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid > 0 && syscall.Kill(pid, 0) == nil {
			continue
		}
		c := &Cluster{root: d, Dir: filepath.Join(d, "data")}
		c.cred, _ = serverCredential()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, _ = c.run(ctx, filepath.Join(BinDir, "pg_ctl"), "stop", "-w", "-m", "immediate", "-D", c.Dir)
		cancel()
		_ = os.RemoveAll(d)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Existing returns the cluster kept in dir (created with Options.Dir) without
// starting it.
func Existing(dir string, port int) (*Cluster, error) {
	c := &Cluster{Host: "127.0.0.1", root: dir, Dir: filepath.Join(dir, "data"), Port: port}
	var err error
	c.cred, err = serverCredential()
	return c, err
}

// Clone copies the files of a stopped cluster to a new one (opt.Dir and
// opt.Port as for StartCluster; ExtraConf is not used) and starts the copy,
// as a storage snapshot restored on another host (an RDS snapshot restore, a
// cloned volume) starts: with the same databases, pglogical nodes and
// subscriptions. The source stays stopped.
func Clone(ctx context.Context, src *Cluster, opt Options) (*Cluster, error) {
	if _, err := os.Stat(filepath.Join(src.Dir, "postmaster.pid")); err == nil {
		return nil, fmt.Errorf("clone the cluster on port %d: it is running (stop it first)", src.Port)
	}
	c, err := newCluster(opt)
	if err != nil {
		return nil, err
	}
	if out, err := c.run(ctx, "cp", "-a", src.Dir, c.Dir); err != nil {
		c.cleanup()
		return nil, fmt.Errorf("copy the cluster on port %d: %w: %s", src.Port, err, out)
	}
	if err := c.startOnOwnPort(ctx); err != nil {
		c.cleanup()
		return nil, err
	}
	return c, nil
}

// Standby starts a physical standby of the running cluster primary
// (pg_basebackup, streaming its WAL), on a port of its own: the server
// pglmon reaches through a read replica or a reader endpoint.
func Standby(ctx context.Context, primary *Cluster, opt Options) (*Cluster, error) {
	c, err := newCluster(opt)
	if err != nil {
		return nil, err
	}
	if out, err := c.run(ctx, filepath.Join(BinDir, "pg_basebackup"), "-D", c.Dir, "-h", primary.Host, "-p", strconv.Itoa(primary.Port),
		"-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		c.cleanup()
		return nil, fmt.Errorf("pg_basebackup of the cluster on port %d: %w: %s", primary.Port, err, out)
	}
	if err := c.startOnOwnPort(ctx); err != nil {
		c.cleanup()
		return nil, err
	}
	return c, nil
}

// startOnOwnPort starts a cluster copied from another (its files, with the
// other's settings) on its own port and socket.
func (c *Cluster) startOnOwnPort(ctx context.Context) error {
	auto := filepath.Join(c.Dir, "postgresql.auto.conf")
	conf, err := os.ReadFile(auto)
	if err != nil {
		return fmt.Errorf("read the copy's postgresql.auto.conf: %w", err)
	}
	// The last setting of a name wins: the copy's own port and socket.
	conf = append(conf, fmt.Sprintf("port = %d\nunix_socket_directories = '%s'\n", c.Port, c.root)...)
	if err := os.WriteFile(auto, conf, 0o600); err != nil {
		return fmt.Errorf("write the copy's postgresql.auto.conf: %w", err)
	}
	return c.Start(ctx)
}

// SaveFiles stops the cluster, copies its files (as a storage snapshot or
// a backup keeps them) and starts it again: PutBack puts that copy back.
func (c *Cluster) SaveFiles(ctx context.Context) (string, error) {
	if err := c.Stop(ctx); err != nil {
		return "", err
	}
	dir := filepath.Join(c.root, fmt.Sprintf("saved-%d", time.Now().UnixNano()))
	if out, err := c.run(ctx, "cp", "-a", c.Dir, dir); err != nil {
		return "", fmt.Errorf("copy the cluster on port %d: %w: %s", c.Port, err, out)
	}
	return dir, c.Start(ctx)
}

// PutBack stops the cluster, replaces its files with the copy SaveFiles
// made and starts it, on the same address: a server restored from a backup
// or snapshot taken then, as the clients that knew it reach it again (its
// WAL ends where it ended at the copy).
func (c *Cluster) PutBack(ctx context.Context, saved string) error {
	return c.putBack(ctx, saved, false)
}

// PutBackRecovered is PutBack through an archive recovery, as a
// point-in-time restore (or a standby's promotion) ends: the server replays
// the copy's WAL and goes on to a new timeline from where it ended
// (recovery.signal, with a restore_command that finds nothing: the WAL is
// the copy's own).
func (c *Cluster) PutBackRecovered(ctx context.Context, saved string) error {
	return c.putBack(ctx, saved, true)
}

func (c *Cluster) putBack(ctx context.Context, saved string, recover bool) error {
	if err := c.Stop(ctx); err != nil {
		return err
	}
	if out, err := c.run(ctx, "rm", "-rf", c.Dir); err != nil {
		return fmt.Errorf("remove the files of the cluster on port %d: %w: %s", c.Port, err, out)
	}
	if out, err := c.run(ctx, "cp", "-a", saved, c.Dir); err != nil {
		return fmt.Errorf("put back the files of the cluster on port %d: %w: %s", c.Port, err, out)
	}
	if recover {
		if err := os.WriteFile(filepath.Join(c.Dir, "recovery.signal"), nil, 0o600); err != nil {
			return err
		}
		if err := c.chown(filepath.Join(c.Dir, "recovery.signal")); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(c.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString("\nrestore_command = 'false'\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if err := c.Start(ctx); err != nil || !recover {
		return err
	}
	// pg_ctl returns once the server accepts connections, which a hot
	// standby does while it still replays: wait for the end of recovery
	// (the new timeline), or a write may find the server read-only.
	var last error
	if err := Poll(ctx, time.Minute, func() bool {
		var in bool
		last = c.queryRow(ctx, "postgres", "SELECT pg_is_in_recovery()", &in)
		return last == nil && !in
	}); err != nil {
		return fmt.Errorf("the cluster on port %d is still in recovery a minute after its start (last error: %v)", c.Port, last)
	}
	return nil
}

// queryRow runs one query in database db on a new connection and scans its row.
func (c *Cluster) queryRow(ctx context.Context, db, sql string, dest ...any) error {
	conn, err := c.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql).Scan(dest...)
}
