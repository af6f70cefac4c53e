package outbound_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

	// A key spelt in another case, or one seed 002 does not define, is not
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
