package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// route is one route of docs/api.md#routes with the role allowed on it.
type route struct {
	method, path string
	role         auth // the credentials that open it
	body         []byte
}

// secretText and secretNumber mark the stored message whose content must
// never appear in an answer to a request without the right credentials.
const (
	secretText   = "SECRET-CONTENT-7f3a"
	secretNumber = "31699887766"
)

// allRoutes lists every route; ids are filled from the stored message.
func allRoutes(msgID, convID, mediaID string) []route {
	inb := infobipInbound("auth-probe-in", "31600000001", "probe")
	cmb := cmInbound("auth-probe-cm", "31600000002", "probe")
	status := []byte(`{"messages":{"msg":{"received":"2024-05-01T10:00:00","to":"0031600000003","reference":"auth-probe-out","status":{"code":2,"errorCode":null,"errorDescription":"Delivered"},"operator":"x"}}}`)
	send := sendAPI("auth-probe-out", "31600000003", "probe")
	tmpl := []byte(`{"customerPhoneNumber":"31600000004","servicePhoneNumber":"31100000000","templateName":"t","language":"en","header":null,"headerData":[],"bodyData":["x"],"dynamicUrl":[]}`)
	return []route{
		{"POST", "/imchanne/message", authInbound, inb},
		{"POST", "/imchannel/message", authInbound, inb},
		{"POST", "/webhooks/cm", authInbound, cmb},
		{"POST", "/webhooks/cm/status", authInbound, status},
		{"POST", "/omni/1/advanced", authAPI, send},
		{"POST", "/apiaccess/rest/ccmessaging/omni/1/advanced", authAPI, send},
		{"POST", "/livechat/default/sendExternalTemplateMessageToCtlivesocial", authAPI, tmpl},
		{"GET", "/", authAgent, nil},
		{"GET", "/conversations/" + convID, authAgent, nil},
		{"GET", "/api/v1/conversations", authAgent, nil},
		{"GET", "/api/v1/conversations?q=" + secretNumber, authAgent, nil},
		{"GET", "/api/v1/conversations/" + convID + "/messages", authAgent, nil},
		{"GET", "/api/v1/messages/" + msgID, authAgent, nil},
		{"GET", "/api/v1/messages?externalId=auth-secret-1", authAgent, nil},
		{"GET", "/media/" + mediaID, authAgent, nil},
		{"DELETE", "/media/" + mediaID, authAgent, nil},
		{"GET", "/api/v1/conversations/" + convID, authAgent, nil},
		{"GET", "/fragments/messages/" + msgID, authAgent, nil},
		{"GET", "/static/0123456789/app.css", authAgent, nil},
		{"GET", "/events", authAgent, nil}, // SSE: probed without credentials only
		{"DELETE", "/api/v1/customers/31600000099", authAgent, nil},
		{"GET", "/metrics", authAgent, nil},
		{"GET", "/admin/backup", authAgent, nil},
		{"POST", "/admin/backup/checked", authAgent, []byte(`{"id":"01HZZZZZZZZZZZZZZZZZZZZZZZ"}`)},
	}
}

// TestAuthMatrix tries every route with no credentials, wrong ones and
// each other role's: every attempt gets 401 and the answer holds nothing
// stored (no message text, no customer number, no secret). /healthz is the
// only open route.
func TestAuthMatrix(t *testing.T) {
	dir := t.TempDir()
	db := dir + "/auth.db"
	s := start(t, writeConfig(t, dir, options{}), db)
	s.healthy(t)

	// Store a message whose content must not leak.
	msgID, convID, mediaID := "01HZZZZZZZZZZZZZZZZZZZZZZZ", "01HZZZZZZZZZZZZZZZZZZZZZZY", "01HZZZZZZZZZZZZZZZZZZZZZZX"
	if s.routeExists(t, "POST", "/imchannel/message", authInbound) {
		code, body := s.do(t, "POST", "/imchannel/message", authInbound, infobipInbound("auth-secret-1", secretNumber, secretText), nil)
		require.Equal(t, 200, code, "%s", body)
		if s.routeExists(t, "GET", "/api/v1/messages?externalId=auth-secret-1", authAgent) {
			code, body := s.do(t, "GET", "/api/v1/messages?externalId=auth-secret-1", authAgent, nil, nil)
			require.Equal(t, 200, code, "%s", body)
			var got struct {
				Messages []struct{ ID, ConversationID string }
			}
			require.NoError(t, json.Unmarshal(body, &got))
			require.Len(t, got.Messages, 1)
			msgID, convID = got.Messages[0].ID, got.Messages[0].ConversationID
			require.Contains(t, string(body), secretText, "the agent sees the message")
		}
	}

	code, body := s.do(t, "GET", "/healthz", authNone, nil, nil)
	require.Equal(t, 200, code, "/healthz is open: %s", body)

	attempts := []auth{authNone, authWrongBasic, authWrongBearer, authInbound, authAPI, authAPIBasic, authAgent}
	leaks := []string{secretText, secretNumber, inboundPass, apiBearer, apiSecret, agentPass}
	tried := 0
	for _, rt := range allRoutes(msgID, convID, mediaID) {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			if rt.path != "/events" && !s.routeExists(t, rt.method, rt.path, rt.role) {
				t.Skipf("%s %s is not mounted", rt.method, rt.path)
			}
			for _, a := range attempts {
				if a == rt.role || (rt.role == authAPI && a == authAPIBasic) {
					continue
				}
				code, body := s.do(t, rt.method, rt.path, a, rt.body, nil)
				require.Equal(t, http.StatusUnauthorized, code, "%s %s with %s credentials: %s", rt.method, rt.path, a, body)
				for _, l := range leaks {
					require.NotContains(t, string(body), l, "401 body leaks %q", l)
				}
				if strings.HasPrefix(rt.path, "/api/") || rt.method == "POST" {
					require.Contains(t, string(body), `"error"`, "JSON routes answer 401 with a JSON error")
				}
				tried++
			}
		})
	}
	t.Logf("auth matrix: %d unauthorised attempts, all 401", tried)

	// Basic credentials of the right user with an empty or prefixed password.
	for _, pw := range []string{"", agentPass + "x", agentPass[:len(agentPass)-1], strings.ToUpper(agentPass)} {
		code, body := s.do(t, "GET", "/metrics", authNone, nil, map[string]string{"Authorization": basic(agentUser, pw)})
		require.Equal(t, 401, code, "password %q: %s", pw, body)
	}
	// A malformed Authorization header.
	for _, h := range []string{"Basic", "Basic !!!", "Bearer", "Bearer ", "basic " + agentPass, "Digest x"} {
		code, _ := s.do(t, "GET", "/metrics", authNone, nil, map[string]string{"Authorization": h})
		require.Equal(t, 401, code, "Authorization %q", h)
	}
	s.stop(t)
	check(t, db)
}

// TestTokenByAkSk: the token endpoint refuses wrong app credentials, and
// a token it issues opens the send API but no other route group.
func TestTokenByAkSk(t *testing.T) {
	dir := t.TempDir()
	s := start(t, writeConfig(t, dir, options{}), dir+"/tok.db")
	const path = "/apigovernance/api/oauth/tokenByAkSk"
	if !s.routeExists(t, "POST", path, authNone) {
		t.Skip("tokenByAkSk is not mounted")
	}
	for _, body := range []string{
		fmt.Sprintf(`{"app_key":%q,"app_secret":"wrong"}`, apiAppKey),
		fmt.Sprintf(`{"app_key":"wrong","app_secret":%q}`, apiSecret),
		`{"app_key":"","app_secret":""}`,
		fmt.Sprintf(`{"app_key":%q}`, apiAppKey),
	} {
		code, resp := s.do(t, "POST", path, authNone, []byte(body), nil)
		require.Equal(t, 401, code, "%s → %s", body, resp)
		require.NotContains(t, string(resp), "AccessToken")
	}
	code, resp := s.do(t, "POST", path, authNone, []byte(fmt.Sprintf(`{"app_key":%q,"app_secret":%q}`, apiAppKey, apiSecret)), nil)
	require.Equal(t, 200, code, "%s", resp)
	var tok struct{ AccessToken string }
	require.NoError(t, json.Unmarshal(resp, &tok))
	require.NotEmpty(t, tok.AccessToken)
	bearer := map[string]string{"Authorization": "Bearer " + tok.AccessToken, "x-app-key": apiAppKey}
	// The token is a send-API credential only.
	for _, p := range []string{"/metrics", "/api/v1/conversations", "/admin/backup"} {
		code, _ := s.do(t, "GET", p, authNone, nil, bearer)
		require.Equal(t, 401, code, "token on %s", p)
	}
	code, _ = s.do(t, "POST", "/imchannel/message", authNone, infobipInbound("tok-1", "31600000009", "x"), bearer)
	require.Equal(t, 401, code, "token on the inbound webhook")
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}
