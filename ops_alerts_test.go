package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"imchannel/config"
	"imchannel/store"
)

// promBuiltin are series Prometheus writes itself for every target; the
// rules may name them although /metrics cannot expose them.
var promBuiltin = map[string]bool{"up": true}

// exposedNames scrapes /metrics after traffic that makes every labelled
// family the rules use appear, and lists the names a query can select:
// each family, and a histogram's _bucket, _sum and _count series.
func exposedNames(t *testing.T) map[string]bool {
	t.Helper()
	e := opsNewEnv(t)
	ctx := context.Background()
	client := e.srv.Client()
	require.NoError(t, e.postInbound(ctx, client, "a-1", opsCustomerNum1, "one"))
	require.NoError(t, e.postInbound(ctx, client, "a-1", opsCustomerNum1, "one again"))
	status, _ := e.do(t, http.MethodPost, "/imchannel/message", []byte(`{"results": 7}`), asInbound)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = e.do(t, http.MethodPost, "/imchannel/message", []byte(`{"results": [{"unknown": 1}]}`), asInbound)
	require.Equal(t, http.StatusOK, status, "quarantined")
	status, body := e.do(t, http.MethodGet, "/metrics", nil, asAgent)
	require.Equal(t, http.StatusOK, status)

	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			switch f[3] {
			case "histogram":
				names[f[2]+"_bucket"] = true
				fallthrough
			case "summary":
				names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
			}
		}
	}
	require.True(t, names["imchannel_rejections_total"], "the traffic above makes the labelled families appear")
	return names
}

var (
	promStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:.])([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true, "inf": true, "nan": true}
	labelValues  = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_]+\s*\)$`)
)

// promMetrics lists the metric names a PromQL expression selects: what is
// left once strings, label matchers, ranges, grouping label lists,
// functions (an identifier before "(") and keywords are taken out.
func promMetrics(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, m := range promIdent.FindAllStringSubmatchIndex(s, -1) {
		name := s[m[2]:m[3]]
		rest := strings.TrimLeft(s[m[3]:], " \t\n")
		if promKeywords[name] || strings.HasPrefix(rest, "(") {
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestPromMetrics(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`up{job="imchannel"} == 0`, "up"},
		{`sum by (route, reason) (rate(imchannel_rejections_total{route=~"/a|/b"}[10m])) > 2 * sum by (route) (rate(imchannel_rejections_total[1h] offset 10m))`, "imchannel_rejections_total imchannel_rejections_total"},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket{instance=~"$instance"}[5m])))`, "x_bucket"},
		{`a > 0 and time() - b > 2 * c`, "a b c"},
		{`x > 1.5 * (x offset 1d) and x > 256 * 1e6`, "x x x"},
		{`node_filesystem_avail_bytes / 1e9`, "node_filesystem_avail_bytes"},
	} {
		require.Equal(t, tc.want, strings.Join(promMetrics(tc.expr), " "), tc.expr)
	}
}

// TestOpsAlertRules: every rule the issue asks for is there, and every
// metric a rule names is one /metrics exposes.
func TestOpsAlertRules(t *testing.T) {
	raw, err := os.ReadFile("deploy/prometheus/imchannel-alerts.yml")
	require.NoError(t, err)
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&doc))
	exposed := exposedNames(t)

	var alerts, unknown []string
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
			if r.For != "" {
				_, err := time.ParseDuration(r.For)
				require.NoError(t, err, r.Alert)
			}
			names := promMetrics(r.Expr)
			require.NotEmpty(t, names, "%s names no metric", r.Alert)
			for _, n := range names {
				if !exposed[n] && !promBuiltin[n] {
					unknown = append(unknown, r.Alert+": "+n)
				}
			}
		}
	}
	require.Empty(t, unknown, "rules name metrics /metrics does not expose")
	sort.Strings(alerts)
	require.Equal(t, []string{"ImchannelBackupTooOld", "ImchannelDatabaseGrowing", "ImchannelDown",
		"ImchannelInboundQuarantined", "ImchannelMediaFetchFailures", "ImchannelOutboxStuck", "ImchannelSendsFailing",
		"ImchannelUnhealthy", "ImchannelWebhookRejectionsRising"}, alerts)

	// Prometheus's own checker, where it is installed (Debian: prometheus).
	if promtool, err := exec.LookPath("promtool"); err == nil {
		out, err := exec.Command(promtool, "check", "rules", "deploy/prometheus/imchannel-alerts.yml").CombinedOutput()
		require.NoError(t, err, "promtool: %s", out)
	} else {
		t.Log("promtool not installed: PromQL syntax not checked")
	}
}

// TestOpsGrafanaDashboard: every panel queries something, and every metric
// a panel or variable names is one /metrics exposes.
func TestOpsGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("deploy/grafana/imchannel-dashboard.json")
	require.NoError(t, err)
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.NotEmpty(t, dash.UID)
	require.GreaterOrEqual(t, len(dash.Panels), 8)
	exposed := exposedNames(t)
	var unknown []string
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			names := promMetrics(tg.Expr)
			require.NotEmpty(t, names, "panel %q: %q names no metric", p.Title, tg.Expr)
			for _, n := range names {
				if !exposed[n] {
					unknown = append(unknown, p.Title+": "+n)
				}
			}
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		qs, _ := q["query"].(string)
		m := labelValues.FindStringSubmatch(qs)
		require.NotNil(t, m, "variable %s: %q", v.Name, qs)
		if !exposed[m[1]] {
			unknown = append(unknown, "variable "+v.Name+": "+m[1])
		}
	}
	require.Empty(t, unknown, "the dashboard names metrics /metrics does not expose")
}

// The gauges behind the backup and outbox alerts read the store and the
// config at each scrape.
func TestOpsAlertGauges(t *testing.T) {
	dir := t.TempDir()
	e := opsNewEnv(t, func(c *config.Config) {
		c.Backup = config.Backup{Dir: dir, Interval: config.Duration{Duration: time.Hour}, Keep: 3}
	})
	m := scrape(t, e)
	require.Equal(t, 3600.0, m["imchannel_backup_interval_seconds"])
	require.Equal(t, 0.0, m["imchannel_last_backup_timestamp_seconds"], "no backup yet")
	require.Equal(t, 0.0, m["imchannel_outbox_oldest_age_seconds"], "empty outbox")
	require.Equal(t, 1.0, m["imchannel_healthy"])

	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	require.NoError(t, e.app.store.RecordBackup(context.Background(), at, 1234))
	// No dispatcher runs here: the message stays in the outbox. (The
	// exact age against a set clock is store.TestOutboxOldest's.)
	_, err := e.app.store.QueueOutbound(context.Background(), []*store.Message{{Provider: store.ProviderInfobip,
		ExternalID: "o-1", From: opsBusinessNum, To: opsCustomerNum1, Type: store.TypeText, Text: "hi"}},
		store.QueueOptions{})
	require.NoError(t, err)
	m = scrape(t, e)
	require.Equal(t, float64(at.Unix()), m["imchannel_last_backup_timestamp_seconds"])
	age := m["imchannel_outbox_oldest_age_seconds"]
	require.True(t, age > 0 && age < 600, "queued just now, waiting since: %v s", age)
}
