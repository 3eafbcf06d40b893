package logtail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
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
	cfg := config.Default()
	var err error
	if perr := pgtest.Poll(context.Background(), 20*time.Second, func() bool {
		file, text, err = Read(context.Background(), cfg, n)
		return err == nil && strings.Contains(text, marker)
	}); perr != nil {
		t.Fatalf("log never held %s: file %q, err %v, %d bytes read", marker, file, err, len(text))
	}
	return file, text
}

func TestReadsTheLoggingCollectorsFile(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t, pgtest.Options{ExtraConf: pgtest.LogCollector})
	marker := logLine(t, c, "auto")
	file, text := readUntil(t, node(c, "postgres", ""), marker)
	if !strings.HasPrefix(file, "log/postgresql-") {
		t.Errorf("file: %q", file)
	}
	if !strings.Contains(text, "] LOG:  "+marker) {
		t.Errorf("the line as the server wrote it is not in the text:\n%s", text)
	}
	// Off: nothing is read.
	if _, _, err := Read(context.Background(), config.Default(), node(c, "postgres", "off")); !errors.Is(err, ErrOff) {
		t.Errorf("server_log off: %v", err)
	}
	// A role without the grants gets told what to grant.
	if err := c.Exec(context.Background(), "postgres", "CREATE ROLE nobody LOGIN"); err != nil {
		t.Fatal(err)
	}
	_, _, err := Read(context.Background(), config.Default(), node(c, "nobody", ""))
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
	_, _, err := Read(context.Background(), config.Default(), node(c, "postgres", ""))
	if err == nil || !strings.Contains(err.Error(), "read the server log /var/log/postgresql/postgresql-15-pglmontest.log on n: no such file on the server") {
		t.Errorf("auto without a collector: %v", err)
	}
	if _, _, err := Read(context.Background(), config.Default(), node(c, "postgres", "/nonexistent/pg.log")); err == nil || !strings.Contains(err.Error(), "/nonexistent/pg.log") {
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
