package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Without --config: PGLMON_CONFIG, else the default file when it exists.
// Not parallel: it sets the environment and defaultConfig.
func TestConfigWithoutFlag(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("nodes:\n  - name: a\n    dsn: host=127.0.0.1 port=1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	saved := defaultConfig
	t.Cleanup(func() { defaultConfig = saved })
	t.Setenv("PGLMON_CONFIG", "")

	defaultConfig = filepath.Join(dir, "absent.yaml")
	if code, _, errOut := pglmon(t, "check-config"); code != exitUsage || !strings.Contains(errOut, "--config FILE is required (or PGLMON_CONFIG; "+defaultConfig+" does not exist)") {
		t.Errorf("no configuration: exit %d\n%s", code, errOut)
	}
	defaultConfig = write("default.yaml")
	if code, out, errOut := pglmon(t, "check-config"); code != 0 || !strings.Contains(out, defaultConfig+": ok (1 nodes)") {
		t.Errorf("default file: exit %d\n%s%s", code, out, errOut)
	}
	env := write("env.yaml")
	t.Setenv("PGLMON_CONFIG", env)
	if code, out, errOut := pglmon(t, "check-config"); code != 0 || !strings.Contains(out, env+": ok (1 nodes)") {
		t.Errorf("PGLMON_CONFIG: exit %d\n%s%s", code, out, errOut)
	}
	flag := write("flag.yaml")
	if code, out, errOut := pglmon(t, "check-config", "--config", flag); code != 0 || !strings.Contains(out, flag+": ok (1 nodes)") {
		t.Errorf("--config: exit %d\n%s%s", code, out, errOut)
	}
}
