package config

import (
	"testing"
)

// TestValidateHalfCredentials: a route group with half its credentials
// configured is refused, not silently left open.
func TestValidateHalfCredentials(t *testing.T) {
	cases := []struct {
		name string
		toml string
		ok   bool
	}{
		{"no credentials (open, loopback only)", "", true},
		{"inbound pair", "[inbound]\nbasic_user = \"ctlive\"\nbasic_password = \"pw\"\n", true},
		{"inbound user only", "[inbound]\nbasic_user = \"ctlive\"\n", false},
		{"inbound password only", "[inbound]\nbasic_password = \"pw\"\n", false},
		{"api bearer only", "[api]\nbearer_token = \"tok\"\n", true},
		{"api key and secret", "[api]\napp_key = \"k\"\napp_secret = \"s\"\n", true},
		{"api bearer and x-app-key", "[api]\nbearer_token = \"tok\"\napp_key = \"k\"\n", true},
		{"api key only", "[api]\napp_key = \"k\"\n", false},
		{"api secret only", "[api]\napp_secret = \"s\"\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			if err := Parse([]byte(c.toml), &cfg); err != nil {
				t.Fatalf("parse: %v", err)
			}
			err := cfg.Validate()
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && err == nil {
				t.Fatal("accepted half a credential; that route group would be open")
			}
		})
	}
}

// TestValidateWebAndNumbers: a zone or region the service cannot use stops
// it at start, naming the key.
func TestValidateWebAndNumbers(t *testing.T) {
	cases := []struct {
		name string
		toml string
		ok   bool
	}{
		{"defaults", "", true},
		{"a zone", "[web]\ntimezone = \"Europe/Berlin\"\n", true},
		{"no such zone", "[web]\ntimezone = \"Mars/Olympus\"\n", false},
		{"empty zone", "[web]\ntimezone = \"\"\n", false},
		{"a region", "[numbers]\ndefault_region = \"DE\"\n", true},
		{"lower case region", "[numbers]\ndefault_region = \"de\"\n", false},
		{"not a region", "[numbers]\ndefault_region = \"XX\"\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			if err := Parse([]byte(c.toml), &cfg); err != nil {
				t.Fatalf("parse: %v", err)
			}
			if err := cfg.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, c.ok)
			}
		})
	}
}
