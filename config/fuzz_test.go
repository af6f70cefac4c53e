package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the config loader (Parse over the
// defaults, then Validate and CheckExposure): whatever the file holds, the
// loader answers with a config or an error, never a panic. Seeded from
// testdata/*.toml and the repository's example configs.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/*.toml", "../deploy/*.toml", "../*.toml"} {
		files, _ := filepath.Glob(pattern)
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(""))
	f.Add([]byte("addr = \"0.0.0.0:80\"\n[limits]\nread_timeout = \"-1s\"\n"))
	f.Add([]byte("[[agents]]\nuser = \"\"\n"))
	f.Add([]byte("[provider]\nurl = \"%zz\"\nrate_per_second = -1e309\n"))
	f.Add([]byte("unknown = 1\n[api]\ntoken_ttl = \"9999999999h\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg := Default()
		if err := Parse(b, &cfg); err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			return
		}
		_ = cfg.CheckExposure()
		_ = cfg.HasAgents() || cfg.HasAPIAuth() || cfg.HasInboundAuth()
	})
}

// TestFuzzSeedValid keeps the main seed useful: a file setting every key
// must load, so the fuzzer starts from inputs that reach Validate.
func TestFuzzSeedValid(t *testing.T) {
	b, err := os.ReadFile("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	if err := Parse(b, &cfg); err != nil {
		t.Fatalf("parse: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
}
