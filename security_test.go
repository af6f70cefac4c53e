package main

import (
	"net/http"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/config"
)

// Issue 13 item 5: in open mode (no credentials) a request addressed to
// another Host is refused (DNS rebinding), and so is a write from another
// origin; /healthz stays open and route groups with credentials are not
// affected.
func TestOpenModeHostAndOrigin(t *testing.T) {
	open := opsNewEnv(t, func(c *config.Config) {
		c.Agents, c.Inbound, c.API = nil, config.Inbound{}, config.API{TokenTTL: c.API.TokenTTL}
	})
	open.app.logOpenMode()
	require.Equal(t, 1, strings.Count(open.logs.String(), "open mode"), "one line at start: %s", open.logs.String())
	rebind := func(r *http.Request) { r.Host = "attacker.example:8080" }
	foreign := func(r *http.Request) { r.Header.Set("Origin", "http://attacker.example") }
	body := opsInfobipText("om-1", opsCustomerNum1, "hi")
	for _, c := range []struct {
		method, path string
		body         []byte
		hdr          func(*http.Request)
		want         int
	}{
		{"GET", "/api/v1/conversations", nil, rebind, 421},
		{"GET", "/", nil, rebind, 421},
		{"GET", "/metrics", nil, rebind, 421},
		{"GET", "/admin/backup", nil, rebind, 421},
		{"DELETE", "/api/v1/customers/" + opsCustomerNum1, nil, rebind, 421},
		{"POST", "/imchannel/message", body, rebind, 421},
		{"POST", "/webhooks/cm", []byte(`{}`), rebind, 421},
		{"POST", "/omni/1/advanced", []byte(`{}`), rebind, 421},
		{"POST", "/apigovernance/api/oauth/tokenByAkSk", []byte(`{}`), rebind, 421},
		{"POST", "/livechat/d/sendExternalTemplateMessageToCtlivesocial", []byte(`{}`), rebind, 421},
		{"DELETE", "/api/v1/customers/" + opsCustomerNum1, nil, foreign, 403},
		{"DELETE", "/media/x", nil, foreign, 403},
		{"POST", "/imchannel/message", body, foreign, 403},
		{"POST", "/omni/1/advanced", []byte(`{}`), foreign, 403},
		{"GET", "/healthz", nil, rebind, 200},
		{"GET", "/api/v1/conversations", nil, foreign, 200}, // a read: the browser's same-origin policy keeps the answer from the page
		{"POST", "/imchannel/message", body, nil, 200},
		{"DELETE", "/api/v1/customers/" + opsCustomerNum1, nil, func(r *http.Request) { r.Header.Set("Origin", "http://"+r.Host) }, 200},
	} {
		code, b := open.do(t, c.method, c.path, c.body, c.hdr)
		require.Equal(t, c.want, code, "%s %s: %s", c.method, c.path, b)
		if c.want >= 400 {
			require.Contains(t, string(b), `"error"`)
		}
	}

	// With credentials the Host is not checked: a reverse proxy may pass
	// the public name.
	closed := opsNewEnv(t, func(c *config.Config) { c.API.BearerToken = "api-token-3e1f" })
	closed.app.logOpenMode()
	code, b := closed.do(t, "GET", "/api/v1/conversations", nil, func(r *http.Request) { asAgent(r); rebind(r) })
	require.Equal(t, 200, code, "%s", b)
	require.NotContains(t, closed.logs.String(), "open mode")
}

// Issue 13 item 1: a route that reads no body refuses a large declared one
// at once.
func TestNoBodyRoutes(t *testing.T) {
	e := opsNewEnv(t)
	for _, m := range []string{"GET", "DELETE"} {
		code, b := e.do(t, m, "/api/v1/conversations", []byte(strings.Repeat("x", 8<<10)), asAgent)
		require.Equal(t, 413, code, "%s: %s", m, b)
	}
	code, _ := e.do(t, "GET", "/healthz", []byte(strings.Repeat("x", 8<<10)), nil)
	require.Equal(t, 413, code)
}

// Issue 13 item 1: limits.memory_bytes becomes Go's soft memory limit
// unless GOMEMLIMIT is set; GOGC=400 stays the collector's pace.
func TestMemoryLimitFromConfig(t *testing.T) {
	prevLimit := debug.SetMemoryLimit(-1)
	prevGC := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetMemoryLimit(prevLimit); debug.SetGCPercent(prevGC) })

	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	setMemoryLimits(config.Default().Limits, getenv)
	require.EqualValues(t, 512<<20, debug.SetMemoryLimit(-1), "the documented default")
	require.Equal(t, 400, debug.SetGCPercent(400))

	debug.SetMemoryLimit(1 << 40)
	env["GOMEMLIMIT"], env["GOGC"] = "300MiB", "100"
	debug.SetGCPercent(100)
	setMemoryLimits(config.Limits{MemoryBytes: 256 << 20}, getenv)
	require.EqualValues(t, int64(1<<40), debug.SetMemoryLimit(-1), "GOMEMLIMIT in the environment wins")
	require.Equal(t, 100, debug.SetGCPercent(100), "GOGC in the environment wins")
}
