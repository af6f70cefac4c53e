package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/config"
	"imchannel/httpx"
)

// scrape reads /metrics (agent credentials) into series → value, where a
// series is the exposition's `name{labels}` text.
func scrape(t *testing.T, e *opsEnv) map[string]float64 {
	t.Helper()
	status, body := e.do(t, http.MethodGet, "/metrics", nil, asAgent)
	require.Equal(t, http.StatusOK, status)
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

// sum adds every series of a family whose labels contain each of want
// (`key="value"` pieces).
func sum(m map[string]float64, family string, want ...string) float64 {
	var s float64
	for k, v := range m {
		name, labels, _ := strings.Cut(k, "{")
		if name != family {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(labels, w)
		}
		if ok {
			s += v
		}
	}
	return s
}

// TestOpsMetricsMove sends webhook traffic through the real router and
// finds the counters moved on /metrics.
func TestOpsMetricsMove(t *testing.T) {
	e := opsNewEnv(t)
	ctx := context.Background()
	status, _ := e.do(t, http.MethodGet, "/metrics", nil, nil)
	require.Equal(t, http.StatusUnauthorized, status, "metrics need agent credentials")
	before := scrape(t, e)

	client := e.srv.Client()
	require.NoError(t, e.postInbound(ctx, client, "m-1", opsCustomerNum1, "one"))
	require.NoError(t, e.postInbound(ctx, client, "m-2", opsCustomerNum1, "two"))
	require.NoError(t, e.postInbound(ctx, client, "m-1", opsCustomerNum1, "one again"))
	status, _ = e.do(t, http.MethodPost, "/imchannel/message", []byte(`{"results": 7}`), asInbound)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = e.do(t, http.MethodPost, "/imchannel/message", opsInfobipText("m-3", opsCustomerNum1, "x"), nil)
	require.Equal(t, http.StatusUnauthorized, status)

	after := scrape(t, e)
	delta := func(family string, labels ...string) float64 {
		return sum(after, family, labels...) - sum(before, family, labels...)
	}
	p := `provider="infobip"`
	require.Equal(t, 3.0, delta("imchannel_inbound_posts_total", p))
	require.Equal(t, 2.0, delta("imchannel_inbound_messages_total", p))
	require.Equal(t, 1.0, delta("imchannel_inbound_duplicates_total", p))
	require.GreaterOrEqual(t, delta("imchannel_rejections_total"), 2.0, "a malformed post and a wrong login")
	route := `route="/imchannel/message"`
	require.Equal(t, 3.0, delta("imchannel_http_request_duration_seconds_count", route, `code="200"`, `method="POST"`))
	require.Equal(t, 1.0, delta("imchannel_http_request_duration_seconds_count", route, `code="400"`))
	require.Equal(t, 1.0, delta("imchannel_http_request_duration_seconds_count", route, `code="401"`))
	require.Positive(t, delta("imchannel_http_request_duration_seconds_sum", route))
	require.GreaterOrEqual(t, delta("imchannel_http_request_duration_seconds_count", `route="/metrics"`), 1.0)
	require.GreaterOrEqual(t, delta("imchannel_commit_batch_size_count"), 2.0, "two posts that wrote")
	require.GreaterOrEqual(t, delta("imchannel_commit_batch_size_sum"), 2.0)
	require.GreaterOrEqual(t, delta("imchannel_commit_duration_seconds_count"), 2.0)
	fi, err := os.Stat(e.app.cfg.DB)
	require.NoError(t, err)
	require.Equal(t, float64(fi.Size()), after["imchannel_db_size_bytes"], "the file's size on disk")
	for _, family := range []string{"imchannel_outbox_depth", "imchannel_media_bytes_total", "imchannel_media_failures_total"} {
		_, ok := after[family]
		require.True(t, ok, "%s is exported", family)
	}
}

// TestOpsMetricsREADME keeps the metrics table (docs/operations.md, moved
// there from the README) honest: after one accepted post, one rejected
// post, one quarantined result and one delivery report, before any
// send, retry or media fetch, every family the table lists is on /metrics.
func TestOpsMetricsREADME(t *testing.T) {
	raw, err := os.ReadFile("docs/operations.md")
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `(imchannel_[a-z_]+)` \\|")
	var families []string
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		families = append(families, m[1])
	}
	require.GreaterOrEqual(t, len(families), 10, "the metrics table in docs/operations.md")

	e := opsNewEnv(t)
	require.NoError(t, e.postInbound(context.Background(), e.srv.Client(), "m-1", opsCustomerNum1, "one"))
	status, _ := e.do(t, http.MethodPost, "/imchannel/message", []byte(`{"results": 7}`), asInbound)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = e.do(t, http.MethodPost, "/imchannel/message", []byte(`{"results":[{"what":"is this"}]}`), asInbound)
	require.Equal(t, http.StatusOK, status, "quarantined")
	report := []byte(`{"results":[{"messageId":"not-ours","to":"385919998888","doneAt":"2024-03-01T09:00:00.000+0000",
"status":{"groupName":"DELIVERED","name":"DELIVERED_TO_HANDSET"}}]}`)
	status, _ = e.do(t, http.MethodPost, "/imchannel/message", report, asInbound)
	require.Equal(t, http.StatusOK, status)

	got := scrape(t, e)
	exported := map[string]bool{}
	for series := range got {
		name, _, _ := strings.Cut(series, "{")
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				exported[base] = true
			}
		}
		exported[name] = true
	}
	for _, f := range families {
		require.True(t, exported[f], "%s is in docs/operations.md's table but not on /metrics", f)
	}
	require.Contains(t, got, `imchannel_sends_total{provider="infobip",result="failed"}`)
}

// TestOpsRejectionReasons: a wrong login is counted as "unauthorized" on
// the webhooks and on the send API alike, and every reason the service
// counts is one docs/operations.md documents.
func TestOpsRejectionReasons(t *testing.T) {
	e := opsNewEnv(t, func(c *config.Config) { c.API.BearerToken = "right-token" })
	wrong := func(r *http.Request) { r.Header.Set("Authorization", "Bearer wrong-token") }
	status, _ := e.do(t, http.MethodPost, "/imchannel/message", opsInfobipText("m-1", opsCustomerNum1, "x"), nil)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = e.do(t, http.MethodPost, "/omni/1/advanced", []byte(`{}`), wrong)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = e.do(t, http.MethodPost, "/imchannel/message", []byte(`{"results": 7}`), asInbound)
	require.Equal(t, http.StatusBadRequest, status)

	m := scrape(t, e)
	require.Equal(t, 1.0, sum(m, "imchannel_rejections_total", `route="/imchannel/message"`, `reason="unauthorized"`))
	require.Equal(t, 1.0, sum(m, "imchannel_rejections_total", `route="/omni/1/advanced"`, `reason="unauthorized"`))
	require.Equal(t, 1.0, sum(m, "imchannel_rejections_total", `route="/imchannel/message"`, `reason="invalid"`))

	doc, err := os.ReadFile("docs/operations.md")
	require.NoError(t, err)
	var row string
	for line := range strings.Lines(string(doc)) {
		if strings.HasPrefix(line, "| `imchannel_rejections_total` |") {
			row = line
		}
	}
	require.NotEmpty(t, row, "docs/operations.md has a row for imchannel_rejections_total")
	for _, r := range []string{httpx.ReasonInvalid, httpx.ReasonTooLarge, httpx.ReasonUnauthorized, httpx.ReasonUnavailable, httpx.ReasonInternal} {
		require.Contains(t, row, "`"+r+"`", "the documented reasons")
	}
	for k := range m {
		if !strings.HasPrefix(k, "imchannel_rejections_total{") {
			continue
		}
		_, rest, _ := strings.Cut(k, `reason="`)
		reason, _, _ := strings.Cut(rest, `"`)
		require.Contains(t, row, "`"+reason+"`", "%s: a reason docs/operations.md does not list", k)
	}
}
