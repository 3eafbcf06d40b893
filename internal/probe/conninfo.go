package probe

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// conninfoKept are the connection-string keywords SafeConninfo keeps: where
// and as whom a connection goes, nothing secret.
var conninfoKept = []string{"host", "hostaddr", "port", "dbname", "user", "sslmode"}

// SafeConninfo returns, of a libpq connection string (keyword/value or
// URI), only where and as whom it connects ("host=... port=... dbname=...
// user=... sslmode=..."): never its password or any other keyword. "" when
// it cannot be read; its text never appears in an error.
func SafeConninfo(dsn string) string { return keepConninfo(dsn, conninfoKept) }

// clientConninfoKept adds to conninfoKept what a client such as psql needs
// to connect as pglmon does: the TLS files and timeouts, still no secret
// (sslpassword and passfile are left out with the password).
var clientConninfoKept = append(slices.Clone(conninfoKept), "sslrootcert", "sslcert", "sslkey", "sslcrl",
	"sslcompression", "sslsni", "connect_timeout", "target_session_attrs", "gssencmode", "krbsrvname")

// ClientConninfo returns what SafeConninfo does and the TLS files and
// timeouts besides: a connection string for psql, which asks for the
// password (or reads ~/.pgpass). "" when it cannot be read.
func ClientConninfo(dsn string) string { return keepConninfo(dsn, clientConninfoKept) }

func keepConninfo(dsn string, kept []string) string {
	vals, ok := parseConninfo(dsn)
	if !ok {
		return ""
	}
	var parts []string
	for _, k := range kept {
		if v, found := vals[k]; found && v != "" {
			if strings.ContainsAny(v, ` '\`) {
				v = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
			}
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

func parseConninfo(dsn string) (map[string]string, bool) {
	vals := map[string]string{}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, false
		}
		vals["host"], vals["port"] = u.Hostname(), u.Port()
		vals["dbname"] = strings.TrimPrefix(u.Path, "/")
		if u.User != nil {
			vals["user"] = u.User.Username()
		}
		for k, v := range u.Query() {
			if len(v) > 0 && k != "password" {
				vals[k] = v[0]
			}
		}
		return vals, true
	}
	s := dsn
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			return vals, true
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, false
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t\n\r")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for len(s) > 0 {
				c := s[0]
				s = s[1:]
				if c == '\\' && len(s) > 0 {
					val.WriteByte(s[0])
					s = s[1:]
					continue
				}
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, false
			}
		} else {
			for len(s) > 0 && !strings.ContainsRune(" \t\n\r", rune(s[0])) {
				c := s[0]
				s = s[1:]
				if c == '\\' && len(s) > 0 {
					c = s[0]
					s = s[1:]
				}
				val.WriteByte(c)
			}
		}
		vals[key] = val.String()
	}
}

// ConninfoUser is the role a libpq connection string connects as ("" when
// it names none, or cannot be read).
func ConninfoUser(dsn string) string {
	vals, _ := parseConninfo(dsn)
	return vals["user"]
}

// StreamingRole is the role of the walsender streaming from slot on
// provider: for a pglogical subscription, the role its provider
// connection connects as (Subscription.ProviderRole reads it from a
// Snapshot). "" when none streams from it.
func StreamingRole(ctx context.Context, provider *pgx.Conn, slot string) (string, error) {
	var role string
	err := provider.QueryRow(ctx, `SELECT coalesce(r.usename::text, '') FROM pg_replication_slots s
JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1`, slot).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return role, err
}
