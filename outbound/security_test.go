package outbound_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"imchannel/store"
)

// Issue 13 item 6: every time the API accepts passes one range check; one
// out of range is a 400 naming the field, never a 500 (a year-0 sendAt
// used to fail the store's write).
func TestSendAtRange(t *testing.T) {
	e := newEnv(t, testConfig("infobip", "http://127.0.0.1:1/unused"), nil)
	dest := `"destinations":[{"messageId":"r-1","to":{"phoneNumber":"41793026727"}}]`
	for _, at := range []string{
		"0000-01-01T00:30:00+01:00", // year -1 in UTC: the red team's case
		"0000-01-01T00:00:00Z",
		"0001-01-01T00:00:00.000+0000",
		"1969-12-31T23:59:59Z",
		"9999-12-31T23:30:00-01:00", // year 10000 in UTC
		"9999-12-31T23:59:59Z",
	} {
		t.Run(at, func(t *testing.T) {
			status, _, b := e.post(sendPath, `{`+dest+`,"whatsApp":{"text":"x"},"sendAt":"`+at+`"}`, okAuth)
			require.Equal(t, http.StatusBadRequest, status, "%s", b)
			msg := errorOf(t, b)
			require.Contains(t, msg, "sendAt")
			require.Contains(t, msg, "out of range")
			require.Equal(t, 0, e.outboxDepth())
		})
	}
	// A past time in range is "send now", as before.
	status, _, b := e.post(sendPath, `{`+dest+`,"whatsApp":{"text":"x"},"sendAt":"2019-07-19T11:21:27.861+0000"}`, okAuth)
	require.Equal(t, http.StatusOK, status, "%s", b)
}

// Issue 13 item 7: keys that differ only in case are refused at every
// level, on both send routes; what is forwarded is the validated object.
func TestCaseTwinKeys(t *testing.T) {
	prov := newFake(t, infobipOK)
	e := newEnv(t, testConfig("infobip", prov.URL+"/omni/1/advanced"), prov)
	dest := `"destinations":[{"messageId":"%s","to":{"phoneNumber":"41793026727"}}]`
	for _, c := range []struct{ name, body, want string }{
		{"imageUrl twins", `{` + dest + `,"whatsApp":{"imageUrl":"https://x.example/p.exe","imageurl":"https://x.example/ok.png"}}`, `whatsApp.imageUrl is given twice (as "imageUrl" and "imageurl")`},
		{"twins, valid one first", `{` + dest + `,"whatsApp":{"imageurl":"https://x.example/ok.png","ImageUrl":"https://x.example/p.exe"}}`, "whatsApp.imageurl is given twice"},
		{"header twins", `{` + dest + `,"whatsApp":{"templateName":"t","mediaTemplateData":{"header":{"imageUrl":"https://x.example/ok.png","IMAGEURL":"https://x.example/p.exe"}}}}`, "whatsApp.mediaTemplateData.header.imageUrl is given twice"},
		{"mediaTemplateData twins", `{` + dest + `,"whatsApp":{"templateName":"t","mediaTemplateData":{"body":{"placeholders":[]}},"mediatemplatedata":{"header":{"imageUrl":"https://x.example/p.exe"}}}}`, "whatsApp.mediaTemplateData is given twice"},
		{"whatsApp twins", `{` + dest + `,"whatsApp":{"text":"a"},"WhatsApp":{"imageUrl":"https://x.example/p.exe"}}`, "whatsApp is given twice"},
		{"destination twins", `{"destinations":[{"messageId":"%s","to":{"phoneNumber":"41793026727","PHONENUMBER":"31612345678"}}],"whatsApp":{"text":"a"}}`, "destinations[0].to.phoneNumber is given twice"},
		{"exact repeat", `{` + dest + `,"whatsApp":{"text":"a","text":"b"}}`, "whatsApp.text is given twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := e.post(sendPath, fmt.Sprintf(c.body, "twin-"+c.name), okAuth)
			require.Equal(t, http.StatusBadRequest, status, "%s", b)
			require.Contains(t, errorOf(t, b), c.want)
			require.Equal(t, 0, e.outboxDepth())
		})
	}
	t.Run("template endpoint", func(t *testing.T) {
		body := strings.Replace(seed001, `"templateName": "shipping_confirmation",`, `"templateName": "shipping_confirmation", "TemplateName": "other",`, 1)
		status, _, b := e.post(templatePath, body, okAuth)
		require.Equal(t, http.StatusBadRequest, status, "%s", b)
		require.Contains(t, string(b), "templateName is given twice")
		require.Contains(t, string(b), `"result":false`)
	})

	// A key spelt in another case, or one CEC's send API (docs/protocols.md#omni-send) does not define, is not
	// forwarded as sent: the provider gets exactly the validated object.
	e.dispatch()
	e.send(map[string]any{
		"destinations": []any{map[string]any{"messageId": "fwd-1", "to": map[string]any{"phoneNumber": "41793026727"}}},
		"whatsApp": map[string]any{"IMAGEURL": "https://x.example/ok.png", "text": "caption", "extra": "https://x.example/p.exe",
			"mediaTemplateData": nil},
	})
	reqs := prov.waitRequests(t, 1)
	var got struct {
		WhatsApp map[string]any `json:"whatsApp"`
	}
	require.NoError(t, json.Unmarshal(reqs[0].Body, &got))
	require.Equal(t, map[string]any{"imageUrl": "https://x.example/ok.png", "text": "caption"}, got.WhatsApp)
}

// Issue 13 item 1: tokenByAkSk answers before it knows the caller, so a
// declared body beyond a small limit is refused at once, unread; the send
// routes check credentials before reading a body.
func TestBodyRefusedBeforeReading(t *testing.T) {
	e := newEnv(t, testConfig("infobip", "http://127.0.0.1:1/unused"), nil)
	addr := strings.TrimPrefix(e.api.URL, "http://")
	for _, c := range []struct {
		name, path, auth string
		length           int
		want             string
	}{
		{"token, 1 MiB declared", "/apigovernance/api/oauth/tokenByAkSk", "", 1<<20 - 20, "413"},
		{"token, 5 KiB declared", "/apigovernance/api/oauth/tokenByAkSk", "", 5 << 10, "413"},
		{"send, no credentials", sendPath, "", 1<<20 - 20, "401"},
		{"send, credentials, over the limit", sendPath, "Bearer " + staticToken + "\r\nx-app-key: " + appKey, 2 << 20, "413"},
		{"template, no credentials", templatePath, "", 20 << 20, "401"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer conn.Close()
			hdr := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", c.path, addr, c.length)
			if c.auth != "" {
				hdr += "Authorization: " + c.auth + "\r\n"
			}
			// Headers and a first few bytes; the rest is held back, as the
			// red team's 800 connections did.
			_, err = io.WriteString(conn, hdr+"\r\n{\"app_key\":")
			require.NoError(t, err)
			// The answer comes without the body: a server that waited for
			// it would hold this connection until read_timeout instead.
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
			buf := make([]byte, 512)
			n, err := conn.Read(buf)
			require.NoError(t, err, "no answer before the body was sent")
			require.True(t, strings.HasPrefix(string(buf[:n]), "HTTP/1.1 "+c.want), "%s", buf[:n])
		})
	}
}

// tokenWith asks tokenByAkSk for a token with an X-Token-Expire header.
func (e *env) tokenWith(expire string) (int, http.Header, map[string]string) {
	e.t.Helper()
	status, h, b := e.post("/apigovernance/api/oauth/tokenByAkSk", map[string]string{"app_key": appKey, "app_secret": appSecret},
		func(r *http.Request) {
			if expire != "" {
				r.Header.Set("X-Token-Expire", expire)
			}
		})
	var out map[string]string
	_ = json.Unmarshal(b, &out)
	if status != 200 {
		out = map[string]string{"error": string(b)}
	}
	return status, h, out
}

// Issue 12 item 8: tokenByAkSk honours X-Token-Expire (capped by
// api.token_ttl, at most 3600), answers CreateTime in seconds, and carries
// Scope, AppKey and UserID as Huawei CEC's page shows them.
func TestTokenByAkSkAnswer(t *testing.T) {
	clk := &clock{}
	cfg := testConfig("infobip", "http://127.0.0.1:1/unused")
	cfg.API.TokenTTL.Duration = 30 * time.Minute
	e := newEnv(t, cfg, nil)
	e.now = clk.now
	e.close()
	e.open()

	for _, c := range []struct{ expire, want string }{
		{"", "1800"}, {"600", "600"}, {" 60 ", "60"}, {"3600", "1800"}, {"86400", "1800"},
	} {
		status, h, tok := e.tokenWith(c.expire)
		require.Equal(t, 200, status, "%v", tok)
		require.Equal(t, c.want, tok["Expires"], "X-Token-Expire %q", c.expire)
		require.Equal(t, c.want, h.Get("X-Token-Expire"))
		created, err := time.Parse(time.RFC3339, "2006-01-02T15:04:05Z")
		require.NoError(t, err)
		require.Len(t, tok["CreateTime"], 10, "unix seconds, not milliseconds: %s", tok["CreateTime"])
		var secs int64
		_, err = fmt.Sscan(tok["CreateTime"], &secs)
		require.NoError(t, err)
		require.InDelta(t, clk.now().Unix(), secs, 5)
		require.True(t, time.Unix(secs, 0).After(created))
		require.Equal(t, appKey, tok["AppKey"])
		require.Equal(t, "Anonymous", tok["UserID"])
		require.Len(t, tok["Scope"], 32)
		require.Equal(t, "Bearer", tok["ApplyType"])
	}
	for _, bad := range []string{"abc", "0", "-5", "1e3"} {
		status, _, out := e.tokenWith(bad)
		require.Equal(t, 400, status, "X-Token-Expire %q", bad)
		require.Contains(t, out["error"], "X-Token-Expire")
	}

	// A 60-second token works for 60 seconds.
	_, _, tok := e.tokenWith("60")
	id := 0
	send := func() int {
		id++
		status, _, _ := e.post(sendPath, text(fmt.Sprintf("ttl-%d", id), "41793026727", "x"), bearer(tok["AccessToken"], appKey))
		return status
	}
	require.Equal(t, 200, send())
	clk.add(59 * time.Second)
	require.Equal(t, 200, send())
	clk.add(2 * time.Second)
	require.Equal(t, 401, send(), "expired after X-Token-Expire seconds")
}

// Issue 13 item 8: an issued token is bound to the app key and secret that
// issued it; after the secret changes (and a restart) it no longer opens
// the send API.
func TestTokenBoundToCredentials(t *testing.T) {
	cfg := testConfig("infobip", "http://127.0.0.1:1/unused")
	e := newEnv(t, cfg, nil)
	_, _, tok := e.token(appKey, appSecret)
	issued := bearer(tok["AccessToken"], appKey)
	n := 0
	send := func() int {
		n++
		status, _, _ := e.post(sendPath, text(fmt.Sprintf("bind-%d", n), "41793026727", "x"), issued)
		return status
	}
	require.Equal(t, 200, send())

	e.close()
	e.open()
	require.Equal(t, 200, send(), "same credentials: the token survives a restart")

	e.close()
	e.cfg.API.AppSecret = "rotated-secret"
	e.open()
	require.Equal(t, 401, send(), "the secret changed: the old token is revoked")
	status, _, _ := e.post(sendPath, text("bind-static", "41793026727", "x"), okAuth)
	require.Equal(t, 200, status, "the static bearer token is configuration, not issued: it keeps working")

	e.close()
	e.cfg.API.AppSecret = appSecret
	e.cfg.API.AppKey = "other-key"
	e.open()
	require.Equal(t, 401, send(), "the app key changed")

	// With an HMAC key the fingerprint is keyed: the database alone does
	// not let anyone test guesses of the secret.
	e.close()
	e.cfg.API.AppKey = appKey
	e.hmacKey = []byte("0123456789abcdef0123456789abcdef")
	e.open()
	require.Equal(t, 401, send(), "issued under another HMAC key")
	_, _, tok = e.token(appKey, appSecret)
	issued = bearer(tok["AccessToken"], appKey)
	require.Equal(t, 200, send())
}

// Issue 13 item 9: the template endpoint stores a hosted header and its
// message in one transaction: the header names its message as owner, and
// the file passes check (which reports hosted media nothing uses).
func TestTemplateHeaderStoredWithItsMessage(t *testing.T) {
	e := newEnv(t, testConfig("infobip", "http://127.0.0.1:1/unused"), nil)
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{9}, 2000)...)
	body := strings.Replace(seed001, `"header": null`, `"header": {"type":"IMAGE","data":"`+base64.StdEncoding.EncodeToString(png)+`","documentType":"png","fileName":"banner.png"}`, 1)
	body = strings.Replace(body, `"headerData": ["Griffin"]`, `"headerData": []`, 1)
	status, _, b := e.post(templatePath, body, okAuth)
	require.Equal(t, 200, status, "%s", b)
	var msg *store.Message
	require.NoError(t, e.st.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("messages")).ForEach(func(_, v []byte) error {
			var m store.Message
			if json.Unmarshal(v, &m) == nil && m.Outbound != nil && m.Outbound.HeaderMedia != "" {
				msg = &m
			}
			return nil
		})
	}))
	require.NotNil(t, msg)
	md, err := e.st.Media(msg.Outbound.HeaderMedia)
	require.NoError(t, err)
	require.Equal(t, msg.ID, md.MessageID, "the hosted header was stored with its message")
	require.Empty(t, e.st.Check())
}
