package config

import (
	"strings"
	"testing"
	"time"
)

// TestRelayTargets: [[relay]] entries get their defaults, a name without
// the URL's credentials, and anything unusable stops the service at start,
// naming the key.
func TestRelayTargets(t *testing.T) {
	cases := []struct {
		name string
		toml string
		says string // "" when valid
	}{
		{"minimal", "[[relay]]\nurl = \"https://ct.example/imchanne/message\"\n", ""},
		{"json with hmac", "[[relay]]\nurl = \"http://ct/x\"\nformat = \"json\"\nhmac_secret = \"s\"\n", ""},
		{"two targets", "[[relay]]\nurl = \"http://a/x\"\n[[relay]]\nurl = \"http://b/x\"\n", ""},
		{"no url", "[[relay]]\nformat = \"json\"\n", "relay[0].url"},
		{"not http", "[[relay]]\nurl = \"ftp://ct/x\"\n", "relay[0].url"},
		{"bad format", "[[relay]]\nurl = \"http://ct/x\"\nformat = \"xml\"\n", "relay[0].format"},
		{"half basic", "[[relay]]\nurl = \"http://ct/x\"\nbasic_user = \"u\"\n", "basic_user and basic_password"},
		{"same name twice", "[[relay]]\nurl = \"http://ct/x\"\n[[relay]]\nurl = \"http://ct/x\"\n", "used twice"},
		{"negative timeout", "[[relay]]\nurl = \"http://ct/x\"\ntimeout = \"-1s\"\n", "timeout"},
		{"short events retention", "[events]\nretention = \"30m\"\n", "events.retention"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			if err := Parse([]byte(c.toml), &cfg); err != nil {
				t.Fatalf("parse: %v", err)
			}
			err := cfg.Validate()
			switch {
			case c.says == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.says != "" && err == nil:
				t.Fatal("accepted")
			case c.says != "" && !strings.Contains(err.Error(), c.says):
				t.Fatalf("error %q does not name %q", err, c.says)
			}
		})
	}

	cfg := Default()
	if err := Parse([]byte("[[relay]]\nurl = \"https://ct:secret@ct.example/imchanne/message\"\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	r := cfg.Relay[0]
	if r.Name != "https://ct.example/imchanne/message" {
		t.Fatalf("name %q: the URL's credentials must not be in it", r.Name)
	}
	if r.Format != "infobip" || r.Timeout.Duration != 10*time.Second || r.MaxBackoff.Duration != time.Minute {
		t.Fatalf("defaults not applied: %+v", r)
	}
}
