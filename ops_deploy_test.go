package main

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/require"

	"imchannel/config"
)

// settingLine is a commented-out setting in the sample: `# key = value`,
// `# "quoted key" = value` or `# [table]` / `# [[array]]`. Prose uses `##`.
var settingLine = regexp.MustCompile(`^# (\[\[?[a-z_.]+\]\]?\s*$|[a-z_]+ = |"[^"]+" = )`)

// configKeys lists every dotted key of config.Config by its toml tags.
func configKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(config.Duration{}) {
			out = append(out, configKeys(ft, key+".")...)
			continue
		}
		out = append(out, key)
	}
	return out
}

// TestOpsSampleConfig keeps deploy/imchannel.toml in step with config.go:
// the file parses as it is; with every setting uncommented it still parses
// with unknown keys refused, names every key config.Config has, and states
// exactly the defaults of config.Default().
func TestOpsSampleConfig(t *testing.T) {
	raw, err := os.ReadFile("deploy/imchannel.toml")
	require.NoError(t, err)
	asIs := config.Default()
	require.NoError(t, config.Parse(raw, &asIs))
	require.Equal(t, config.Default(), asIs, "the sample changes nothing until edited")

	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		if settingLine.MatchString(l) {
			l = strings.TrimPrefix(l, "# ")
		}
		lines = append(lines, l)
	}
	open := []byte(strings.Join(lines, "\n"))
	var got config.Config
	require.NoError(t, config.Parse(open, &got), "every uncommented key must be known")

	var doc map[string]any
	md, err := toml.Decode(string(open), &doc)
	require.NoError(t, err)
	have := map[string]bool{}
	for _, k := range md.Keys() {
		have[k.String()] = true
	}
	var missing []string
	for _, k := range configKeys(reflect.TypeOf(config.Config{}), "") {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "keys of config.Config missing from deploy/imchannel.toml")

	// The examples (one agent, one scenarioKey) are not defaults.
	require.Len(t, got.Agents, 1)
	require.Len(t, got.Provider.Numbers, 1)
	require.Len(t, got.Relay, 1)
	def := config.RelayDefaults()
	require.Equal(t, []any{def.Format, def.Timeout, def.MaxBackoff}, []any{got.Relay[0].Format, got.Relay[0].Timeout, got.Relay[0].MaxBackoff},
		"the relay example states the per-target defaults")
	got.Agents, got.Provider.Numbers, got.Relay = nil, nil, nil
	require.Equal(t, config.Default(), got, "the commented values are the defaults")
}

// TestOpsServiceUnit checks the unit runs the documented command with the
// hardening the operations guide promises. The service's user cannot read
// /etc/imchannel/imchannel.toml (root:root 0600, as the package installs
// it), so the config must reach the service as a credential, not by its
// path.
func TestOpsServiceUnit(t *testing.T) {
	raw, err := os.ReadFile("deploy/imchannel.service")
	require.NoError(t, err)
	unit := string(raw)
	require.NotContains(t, unit, "--config /etc/", "the service's user cannot read /etc/imchannel")
	require.NotContains(t, unit, "DynamicUser=", "the package makes a system user; a dynamic one would move the state directory")
	for _, want := range []string{
		"LoadCredential=imchannel.toml:/etc/imchannel/imchannel.toml\n",
		"ExecStart=/usr/bin/imchannel serve --config ${CREDENTIALS_DIRECTORY}/imchannel.toml\n",
		"User=imchannel\n", "Group=imchannel\n", "StateDirectory=imchannel", "ProtectSystem=strict", "ProtectHome=yes",
		"NoNewPrivileges=yes", "PrivateTmp=yes", "RestrictAddressFamilies=", "CapabilityBoundingSet=\n",
		"ReadWritePaths=/var/lib/imchannel", "KillSignal=SIGTERM", "TimeoutStopSec=",
	} {
		require.Contains(t, unit, want)
	}
}

// TestOpsConfigReference: every key of config.Config has a row in the
// table of docs/configuration.md (the configuration reference, moved there
// from the README), and the default the row states
// is config.Default()'s (a [[relay]] key's is config.RelayDefaults()'s).
// A row may name several keys (`a.x`, `a.y`), with one default each or one
// for all; a default stated in words (none, the url) must be an empty one.
func TestOpsConfigReference(t *testing.T) {
	raw, err := os.ReadFile("docs/configuration.md")
	require.NoError(t, err)
	sec := string(raw)
	ticks := regexp.MustCompile("`([^`]*)`")
	type row struct {
		keys, defaults []string
	}
	rows := map[string]row{}
	for _, l := range strings.Split(sec, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		var r row
		prefix := ""
		for _, m := range ticks.FindAllStringSubmatch(cells[1], -1) {
			k := m[1]
			if a, ok := strings.CutPrefix(k, "[[agents]] "); ok {
				k = "agents." + a
			}
			if i := strings.LastIndex(k, "."); i >= 0 {
				prefix = k[:i+1]
			} else {
				k = prefix + k // `password` after `[[agents]] user`
			}
			r.keys = append(r.keys, k)
		}
		for _, m := range ticks.FindAllStringSubmatch(cells[2], -1) {
			r.defaults = append(r.defaults, m[1])
		}
		for _, k := range r.keys {
			rows[k] = r
		}
	}

	def := reflect.ValueOf(config.Default())
	relayDef := reflect.ValueOf(config.RelayDefaults())
	var missing, wrong []string
	for _, key := range configKeys(reflect.TypeOf(config.Config{}), "") {
		r, ok := rows[key]
		if !ok {
			missing = append(missing, key)
			continue
		}
		if strings.HasPrefix(key, "agents.") {
			continue // no agents by default
		}
		v := def
		path := strings.Split(key, ".")
		if path[0] == "relay" {
			v, path = relayDef, path[1:]
		}
		for _, p := range path {
			v = fieldByTag(v, p)
		}
		want := renderDefault(v)
		switch {
		case len(r.defaults) == 0:
			if !v.IsZero() && !(v.Kind() == reflect.Map && v.Len() == 0) {
				wrong = append(wrong, key+": no default stated, want "+want)
			}
		case len(r.defaults) == len(r.keys):
			if i := slices.Index(r.keys, key); r.defaults[i] != want {
				wrong = append(wrong, key+": the doc says "+r.defaults[i]+", want "+want)
			}
		default:
			if slices.Index(r.defaults, want) < 0 {
				wrong = append(wrong, key+": the doc says "+strings.Join(r.defaults, " ")+", want "+want)
			}
		}
	}
	require.Empty(t, missing, "keys of config.Config without a row in docs/configuration.md")
	require.Empty(t, wrong, "defaults in docs/configuration.md that are not config.Default()'s")
}

func fieldByTag(v reflect.Value, tag string) reflect.Value {
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).Tag.Get("toml") == tag {
			return v.Field(i)
		}
	}
	panic("no field " + tag)
}

// renderDefault writes a default as docs/configuration.md's table does (TOML).
func renderDefault(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case config.Duration:
		return `"` + x.String() + `"`
	case string:
		return `"` + x + `"`
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	switch v.Kind() {
	case reflect.Slice:
		if v.Len() == 0 {
			return "[]"
		}
	case reflect.Map:
		if v.Len() == 0 {
			return "{}"
		}
	case reflect.Bool, reflect.Int, reflect.Int64:
		return fmt.Sprint(v.Interface())
	}
	return fmt.Sprintf("%v", v.Interface())
}
