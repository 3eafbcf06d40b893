// Package upgrade takes pglogical apart around a major-version upgrade of
// one node (the RDS pre-check refuses while any logical replication slot exists) and
// puts it back afterwards without copying data again. Everything it drops is
// first written to a manifest; every step can be re-run after a crash.
package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"regexp"
	"time"

	"github.com/pglmon/pglmon/internal/atomicfile"
)

// Manifest is what prepare dropped, enough to re-create it.
type Manifest struct {
	Version int       `json:"version"`
	Node    string    `json:"node"` // the configured node being upgraded
	Created time.Time `json:"created"`
	// Nodes are the pglogical nodes dropped (the upgraded node's own).
	Nodes []NodeDef `json:"nodes"`
	// Sets are the upgraded node's replication sets, when it is a provider.
	Sets []SetDef `json:"replication_sets"`
	// Subscriptions dropped: those of the node, and those of other nodes it provides.
	Subscriptions []SubDef `json:"subscriptions"`
	// Slots are the replication slots found on the node before dropping.
	Slots []SlotDef `json:"slots"`
	// AuditID is prepare's attempt in the audit log, continued by a re-run.
	AuditID string `json:"audit_id,omitempty"`
	// Snapshot is the RDS snapshot prepare --snapshot took before dropping.
	Snapshot *SnapshotDef `json:"snapshot,omitempty"`
}

// SnapshotDef is an RDS DB snapshot.
type SnapshotDef struct {
	Instance   string `json:"instance"`
	Region     string `json:"region"`
	Identifier string `json:"identifier"`
	Available  bool   `json:"available"`
}

// NodeDef is a pglogical node.
type NodeDef struct {
	ConfigNode string `json:"config_node"`
	Name       string `json:"name"`
	// DSN is the node interface's connection string without its password.
	DSN             string `json:"dsn"`
	PasswordRemoved bool   `json:"password_removed,omitempty"`
}

// SetDef is a replication set and its tables.
type SetDef struct {
	ConfigNode string   `json:"config_node"`
	Name       string   `json:"name"`
	Insert     bool     `json:"replicate_insert"`
	Update     bool     `json:"replicate_update"`
	Delete     bool     `json:"replicate_delete"`
	Truncate   bool     `json:"replicate_truncate"`
	Tables     []string `json:"tables"`
	// Columns and RowFilters are, for the tables added with one, the
	// column list and the row filter (as pg_get_expr writes it) they were
	// added with; Sequences are the set's sequences. Absent from the
	// manifests of pglmon before 2026-12-05, which restore as before.
	Columns    map[string][]string `json:"columns,omitempty"`
	RowFilters map[string]string   `json:"row_filters,omitempty"`
	Sequences  []string            `json:"sequences,omitempty"`
}

// SubDef is a subscription and its options.
type SubDef struct {
	Subscriber      string   `json:"subscriber"` // configured node
	Provider        string   `json:"provider"`   // configured node
	Name            string   `json:"name"`
	ProviderDSN     string   `json:"provider_dsn"`
	PasswordRemoved bool     `json:"password_removed,omitempty"`
	Sets            []string `json:"replication_sets"`
	ForwardOrigins  []string `json:"forward_origins"`
	ApplyDelay      string   `json:"apply_delay"`
	Enabled         bool     `json:"enabled"`
	SlotName        string   `json:"slot_name"`
	OriginRemoteLSN string   `json:"origin_remote_lsn"`
}

// SlotDef is a replication slot.
type SlotDef struct {
	Name              string `json:"name"`
	Plugin            string `json:"plugin"`
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn"`
}

var kvPassword = regexp.MustCompile(`(^|\s)password\s*=\s*('(\\'|[^'])*'|\S+)`)

// StripPassword removes a password from a libpq connection string.
func StripPassword(dsn string) (string, bool) {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		removed := false
		if _, ok := u.User.Password(); ok {
			u.User = url.User(u.User.Username())
			removed = true
		}
		q := u.Query()
		if q.Has("password") {
			q.Del("password")
			u.RawQuery = q.Encode()
			removed = true
		}
		return u.String(), removed
	}
	out := kvPassword.ReplaceAllString(dsn, "$1")
	return out, out != dsn
}

// Write stores the manifest atomically: a crash leaves the old file or the new one.
func (m *Manifest) Write(path string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600, nil); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// ReadManifest loads a manifest; ok is false when the file does not exist.
func ReadManifest(path string) (*Manifest, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, false, fmt.Errorf("manifest %s: %w", path, err)
	}
	if m.Version != 1 {
		return nil, false, fmt.Errorf("manifest %s: version %d is not supported", path, m.Version)
	}
	return &m, true, nil
}
