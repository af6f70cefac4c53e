// Package config loads imchannel's TOML configuration. Every key has a
// default (Default), so the service runs with no file at all.
package config

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
	// Validate loads web.timezone; hosts without tzdata still know zones.
	_ "time/tzdata"

	"github.com/BurntSushi/toml"
	"github.com/nyaruka/phonenumbers"
)

// Duration is a TOML string like "30s" or "24h".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	d.Duration = v
	return nil
}

// MarshalText prints the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the whole file. docs/configuration.md lists every key.
type Config struct {
	Addr      string `toml:"addr"`
	DB        string `toml:"db"`
	PublicURL string `toml:"public_url"`
	// KeyFile holds the secret key for keyed hashes (erasure audit, token
	// fingerprints); "" means beside the database, db + ".key".
	KeyFile string `toml:"key_file"`

	Log       Log       `toml:"log"`
	Limits    Limits    `toml:"limits"`
	Inbound   Inbound   `toml:"inbound"`
	API       API       `toml:"api"`
	Agents    []Agent   `toml:"agents"`
	Provider  Provider  `toml:"provider"`
	Outbox    Outbox    `toml:"outbox"`
	Media     Media     `toml:"media"`
	Welcome   Welcome   `toml:"welcome"`
	Backup    Backup    `toml:"backup"`
	Retention Retention `toml:"retention"`
	Web       Web       `toml:"web"`
	Events    Events    `toml:"events"`
	Relay     []Relay   `toml:"relay"`
	Numbers   Numbers   `toml:"numbers"`
}

// Events tunes the events log behind GET /api/v1/events and the relay.
type Events struct {
	Retention Duration `toml:"retention"` // events older than this are purged
}

// Relay is one push target: every event of the log, posted in order.
type Relay struct {
	// Name keys the target's durable cursor; it defaults to the URL, so
	// set it before moving a target to another URL.
	Name          string   `toml:"name"`
	URL           string   `toml:"url"`
	Format        string   `toml:"format"` // infobip (docs/protocols.md#infobip-inbound) or json
	BasicUser     string   `toml:"basic_user"`
	BasicPassword string   `toml:"basic_password"`
	HMACSecret    string   `toml:"hmac_secret"`
	Timeout       Duration `toml:"timeout"`     // per post
	MaxBackoff    Duration `toml:"max_backoff"` // retry backoff doubles from 1s (or this, if less) up to this
}

// RelayDefaults are the values a [[relay]] entry gets for keys it leaves out.
func RelayDefaults() Relay {
	return Relay{Format: "infobip", Timeout: Duration{10 * time.Second}, MaxBackoff: Duration{time.Minute}}
}

// Log chooses the log format and level.
type Log struct {
	Format string `toml:"format"` // text or json
	Level  string `toml:"level"`  // debug info warn error
}

// Limits bound requests.
type Limits struct {
	BodyBytes      int64    `toml:"body_bytes"`     // webhook and API bodies
	TemplateBytes  int64    `toml:"template_bytes"` // template posts carry base64 headers
	ReadTimeout    Duration `toml:"read_timeout"`
	WriteTimeout   Duration `toml:"write_timeout"`
	IdleTimeout    Duration `toml:"idle_timeout"`
	HeaderTimeout  Duration `toml:"read_header_timeout"`
	MaxHeaderBytes int      `toml:"max_header_bytes"`
	// MemoryBytes is the Go runtime's soft memory limit (GOMEMLIMIT); 0
	// leaves it unset.
	MemoryBytes int64 `toml:"memory_bytes"`
}

// Inbound is what providers present on the webhooks.
type Inbound struct {
	BasicUser     string `toml:"basic_user"`
	BasicPassword string `toml:"basic_password"`
}

// API is what CTLive presents on the send API.
type API struct {
	BearerToken string   `toml:"bearer_token"`
	AppKey      string   `toml:"app_key"`
	AppSecret   string   `toml:"app_secret"`
	TokenTTL    Duration `toml:"token_ttl"` // tokens issued by tokenByAkSk, at most 1h
}

// Agent is a login for the status page and /api/v1.
type Agent struct {
	User     string `toml:"user"`
	Password string `toml:"password"`
}

// Provider is where outbound messages go.
type Provider struct {
	Kind          string `toml:"kind"` // infobip or cm
	URL           string `toml:"url"`
	BasicUser     string `toml:"basic_user"`
	BasicPassword string `toml:"basic_password"`
	ScenarioKey   string `toml:"scenario_key"`
	ProductToken  string `toml:"product_token"`
	From          string `toml:"from"`
	// Namespace is the WhatsApp template namespace CM templates carry
	// (cm only; left out when empty).
	Namespace     string   `toml:"namespace"`
	Timeout       Duration `toml:"timeout"`
	RatePerSecond float64  `toml:"rate_per_second"`
	// DefaultNumber is the business number outbound messages come from when
	// the scenarioKey is not in Numbers.
	DefaultNumber string `toml:"default_number"`
	// Numbers maps a scenarioKey to its business number.
	Numbers map[string]string `toml:"numbers"`
	// MediaHosts are origins ("https://host[:port]" or a host name) besides
	// url's own that serve the provider's media and may receive its login.
	MediaHosts []string `toml:"media_hosts"`
}

// Outbox tunes delivery.
type Outbox struct {
	Workers     int      `toml:"workers"`
	MaxBackoff  Duration `toml:"max_backoff"`
	MinBackoff  Duration `toml:"min_backoff"`
	Deadline    Duration `toml:"deadline"`     // give up and mark failed after this long
	Window      Duration `toml:"window"`       // customer-service window for free-form text
	CheckWindow bool     `toml:"check_window"` // refuse free-form text outside Window
}

// Media tunes the fetcher.
type Media struct {
	MaxBytes          int64    `toml:"max_bytes"`
	AllowPrivateHosts bool     `toml:"allow_private_hosts"`
	Workers           int      `toml:"workers"`
	ConnectTimeout    Duration `toml:"connect_timeout"`
	FetchTimeout      Duration `toml:"fetch_timeout"`
	RetryFor          Duration `toml:"retry_for"` // give up retrying after this long
	MinBackoff        Duration `toml:"min_backoff"`
	MaxBackoff        Duration `toml:"max_backoff"`
	DeleteAtProvider  bool     `toml:"delete_at_provider"`
}

// Welcome is the text queued once per customer on a CM request_welcome.
type Welcome struct {
	Text string `toml:"text"`
}

// Backup schedules copies of the database.
type Backup struct {
	Dir      string   `toml:"dir"`
	Interval Duration `toml:"interval"`
	Keep     int      `toml:"keep"`
}

// Retention purges old messages.
type Retention struct {
	Days int `toml:"days"`
}

// Web tunes the agents' pages.
type Web struct {
	// Timezone is the IANA zone whose day "messages today" counts.
	Timezone string `toml:"timezone"`
}

// Numbers says how phone numbers typed by agents are read.
type Numbers struct {
	// DefaultRegion is the ISO 3166 region ("DE") national-format numbers
	// ("0170 1234567") are read in; empty: digits only.
	DefaultRegion string `toml:"default_region"`
}

// Default is the embedded configuration `go run . serve` starts with.
func Default() Config {
	return Config{
		Addr:      "127.0.0.1:8080",
		DB:        "imchannel.db",
		PublicURL: "http://127.0.0.1:8080",
		Log:       Log{Format: "text", Level: "info"},
		Limits: Limits{
			BodyBytes:      1 << 20,
			TemplateBytes:  24 << 20,
			ReadTimeout:    Duration{30 * time.Second},
			WriteTimeout:   Duration{60 * time.Second},
			IdleTimeout:    Duration{120 * time.Second},
			HeaderTimeout:  Duration{10 * time.Second},
			MaxHeaderBytes: 64 << 10,
			MemoryBytes:    512 << 20,
		},
		API: API{TokenTTL: Duration{time.Hour}},
		Provider: Provider{
			Kind:          "infobip",
			URL:           "http://127.0.0.1:9000/omni/1/advanced",
			Timeout:       Duration{30 * time.Second},
			RatePerSecond: 50,
			MediaHosts:    []string{},
		},
		Outbox: Outbox{
			Workers:     4,
			MinBackoff:  Duration{time.Second},
			MaxBackoff:  Duration{5 * time.Minute},
			Deadline:    Duration{24 * time.Hour},
			Window:      Duration{24 * time.Hour},
			CheckWindow: true,
		},
		Media: Media{
			MaxBytes:       16 << 20,
			Workers:        4,
			ConnectTimeout: Duration{10 * time.Second},
			FetchTimeout:   Duration{2 * time.Minute},
			RetryFor:       Duration{24 * time.Hour},
			MinBackoff:     Duration{5 * time.Second},
			MaxBackoff:     Duration{10 * time.Minute},
		},
		Backup: Backup{Interval: Duration{24 * time.Hour}, Keep: 7},
		Web:    Web{Timezone: "UTC"},
		Events: Events{Retention: Duration{7 * 24 * time.Hour}},
	}
}

// Load reads each file in turn over the defaults and validates the
// result. A later file sets only the keys it names: a table's other keys
// keep what the earlier files gave them, while an array of tables such as
// [[agents]] is replaced whole. This is how an override file (the package
// test's short backup interval, a site's local changes) sits beside the
// packaged /etc/imchannel/imchannel.toml. An empty path is skipped.
func Load(paths ...string) (Config, error) {
	cfg := Default()
	for _, path := range paths {
		if path == "" {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		if err := Parse(b, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	return cfg, cfg.Validate()
}

// Parse decodes TOML into cfg, refusing unknown keys (a typo must not
// silently turn a feature off).
func Parse(b []byte, cfg *Config) error {
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(cfg)
	if err != nil {
		return err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("unknown keys: %s", strings.Join(keys, ", "))
	}
	def := RelayDefaults()
	for i := range cfg.Relay {
		r := &cfg.Relay[i]
		if r.Name == "" {
			// The name is logged, shown and a metrics label: never with
			// credentials someone put in the URL.
			r.Name = r.URL
			if u, err := url.Parse(r.URL); err == nil && u.User != nil {
				u.User = nil
				r.Name = u.String()
			}
		}
		if r.Format == "" {
			r.Format = def.Format
		}
		if r.Timeout.Duration == 0 {
			r.Timeout = def.Timeout
		}
		if r.MaxBackoff.Duration == 0 {
			r.MaxBackoff = def.MaxBackoff
		}
	}
	return nil
}

// Validate checks values that would otherwise fail later.
func (c Config) Validate() error {
	if c.DB == "" {
		return fmt.Errorf("db must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr %q: %w", c.Addr, err)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("public_url %q must be an http(s) URL", c.PublicURL)
		}
	}
	switch c.Provider.Kind {
	case "infobip", "cm":
	default:
		return fmt.Errorf("provider.kind %q: must be \"infobip\" or \"cm\"", c.Provider.Kind)
	}
	if c.Provider.URL != "" {
		if u, err := url.Parse(c.Provider.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("provider.url %q must be an http(s) URL", c.Provider.URL)
		}
	}
	for _, h := range c.Provider.MediaHosts {
		s := strings.TrimSpace(h)
		if !strings.Contains(s, "://") {
			s = "https://" + s
		}
		if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("provider.media_hosts: %q must be an origin like https://media.example:443 or a host name", h)
		}
	}
	if c.Provider.RatePerSecond < 0 {
		return fmt.Errorf("provider.rate_per_second must not be negative")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("log.format %q: must be text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level %q: must be debug, info, warn or error", c.Log.Level)
	}
	if c.Limits.BodyBytes <= 0 || c.Limits.TemplateBytes <= 0 {
		return fmt.Errorf("limits.body_bytes and limits.template_bytes must be positive")
	}
	if c.Limits.MemoryBytes < 0 || (c.Limits.MemoryBytes > 0 && c.Limits.MemoryBytes < 64<<20) {
		return fmt.Errorf("limits.memory_bytes must be 0 (no limit) or at least 64 MiB (67108864)")
	}
	if c.Media.MaxBytes <= 0 {
		return fmt.Errorf("media.max_bytes must be positive")
	}
	if c.API.TokenTTL.Duration <= 0 || c.API.TokenTTL.Duration > time.Hour {
		return fmt.Errorf("api.token_ttl must be between 1s and 1h")
	}
	if _, err := time.LoadLocation(c.Web.Timezone); err != nil || c.Web.Timezone == "" {
		return fmt.Errorf("web.timezone %q: not a time zone name (e.g. \"UTC\", \"Europe/Berlin\")", c.Web.Timezone)
	}
	if r := c.Numbers.DefaultRegion; r != "" && !phonenumbers.GetSupportedRegions()[r] {
		return fmt.Errorf("numbers.default_region %q: not a region code phone numbers know (two capital letters, e.g. \"DE\")", r)
	}
	if c.Retention.Days < 0 {
		return fmt.Errorf("retention.days must not be negative")
	}
	// Seconds are allowed so that a test (the package test's override
	// file) can wait for a scheduled backup; production uses hours.
	if c.Backup.Dir != "" && (c.Backup.Interval.Duration < time.Second || c.Backup.Keep < 1) {
		return fmt.Errorf("backup: interval must be at least 1s and keep at least 1")
	}
	// Half a credential would leave its route group open (the Has* checks
	// need both halves), silently, on the loopback address docs/security.md
	// recommends behind a reverse proxy: refuse it instead.
	if (c.Inbound.BasicUser == "") != (c.Inbound.BasicPassword == "") {
		return fmt.Errorf("inbound.basic_user and inbound.basic_password go together: with only one set the webhooks would be open")
	}
	if c.API.BearerToken == "" && (c.API.AppKey == "") != (c.API.AppSecret == "") {
		return fmt.Errorf("api.app_key and api.app_secret go together (or set api.bearer_token): with only one set the send API would be open")
	}
	if c.Events.Retention.Duration < time.Hour {
		return fmt.Errorf("events.retention must be at least 1h")
	}
	names := map[string]bool{}
	for i, r := range c.Relay {
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("relay[%d].url %q must be an http(s) URL", i, r.URL)
		}
		if r.Format != "infobip" && r.Format != "json" {
			return fmt.Errorf("relay[%d].format %q: must be \"infobip\" or \"json\"", i, r.Format)
		}
		if (r.BasicUser == "") != (r.BasicPassword == "") {
			return fmt.Errorf("relay[%d]: basic_user and basic_password go together", i)
		}
		if r.Timeout.Duration <= 0 || r.MaxBackoff.Duration <= 0 {
			return fmt.Errorf("relay[%d]: timeout and max_backoff must be positive", i)
		}
		if names[r.Name] {
			return fmt.Errorf("relay[%d]: name %q is used twice (it keys the target's cursor)", i, r.Name)
		}
		names[r.Name] = true
	}
	for i, a := range c.Agents {
		if a.User == "" || a.Password == "" {
			return fmt.Errorf("agents[%d]: user and password are required", i)
		}
	}
	return nil
}

// HasInboundAuth, HasAPIAuth and HasAgents report whether each route group
// has credentials configured.
func (c Config) HasInboundAuth() bool {
	return c.Inbound.BasicUser != "" && c.Inbound.BasicPassword != ""
}

// HasAPIAuth reports whether the send API has credentials.
func (c Config) HasAPIAuth() bool {
	return c.API.BearerToken != "" || (c.API.AppKey != "" && c.API.AppSecret != "")
}

// HasAgents reports whether agent logins exist.
func (c Config) HasAgents() bool { return len(c.Agents) > 0 }

// IsLoopback reports whether addr listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckExposure refuses to listen beyond loopback with a route group open.
func (c Config) CheckExposure() error {
	if IsLoopback(c.Addr) {
		return nil
	}
	var missing []string
	if !c.HasInboundAuth() {
		missing = append(missing, "[inbound] basic_user/basic_password")
	}
	if !c.HasAPIAuth() {
		missing = append(missing, "[api] bearer_token or app_key/app_secret")
	}
	if !c.HasAgents() {
		missing = append(missing, "[[agents]]")
	}
	if len(missing) > 0 {
		return fmt.Errorf("refusing to listen on %s (not loopback) with no credentials configured for: %s", c.Addr, strings.Join(missing, ", "))
	}
	return nil
}
