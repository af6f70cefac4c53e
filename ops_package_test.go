package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"imchannel/config"
)

// The packaged config turns scheduled backups on as the README promises,
// while the built-in defaults (`go run . serve`) keep them off.
func TestOpsPackagedConfig(t *testing.T) {
	cfg, err := config.Load("packaging/imchannel.toml")
	require.NoError(t, err)
	require.Equal(t, config.Backup{Dir: "/var/lib/imchannel/backups", Interval: config.Duration{Duration: time.Hour}, Keep: 48}, cfg.Backup)
	require.Equal(t, "/var/lib/imchannel/imchannel.db", cfg.DB)
	require.NoError(t, cfg.CheckExposure(), "it starts as installed")
	require.Empty(t, config.Default().Backup.Dir, "go run . serve writes no backups")
}

// An override file laid over the packaged config (what the package test
// does) changes the keys it names and nothing else.
func TestOpsConfigOverride(t *testing.T) {
	dir := t.TempDir()
	over := filepath.Join(dir, "override.toml")
	require.NoError(t, os.WriteFile(over, []byte("db = \"/tmp/x.db\"\n[backup]\ninterval = \"2s\"\n"), 0o600))
	cfg, err := config.Load("packaging/imchannel.toml", over)
	require.NoError(t, err)
	require.Equal(t, "/tmp/x.db", cfg.DB)
	require.Equal(t, config.Backup{Dir: "/var/lib/imchannel/backups", Interval: config.Duration{Duration: 2 * time.Second}, Keep: 48}, cfg.Backup)
	require.Equal(t, "127.0.0.1:8080", cfg.Addr)

	// Agents in a later file replace the earlier list whole.
	a := filepath.Join(dir, "a.toml")
	b := filepath.Join(dir, "b.toml")
	require.NoError(t, os.WriteFile(a, []byte("[[agents]]\nuser = \"alice\"\npassword = \"pw-a\"\n[[agents]]\nuser = \"bob\"\npassword = \"pw-b\"\n"), 0o600))
	require.NoError(t, os.WriteFile(b, []byte("[[agents]]\nuser = \"carol\"\npassword = \"pw-c\"\n"), 0o600))
	cfg, err = config.Load(a, b)
	require.NoError(t, err)
	require.Equal(t, []config.Agent{{User: "carol", Password: "pw-c"}}, cfg.Agents)

	// A typo in the override is refused and named.
	require.NoError(t, os.WriteFile(over, []byte("[backup]\nintervall = \"2s\"\n"), 0o600))
	_, err = config.Load("packaging/imchannel.toml", over)
	require.ErrorContains(t, err, "override.toml: unknown keys: backup.intervall")
}

// Everything nfpm packs exists, the binary lands where the unit runs it,
// and the config is a conffile of mode 0600.
func TestOpsPackageManifest(t *testing.T) {
	raw, err := os.ReadFile("packaging/nfpm.yaml")
	require.NoError(t, err)
	var m struct {
		Contents []struct {
			Src      string `yaml:"src"`
			Dst      string `yaml:"dst"`
			Type     string `yaml:"type"`
			FileInfo struct {
				Mode int `yaml:"mode"`
			} `yaml:"file_info"`
		} `yaml:"contents"`
		Scripts map[string]string `yaml:"scripts"`
	}
	require.NoError(t, yaml.NewDecoder(bytes.NewReader(raw)).Decode(&m))
	dst := map[string]string{}
	for _, c := range m.Contents {
		dst[c.Dst] = c.Src
		if c.Src != "" && c.Src != "./dist/imchannel" {
			_, err := os.Stat(c.Src)
			require.NoError(t, err, "packed file")
		}
		if c.Dst == "/etc/imchannel/imchannel.toml" {
			require.Equal(t, "config|noreplace", c.Type)
			require.Equal(t, 0o600, c.FileInfo.Mode)
		}
	}
	require.Equal(t, "./dist/imchannel", dst["/usr/bin/imchannel"])
	require.Equal(t, "./deploy/imchannel.service", dst["/usr/lib/systemd/system/imchannel.service"])
	require.Equal(t, "./packaging/imchannel.toml", dst["/etc/imchannel/imchannel.toml"])
	for _, k := range []string{"preinstall", "postinstall", "preremove", "postremove"} {
		fi, err := os.Stat(m.Scripts[k])
		require.NoError(t, err, k)
		require.NotZero(t, fi.Mode()&0o100, "%s is executable", k)
	}
}

// Every shell script the repository runs parses: a broken .ci/run (a
// misplaced edit once left an unclosed backquote) fails every CI run
// before a single test, and a broken maintainer script fails the install.
// /bin/sh scripts are parsed by dash where it is installed, as Debian
// runs them.
func TestOpsShellScriptsParse(t *testing.T) {
	out, err := exec.Command("git", "ls-files").Output()
	if err != nil {
		t.Skipf("git ls-files: %v", err)
	}
	var n int
	for _, f := range strings.Fields(string(out)) {
		raw, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(raw, []byte("#!")) {
			continue
		}
		first, _, _ := bytes.Cut(raw, []byte("\n"))
		shell := ""
		switch {
		case bytes.HasSuffix(first, []byte("bash")):
			shell = "bash"
		case bytes.HasSuffix(first, []byte("/sh")):
			shell = "sh"
			if _, err := exec.LookPath("dash"); err == nil {
				shell = "dash"
			}
		default:
			continue
		}
		n++
		msg, err := exec.Command(shell, "-n", f).CombinedOutput()
		require.NoError(t, err, "%s -n %s: %s", shell, f, msg)
	}
	require.GreaterOrEqual(t, n, 5, "found the scripts (.ci/run, scripts/, packaging/scripts/)")
}
