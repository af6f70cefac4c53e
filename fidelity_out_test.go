package main

// Issue 12, outbound half, end to end through the real router (newApp's
// routes: webhooks, send API, /api/v1) with the real dispatcher and a fake
// CM that records what it is sent.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/config"
	"imchannel/outbound"
)

// fixture reads testdata/fidelity_out/NAME.json's body with its {{…}}
// placeholders filled in.
func fixture(t *testing.T, name string, vars map[string]string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/fidelity_out/" + name + ".json")
	require.NoError(t, err)
	var f struct {
		Body json.RawMessage `json:"body"`
	}
	require.NoError(t, json.Unmarshal(b, &f))
	s := string(f.Body)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	return []byte(s)
}

type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (r *recorder) all() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

// TestCMReplyRoundTrip: a customer writes to the second business number;
// CTLive's reply (no scenarioKey) leaves from that number with our ULID as
// CM's reference; CM's status report and the customer's answer find the
// message through that reference.
func TestCMReplyRoundTrip(t *testing.T) {
	rec := &recorder{}
	cm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.bodies = append(rec.bodies, b)
		rec.mu.Unlock()
		_, _ = io.WriteString(w, `{"details":"Created 1 message(s)","errorCode":0,"messages":[{"status":"Accepted","messageErrorCode":0}]}`)
	}))
	t.Cleanup(cm.Close)
	e := opsNewEnv(t, func(c *config.Config) {
		c.API = config.API{BearerToken: "send-token", TokenTTL: config.Duration{Duration: time.Hour}}
		c.Provider.Kind, c.Provider.URL, c.Provider.ProductToken = "cm", cm.URL, "product-token"
		c.Provider.From = "CM.com"
		c.Provider.DefaultNumber = "31201110000"
		c.Provider.Numbers = map[string]string{"KEY-A": "31201110000", "KEY-B": "31202220000"}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); outbound.NewDispatcher(e.app.outboundDeps()).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	now := time.Now().UTC().Format("2006-01-02T15:04:05")

	status, b := e.do(t, "POST", "/webhooks/cm", fixture(t, "cm_mo_text", map[string]string{"now": now}), asInbound)
	require.Equal(t, 200, status, "%s", b)

	status, b = e.do(t, "POST", "/omni/1/advanced", fixture(t, "omni_reply_no_scenario", nil), func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer send-token")
	})
	require.Equal(t, 200, status, "%s", b)
	require.Contains(t, string(b), `"messageId":"46dbab11-f9cc-4d32-852b-cbba988b7d08"`, "CTLive's id is answered")

	require.Eventually(t, func() bool { return len(rec.all()) == 1 }, 10*time.Second, 5*time.Millisecond)
	var sent struct {
		Messages struct {
			Msg []struct {
				From      string `json:"from"`
				Reference string `json:"reference"`
			} `json:"msg"`
		} `json:"messages"`
	}
	require.NoError(t, json.Unmarshal(rec.all()[0], &sent))
	ref := sent.Messages.Msg[0].Reference
	require.Regexp(t, `^[A-Za-z0-9]{1,32}$`, ref, "CM's reference is 1-32 alphanumerics")
	require.Equal(t, "0031202220000", sent.Messages.Msg[0].From, "from the number the customer wrote to")

	type msgJSON struct {
		ID         string `json:"id"`
		ExternalID string `json:"externalId"`
		From       string `json:"from"`
		Status     string `json:"status"`
		ReplyTo    *struct {
			ID string `json:"id"`
		} `json:"replyTo"`
	}
	get := func(ext string) msgJSON {
		status, b := e.do(t, "GET", "/api/v1/messages?externalId="+ext, nil, asAgent)
		require.Equal(t, 200, status, "%s", b)
		var ans struct {
			Messages []msgJSON `json:"messages"`
		}
		require.NoError(t, json.Unmarshal(b, &ans))
		require.Len(t, ans.Messages, 1, "%s", b)
		return ans.Messages[0]
	}
	require.Eventually(t, func() bool { return get("46dbab11-f9cc-4d32-852b-cbba988b7d08").Status == "sent" }, 10*time.Second, 5*time.Millisecond)
	out := get("46dbab11-f9cc-4d32-852b-cbba988b7d08")
	require.Equal(t, ref, out.ID, "the reference is our message id")
	require.Equal(t, "31202220000", out.From, "the stored from is the number used")

	status, b = e.do(t, "POST", "/webhooks/cm/status", fixture(t, "cm_status_delivered", map[string]string{"now": now, "reference": ref}), asInbound)
	require.Equal(t, 200, status, "%s", b)
	require.Equal(t, "delivered", get("46dbab11-f9cc-4d32-852b-cbba988b7d08").Status)

	status, b = e.do(t, "POST", "/webhooks/cm", fixture(t, "cm_mo_reply", map[string]string{"now": now, "reference": ref}), asInbound)
	require.Equal(t, 200, status, "%s", b)
	reply := get("ADFGDFHNhcIcksdfSDFVSF0oEzwYDFDFClksdDF")
	require.NotNil(t, reply.ReplyTo)
	require.Equal(t, out.ID, reply.ReplyTo.ID, "messageContext threads to our message")
}
