package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Secret strings the config and the requests carry. None may reach a log.
const (
	secInbound   = "inb-secret-9d2f6a"
	secBearer    = "static-bearer-4be1c7"
	secAppKey    = "app-key-77c0d3"
	secAppSecret = "app-secret-e5a91b"
	secAgent     = "agent-secret-1f8e42"
	secProvider  = "provider-pw-c3d9a0"
	secProduct   = "product-token-6a2b71"
	secScenario  = "scenario-key-0e4f9d"
	secWrong     = "wrong-guess-a0b1c2"
	secQuery     = "query-secret-55aa66"
	secRelayPass = "relay-pw-7c3e11"
	secRelayHMAC = "relay-hmac-2d8b90"
	secRelayURL  = "relay-url-pw-4f6a02"
)

// TestOpsNoSecretsInLogs runs the whole service in-process (Run "serve"
// with a config file full of credentials), in both log formats, sends
// requests carrying Basic credentials, bearer tokens, app keys and
// secrets, issued tokens, wrong passwords and a secret in a query string,
// shuts it down, and searches everything it logged for every secret.
func TestOpsNoSecretsInLogs(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) { opsSecretsRun(t, format) })
	}
}

func opsSecretsRun(t *testing.T, format string) {
	var provHits atomic.Int64
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		provHits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"messages":[{"messageId":"p-1","status":{"groupName":"PENDING"}}]}`)
	}))
	defer provider.Close()
	// A relay target that is down: its failures are logged, its
	// credentials (config and URL) must not be.
	var relayHits atomic.Int64
	relayTarget := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		relayHits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer relayTarget.Close()
	relayURL := strings.Replace(relayTarget.URL, "http://", "http://ct:"+secRelayURL+"@", 1) + "/imchanne/message"
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "imchannel.toml")
	cfg := fmt.Sprintf(`addr = "127.0.0.1:0"
db = %q
[log]
format = %q
level = "debug"
[inbound]
basic_user = "ctlive"
basic_password = %q
[api]
bearer_token = %q
app_key = %q
app_secret = %q
[[agents]]
user = "alice"
password = %q
[provider]
kind = "infobip"
url = %q
basic_user = "u"
basic_password = %q
product_token = %q
scenario_key = %q
default_number = "1234"
[outbox]
check_window = false
[media]
allow_private_hosts = true
[[relay]]
url = %q
basic_user = "ct"
basic_password = %q
hmac_secret = %q
max_backoff = "50ms"
`, filepath.Join(dir, "imchannel.db"), format, secInbound, secBearer, secAppKey, secAppSecret, secAgent,
		provider.URL+"/omni/1/advanced", secProvider, secProduct, secScenario, relayURL, secRelayPass, secRelayHMAC)
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	logs := &opsBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []string{"serve", "--config", cfgPath}, io.Discard, logs) }()

	listen := regexp.MustCompile(`msg=listening addr=(127\.0\.0\.1:\d+)|"msg":"listening","addr":"(127\.0\.0\.1:\d+)"`)
	var base string
	require.Eventually(t, func() bool {
		m := listen.FindStringSubmatch(logs.String())
		if m == nil {
			return false
		}
		base = "http://" + m[1] + m[2]
		return true
	}, 20*time.Second, 10*time.Millisecond, "serve did not start: %s", logs.String())

	send := func(method, path string, body []byte, hdr map[string]string, basic ...string) []byte {
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if len(basic) == 2 {
			req.SetBasicAuth(basic[0], basic[1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return b
	}
	send("POST", "/imchannel/message", opsInfobipText("sec-1", opsCustomerNum1, "hello"), nil, "ctlive", secInbound)
	send("POST", "/imchannel/message", opsInfobipText("sec-2", opsCustomerNum1, "hello"), nil, "ctlive", secWrong)
	send("POST", "/webhooks/cm", []byte(`{}`), nil, "ctlive", secInbound)

	tok := send("POST", "/apigovernance/api/oauth/tokenByAkSk",
		[]byte(fmt.Sprintf(`{"app_key":%q,"app_secret":%q}`, secAppKey, secAppSecret)), nil)
	var issued struct{ AccessToken string }
	require.NoError(t, json.Unmarshal(tok, &issued), "%s", tok)
	require.NotEmpty(t, issued.AccessToken)
	send("POST", "/apigovernance/api/oauth/tokenByAkSk", []byte(fmt.Sprintf(`{"app_key":%q,"app_secret":%q}`, secAppKey, secWrong)), nil)

	raw, err := os.ReadFile(filepath.Join("testdata", "outbound", "text.json"))
	require.NoError(t, err)
	var fixture struct{ Request json.RawMessage }
	require.NoError(t, json.Unmarshal(raw, &fixture))
	sent := send("POST", "/omni/1/advanced", fixture.Request, map[string]string{"Authorization": "Bearer " + issued.AccessToken, "x-app-key": secAppKey})
	require.NotContains(t, string(sent), `"error"`)
	send("POST", "/omni/1/advanced", fixture.Request, map[string]string{"Authorization": "Bearer " + secBearer, "x-app-key": secAppKey})
	send("POST", "/omni/1/advanced", fixture.Request, map[string]string{"Authorization": "Bearer " + secWrong})
	send("GET", "/api/v1/conversations?q="+secQuery, nil, nil, "alice", secAgent)
	send("GET", "/api/v1/conversations", nil, nil, "alice", secWrong)
	send("GET", "/metrics", nil, nil, "alice", secAgent)
	send("GET", "/admin/backup", nil, nil, "alice", secAgent)
	send("GET", "/healthz?token="+secQuery, nil, nil)
	send("GET", "/no/such/"+secQuery, nil, nil)
	// Let the dispatcher talk to the provider with its credentials.
	require.Eventually(t, func() bool { return provHits.Load() > 0 }, 20*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return relayHits.Load() > 1 }, 20*time.Second, 10*time.Millisecond, "the relay never retried")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}

	out := logs.String()
	require.Contains(t, out, "stopped cleanly")
	require.Contains(t, out, "relay post failed", "the relay's failures are logged (without its credentials)")
	secrets := []string{secInbound, secBearer, secAppKey, secAppSecret, secAgent, secProvider, secProduct,
		secWrong, secQuery, issued.AccessToken, secRelayPass, secRelayHMAC, secRelayURL}
	for _, pair := range []string{"ctlive:" + secInbound, "alice:" + secAgent, "u:" + secProvider, "ctlive:" + secWrong, "ct:" + secRelayPass} {
		secrets = append(secrets, base64.StdEncoding.EncodeToString([]byte(pair)))
	}
	for _, s := range secrets {
		require.NotContains(t, out, s, "a secret reached the log")
	}

	// One line per request, with route, status and latency.
	var requests int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if format == "json" {
			var v map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &v), "not JSON: %s", line)
			if v["msg"] == "request" {
				requests++
				for _, k := range []string{"route", "status", "ms", "method"} {
					require.Contains(t, v, k, line)
				}
			}
		} else if strings.Contains(line, "msg=request ") {
			requests++
			for _, k := range []string{"route=", "status=", "ms=", "method="} {
				require.Contains(t, line, k)
			}
		}
	}
	require.Equal(t, 14, requests)
}
