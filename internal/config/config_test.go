package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(cfg.Nodes), 2; got != want {
		t.Fatalf("nodes: got %d, want %d", got, want)
	}
	if got, want := cfg.Thresholds.LagBytes, ByteSize(256<<20); got != want {
		t.Errorf("lag_bytes: got %d, want %d", got, want)
	}
	if got, want := cfg.Thresholds.TableSyncGrace.D(), 30*time.Minute; got != want {
		t.Errorf("table_sync_grace: got %s, want %s", got, want)
	}
	if got, want := cfg.Repair.Policy["enable"], "approve"; got != want {
		t.Errorf("policy enable: got %q, want %q", got, want)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("min.yaml", []byte("nodes:\n  - name: a\n    dsn: host=x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Probe.Interval.D(), 10*time.Second; got != want {
		t.Errorf("interval: got %s, want %s", got, want)
	}
	if got, want := cfg.HTTP.Listen, DefaultListen; got != want {
		t.Errorf("listen: got %s, want %s", got, want)
	}
}

func TestErrorsNamePlace(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "nodes:\n  - name: a\n    dsn: host=x\n    passwrd: x\n", "bad.yaml:4:5: nodes[0].passwrd: unknown key"},
		{"unknown top key", "nodes:\n  - name: a\n    dsn: host=x\nprobes:\n  interval: 1s\n", "bad.yaml:4:1: probes: unknown key"},
		{"bad duration", "nodes:\n  - name: a\n    dsn: host=x\nprobe:\n  interval: 10 seconds\n", "bad.yaml:5:13: invalid duration \"10 seconds\""},
		{"bad size", "nodes:\n  - name: a\n    dsn: host=x\nthresholds:\n  lag_bytes: lots\n", "bad.yaml:5:14: invalid size \"lots\""},
		{"password in kv dsn", "nodes:\n  - name: a\n    dsn: host=x password=hunter2\n", "bad.yaml:3:10: nodes[0].dsn: the dsn holds a password; remove it and use `password:"},
		{"password in url dsn", "nodes:\n  - name: a\n    dsn: postgres://u:hunter2@x/db\n", "bad.yaml:3:10: nodes[0].dsn: the dsn holds a password"},
		{"no nodes", "probe:\n  interval: 1s\n", "bad.yaml: nodes: at least one node is needed"},
		{"duplicate node", "nodes:\n  - name: a\n    dsn: host=x\n  - name: a\n    dsn: host=y\n", "bad.yaml:4:11: nodes[1].name: node \"a\" is defined twice"},
		{"bad policy", "nodes:\n  - name: a\n    dsn: host=x\nrepair:\n  policy:\n    restart: always\n", "bad.yaml:6:14: repair.policy.restart: policy \"always\" must be auto, approve or off"},
		{"timeout over interval", "nodes:\n  - name: a\n    dsn: host=x\nprobe:\n  interval: 1s\n  timeout: 2s\n", "bad.yaml:6:12: probe.timeout: must not be longer than probe.interval"},
		{"wrong type", "nodes: 3\n", "bad.yaml:1:8: nodes: must be a list"},
		{"both password sources", "nodes:\n  - name: a\n    dsn: host=x\n    password: {env: A, file: /b}\n", "bad.yaml:4:15: nodes[0].password: set exactly one of env or file"},
		{"syntax", "nodes: [\n", "bad.yaml: "},
		{"subscription to unknown node", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nreplication_sets:\n  - name: s\n    node: a\n    tables: [t]\nsubscriptions:\n  - name: x\n    subscriber: b\n    provider: a\n    replication_sets: [s]\n", "bad.yaml:11:17: subscriptions[0].subscriber: node \"b\" is not configured"},
		{"set on another node", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\n  - name: b\n    dsn: host=y\n    pglogical_name: b\nreplication_sets:\n  - name: s\n    node: a\n    tables: [t]\nsubscriptions:\n  - name: x\n    subscriber: a\n    provider: b\n    replication_sets: [s]\n", "subscriptions[0].replication_sets: replication set \"s\" is not defined on provider b"},
		{"topology without pglogical_name", "nodes:\n  - name: a\n    dsn: host=x\nreplication_sets:\n  - name: s\n    node: a\n    tables: [t]\n", "replication_sets[0].node: node \"a\" needs pglogical_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("got no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %q", err)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %T, want Errors", err)
			}
		})
	}
}

func TestResolvePassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGLMON_TEST_PW", "from-env")
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	for _, tc := range []struct {
		name string
		src  *PasswordSource
		want string
		err  string
	}{
		{"none", nil, "", ""},
		{"env", &PasswordSource{Env: "PGLMON_TEST_PW"}, "from-env", ""},
		{"file", &PasswordSource{File: file}, "s3cret", ""},
		{"missing env", &PasswordSource{Env: "PGLMON_NOT_SET_X"}, "", "PGLMON_NOT_SET_X (password.env) is not set"},
		{"systemd credential", &PasswordSource{File: "${CREDENTIALS_DIRECTORY}/pw"}, "s3cret", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Node{Name: "n", Password: tc.src}.ResolvePassword()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Reveal() != tc.want {
				t.Fatalf("got %q, want %q", got.Reveal(), tc.want)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %#v", s, s, s)} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %q", out)
		}
	}
	b, _ := s.MarshalJSON()
	if strings.Contains(string(b), "hunter2") {
		t.Fatal("secret in JSON")
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"256MiB": 256 << 20, "10GiB": 10 << 30, "1GB": 1e9, "1234": 1234, "1.5KiB": 1536} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("%s: got %d, %v, want %d", in, got, err, want)
		}
	}
}
