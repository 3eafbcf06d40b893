package probe

import (
	"strings"
	"testing"
)

// SafeConninfo keeps where and as whom; ClientConninfo the TLS files and
// timeouts psql needs besides. Neither ever a secret.
func TestSafeConninfo(t *testing.T) {
	for _, c := range []struct {
		name  string
		f     func(string) string
		cases map[string]string
	}{
		{"SafeConninfo", SafeConninfo, map[string]string{
			"host=10.0.0.5 port=5432 dbname=app user=repl password=s3cret":                     "host=10.0.0.5 port=5432 dbname=app user=repl",
			"  host = db.example.com  password = 's3 cr\\'et'  dbname='my db' sslmode=require": "host=db.example.com dbname='my db' sslmode=require",
			"password=s3cret host=h connect_timeout=5 application_name=x":                      "host=h",
			"postgres://repl:s3cret@db.example.com:5433/app?sslmode=verify-full&password=x2":   "host=db.example.com port=5433 dbname=app user=repl sslmode=verify-full",
			"postgresql://db.example.com/app":                                                  "host=db.example.com dbname=app",
			"host=h password='unterminated":                                                    "",
			"garbage":                                                                          "",
			"":                                                                                 "",
		}},
		{"ClientConninfo", ClientConninfo, map[string]string{
			"host=h dbname=app user=u password=s3cret sslmode=verify-full sslrootcert=/etc/pglmon/ca.pem sslpassword=x2 passfile=/root/.pgpass": "host=h dbname=app user=u sslmode=verify-full sslrootcert=/etc/pglmon/ca.pem",
			"postgres://u:s3cret@h:5433/app?sslcert=/c.pem&sslkey=/k.pem&connect_timeout=5":                                                     "host=h port=5433 dbname=app user=u sslcert=/c.pem sslkey=/k.pem connect_timeout=5",
			"garbage": "",
		}},
	} {
		for dsn, want := range c.cases {
			got := c.f(dsn)
			if got != want {
				t.Errorf("%s(%q): got %q, want %q", c.name, dsn, got, want)
			}
			for _, secret := range []string{"s3cret", "cr'et", "x2", "unterminated", ".pgpass"} {
				if strings.Contains(got, secret) {
					t.Errorf("%s(%q): %q shows a secret", c.name, dsn, got)
				}
			}
		}
	}
}

// The query variants for restricted roles and older servers leave out what
// they cannot read.
func TestQueryVariants(t *testing.T) {
	if !strings.Contains(subscriptionsQuery, "if_dsn") || strings.Contains(subscriptionsQueryNoDSN, "if_dsn") {
		t.Error("subscriptionsQueryNoDSN still reads if_dsn")
	}
	if !strings.Contains(tableSyncQuery, "pg_stat_progress_copy") || strings.Contains(tableSyncQueryPG13, "pg_stat_progress_copy") {
		t.Error("tableSyncQueryPG13 still reads pg_stat_progress_copy")
	}
	if !strings.Contains(pglogicalNodeQuery, "pglogical.queue") || strings.Contains(pglogicalNodeQueryPG13, "pglogical.queue") {
		t.Error("pglogicalNodeQueryPG13 still reads pglogical.queue (a TID range scan needs PostgreSQL 14)")
	}
}

// ProviderRole: the connection string's user where it names one (whatever
// the walsender says); else the role of the walsender streaming from the
// subscription's slot; else nothing.
func TestProviderRole(t *testing.T) {
	prov := &Snapshot{Slots: []Slot{
		{Name: "streaming", Sender: &Sender{User: "repl"}},
		{Name: "idle"},
	}}
	for _, c := range []struct {
		conninfo, slot string
		prov           *Snapshot
		want           string
	}{
		{"host=p dbname=d user=named", "streaming", prov, "named"},
		{"postgresql://uri@p/d", "streaming", prov, "uri"},
		{"host=p dbname=d", "streaming", prov, "repl"},
		{"", "streaming", prov, "repl"}, // pglmon's role may not read if_dsn
		{"", "idle", prov, ""},
		{"", "gone", prov, ""},
		{"", "streaming", nil, ""},
	} {
		sub := Subscription{ProviderConninfo: c.conninfo, SlotName: c.slot}
		if got := sub.ProviderRole(c.prov); got != c.want {
			t.Errorf("%q, slot %s: %q, want %q", c.conninfo, c.slot, got, c.want)
		}
	}
}
