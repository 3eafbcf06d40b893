package preflight

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/maintenance"
	"github.com/pglmon/pglmon/internal/tlstest"
)

// The daemon's HTTP server: what would stop it starting is an error, a
// certificate near its end or an open listener without a token a warning.
func TestHTTPChecks(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "test")
	issue := func(name string, notAfter time.Time) (string, string) {
		c, k := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		ca.Server(t, name, notAfter, c, k)
		return c, k
	}
	goodC, goodK := issue("good", time.Now().Add(60*24*time.Hour))
	soonC, soonK := issue("soon", time.Now().Add(5*24*time.Hour))
	pastC, pastK := issue("past", time.Now().Add(-time.Minute))
	t.Setenv("PGLMON_TEST_HTTP_TOKEN", "tok-3b1f")
	for _, c := range []struct {
		name, http string
		want       []string // check: level, and what its detail holds
	}{
		{"loopback, plain", `listen: "127.0.0.1:9198"`, nil},
		{"open without token", `listen: ":9198"`, []string{"bearer token: warn: http.listen :9198 is reachable from other hosts"}},
		{"open with token", "listen: \":9198\"\n  bearer_token: {env: PGLMON_TEST_HTTP_TOKEN}", []string{"bearer token: ok: readable"}},
		{"token not set", "listen: \":9198\"\n  bearer_token: {env: PGLMON_TEST_NO_SUCH}", []string{"bearer token: error: http.bearer_token: environment variable PGLMON_TEST_NO_SUCH"}},
		{"good certificate", fmt.Sprintf("tls: {cert_file: %s, key_file: %s}", goodC, goodK), []string{"tls certificate: ok: CN=good, issued by CN=test, for localhost, 127.0.0.1, expires"}},
		{"expires soon", fmt.Sprintf("tls: {cert_file: %s, key_file: %s}", soonC, soonK), []string{"tls certificate: warn: CN=soon", "expires in 5 days"}},
		{"expired", fmt.Sprintf("tls: {cert_file: %s, key_file: %s}", pastC, pastK), []string{"tls certificate: error: CN=past", "expired"}},
		{"key of another", fmt.Sprintf("tls: {cert_file: %s, key_file: %s}", goodC, soonK), []string{"tls certificate: error: http.tls: cert_file", "the daemon will not start"}},
		{"client ca", fmt.Sprintf("tls: {cert_file: %s, key_file: %s, client_ca_file: %s}", goodC, goodK, ca.File), []string{"tls client ca: ok: clients must present", "tls certificate: ok"}},
		{"client ca missing", fmt.Sprintf("tls: {cert_file: %s, key_file: %s, client_ca_file: %s/none.pem}", goodC, goodK, dir), []string{"tls client ca: error: http.tls.client_ca_file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse("t.yaml", []byte("nodes:\n  - name: a\n    dsn: host=x\nhttp:\n  "+c.http+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ch := range httpChecks(cfg) {
				got = append(got, fmt.Sprintf("%s: %s: %s", ch.Check, ch.Level, ch.Detail))
			}
			all := strings.Join(got, "\n")
			if len(c.want) == 0 && len(got) != 0 {
				t.Errorf("checks: %s", all)
			}
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("no %q in:\n%s", w, all)
				}
			}
			if strings.Contains(all, "tok-3b1f") {
				t.Error("the token is in a check")
			}
		})
	}
}

// A window in force is a warning (automation is off for the node); a file
// that cannot be read is one too.
func TestMaintenanceChecks(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("t.yaml", []byte("nodes:\n  - name: a\n    dsn: host=x\nrepair:\n  audit_log: "+dir+"/audit.jsonl\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if got := maintenanceChecks(cfg, now); len(got) != 0 {
		t.Errorf("no file: %+v", got)
	}
	if _, err := maintenance.Update(cfg.MaintenanceFile(), now, func(ws []maintenance.Window) ([]maintenance.Window, error) {
		return append(ws, maintenance.Window{Node: "a", Since: now, Until: now.Add(time.Hour), Reason: "upgrade", By: "u@h"}), nil
	}); err != nil {
		t.Fatal(err)
	}
	got := maintenanceChecks(cfg, now)
	if len(got) != 1 || got[0].Level != Warn || !strings.Contains(got[0].Detail, "a is under maintenance until") || !strings.Contains(got[0].Detail, "upgrade") {
		t.Errorf("a window: %+v", got)
	}
	if got := maintenanceChecks(cfg, now.Add(2*time.Hour)); len(got) != 0 {
		t.Errorf("an expired window: %+v", got)
	}
	if err := os.WriteFile(cfg.MaintenanceFile(), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := maintenanceChecks(cfg, now); len(got) != 1 || got[0].Level != Warn || !strings.Contains(got[0].Detail, "maintenance.json") {
		t.Errorf("a broken file: %+v", got)
	}
}
