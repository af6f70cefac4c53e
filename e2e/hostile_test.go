package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hostileBody is one malicious or malformed body.
type hostileBody struct {
	name        string
	body        []byte
	contentType string
	// maybe2xx marks bodies that are odd but valid JSON of the right
	// shape for some routes (an escaped NUL in a text): any answer but a
	// 5xx is fine there; everything else must be a 4xx or a closed
	// connection.
	maybe2xx bool
}

func nested(depth int) []byte {
	return []byte(strings.Repeat(`{"a":[`, depth) + strings.Repeat(`]}`, depth))
}

func hostileBodies() []hostileBody {
	big := bytes.Repeat([]byte("A"), 10<<20)
	bigJSON := append(append([]byte(`{"results":[{"messageId":"big","message":{"type":"TEXT","text":"`), big...), []byte(`"}}]}`)...)
	hugeArray := []byte(`{"results":[` + strings.TrimSuffix(strings.Repeat(`{},`, 300000), ",") + `]}`)
	hugeDest := []byte(`{"destinations":[` + strings.TrimSuffix(strings.Repeat(`{"to":{}},`, 90000), ",") + `],"whatsApp":{"text":"x"}}`)
	return []hostileBody{
		{name: "empty", body: []byte{}},
		{name: "whitespace", body: []byte("   \n")},
		{name: "null", body: []byte("null")},
		{name: "array top-level", body: []byte("[]")},
		{name: "string top-level", body: []byte(`"x"`)},
		{name: "number top-level", body: []byte(`12`)},
		{name: "truncated", body: []byte(`{"results":[{"messageId":"x"`)},
		{name: "trailing garbage", body: []byte(`{"results":[]} {"x":1}`)},
		{name: "deeply nested object", body: nested(100000)},
		{name: "deeply nested array", body: []byte(strings.Repeat("[", 200000) + strings.Repeat("]", 200000))},
		{name: "deep inside results", body: []byte(`{"results":[{"messageId":"n1","message":` + string(nested(50000)) + `}]}`)},
		{name: "10 MB body", body: bigJSON},
		{name: "10 MB garbage", body: big},
		{name: "invalid UTF-8", body: []byte("{\"results\":[{\"from\":\"\xff\xfe\",\"messageId\":\"\xc3\x28\",\"message\":{\"type\":\"TEXT\",\"text\":\"\xed\xa0\x80\"}}]}")},
		{name: "raw NUL bytes", body: []byte("{\"results\":[{\"messageId\":\"a\x00b\",\"message\":{\"type\":\"TEXT\",\"text\":\"\x00\"}}]}")},
		{name: "escaped NUL in every field", body: []byte(`{"reference":"\u0000","from":{"number":"\u0000"},"results":[{"from":"\u0000","to":"\u0000","messageId":"\u0000","message":{"type":"\u0000","text":"\u0000"}}],"destinations":[{"messageId":"\u0000","to":{"phoneNumber":"\u0000"}}],"whatsApp":{"text":"\u0000"},"customerPhoneNumber":"\u0000"}`), maybe2xx: true},
		{name: "huge results array", body: hugeArray},
		{name: "huge destinations array", body: hugeDest},
		{name: "numbers as strings", body: []byte(`{"results":[{"from":"31600000000","to":"1","messageId":"n2","message":{"type":"LOCATION","latitude":"51.6","longitude":"4.7"}}],"destinations":[{"messageId":"n2","to":{"phoneNumber":"31600000000"}}],"whatsApp":{"longitude":"4.7","latitude":"91"},"message":{"custom":{"location":{"latitude":"x","longitude":"y"}}}}`), maybe2xx: true},
		{name: "strings as numbers", body: []byte(`{"results":[{"from":31600000000,"to":1,"messageId":12,"message":{"type":1,"text":2}}],"destinations":[{"messageId":3,"to":{"phoneNumber":31600000000}}],"whatsApp":{"text":4},"reference":5,"from":{"number":6},"customerPhoneNumber":7,"templateName":8,"bodyData":[9]}`)},
		{name: "objects for strings", body: []byte(`{"results":[{"from":{},"to":[],"messageId":{"$ne":null},"message":[]}],"destinations":{},"whatsApp":[],"reference":{},"messages":[],"customerPhoneNumber":{},"bodyData":{}}`)},
		{name: "huge number", body: []byte(`{"results":[{"from":"1","messageId":"n3","message":{"type":"LOCATION","latitude":1e999999,"longitude":-1e400}}],"whatsApp":{"latitude":1e999,"longitude":1e999},"destinations":[{"messageId":"n3","to":{"phoneNumber":"1"}}]}`)},
		{name: "path traversal ids", body: []byte(`{"results":[{"from":"../../etc/passwd","to":"..\\..\\x","messageId":"../../../etc/passwd","message":{"type":"IMAGE","url":"file:///etc/passwd","caption":"../x"}}],"reference":"../../etc","destinations":[{"messageId":"../../x","to":{"phoneNumber":"../1"}}],"whatsApp":{"imageUrl":"file:///etc/passwd"}}`), maybe2xx: true},
		{name: "header injection in ids", body: []byte(`{"results":[{"from":"3161\r\nX-Injected: 1","to":"1","messageId":"hi\r\nSet-Cookie: a=b","message":{"type":"TEXT","text":"x\r\n\r\n<script>"}}],"reference":"r\r\nX-Injected: 1","destinations":[{"messageId":"d\r\nX-Injected: 1","to":{"phoneNumber":"1\r\n"}}],"whatsApp":{"text":"\r\n"}}`), maybe2xx: true},
		{name: "duplicate keys", body: []byte(`{"results":[],"results":[{"messageId":"dup"}],"results":null}`)},
		{name: "form content type", body: []byte("results=1&messageId=2"), contentType: "application/x-www-form-urlencoded"},
		{name: "multipart content type", body: []byte("--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n"), contentType: "multipart/form-data; boundary=x"},
		{name: "year-0 sendAt", body: []byte(`{"destinations":[{"messageId":"y0","to":{"phoneNumber":"41793026727"}}],"whatsApp":{"text":"x"},"sendAt":"0000-01-01T00:30:00+01:00"}`)},
		{name: "case-twin keys", body: []byte(`{"results":[],"destinations":[{"messageId":"tw","to":{"phoneNumber":"41793026727"}}],"whatsApp":{"imageUrl":"https://x.example/p.exe","imageurl":"https://x.example/ok.png"},"customerPhoneNumber":"1","CustomerPhoneNumber":"2","app_key":"a","APP_KEY":"b"}`), maybe2xx: true},
		{name: "xml", body: []byte(`<?xml version="1.0"?><results><messageId>x</messageId></results>`), contentType: "application/xml"},
	}
}

// inboundWebhook reports whether path is a provider webhook.
func inboundWebhook(path string) bool {
	switch path {
	case "/imchanne/message", "/imchannel/message", "/webhooks/cm", "/webhooks/cm/status":
		return true
	}
	return false
}

// postRoutes are the routes that take a body, each with its credentials.
func postRoutes() []route {
	var out []route
	for _, r := range allRoutes("x", "x", "x") {
		if r.method == "POST" {
			out = append(out, r)
		}
	}
	return append(out, route{"POST", "/apigovernance/api/oauth/tokenByAkSk", authNone, nil})
}

// hostileIDs are odd path segments and query values for the id routes.
var hostileIDs = []string{
	"..%2F..%2Fetc%2Fpasswd", "..", "%2e%2e", "%00", "a%00b", "%ff%fe", "%0d%0aX-Injected:%201",
	"%3Cscript%3Ealert(1)%3C%2Fscript%3E", strings.Repeat("A", 4000), "01HZZZZZZZZZZZZZZZZZZZZZZZ", "'%20OR%201=1--", "%25", "%E2%80%AE",
}

// TestHostileInput sends every hostile body to every route that takes one
// and every odd id to every route that takes one, then requires the
// service to be up and the message stored before to be intact.
func TestHostileInput(t *testing.T) {
	dir := t.TempDir()
	db := dir + "/hostile.db"
	s := start(t, writeConfig(t, dir, options{headerTimeout: "1s", readTimeout: "3s"}), db)
	s.healthy(t)

	hasInbound := s.routeExists(t, "POST", "/imchannel/message", authInbound)
	if hasInbound {
		code, body := s.do(t, "POST", "/imchannel/message", authInbound, infobipInbound("kept-1", "31612340000", "stored before the attack"), nil)
		require.Equal(t, 200, code, "%s", body)
	}

	cases := 0
	for _, rt := range postRoutes() {
		if !s.routeExists(t, rt.method, rt.path, rt.role) {
			t.Logf("skip %s %s: not mounted", rt.method, rt.path)
			continue
		}
		for _, hb := range hostileBodies() {
			ct := hb.contentType
			if ct == "" {
				ct = "application/json"
			}
			code, body, err := s.try(context.Background(), "POST", rt.path, rt.role, hb.body, map[string]string{"Content-Type": ct})
			cases++
			if err != nil {
				// A closed connection is a fine answer to a 10 MB body.
				require.True(t, s.alive(), "%s %s: %v: process died\n%s", rt.path, hb.name, err, s.logs.String())
				continue
			}
			ok := code >= 400 && code < 500
			if hb.maybe2xx {
				ok = code < 500
			}
			if code == 200 && inboundWebhook(rt.path) {
				// Inside a valid JSON post, what cannot be understood is
				// quarantined and answered 2xx (docs/providers.md#the-quarantine): a refusal
				// would only be resent until the provider drops it.
				var a struct{ Quarantined, Ignored int }
				ok = json.Unmarshal(body, &a) == nil && (a.Quarantined > 0 || a.Ignored > 0 || hb.maybe2xx)
			}
			require.True(t, ok, "%s ← %s: status %d: %.300s", rt.path, hb.name, code, body)
			if code >= 400 {
				require.True(t, json.Valid(body) && bytes.Contains(bytes.ToLower(body), []byte("error")),
					"%s ← %s: a %d must carry a JSON error, got %.300s", rt.path, hb.name, code, body)
			}
		}
	}
	for _, id := range hostileIDs {
		for _, p := range []string{"/api/v1/messages/" + id, "/api/v1/conversations/" + id, "/fragments/messages/" + id, "/media/public/" + id, "/static/" + id + "/" + id, "/api/v1/conversations/" + id + "/messages", "/conversations/" + id,
			"/media/" + id, "/api/v1/messages?externalId=" + id, "/api/v1/conversations?q=" + id + "&limit=" + id + "&cursor=" + id,
			"/api/v1/conversations/x/messages?limit=-1&before=" + id} {
			code, body, err := s.try(context.Background(), "GET", p, authAgent, nil, nil)
			cases++
			require.NoError(t, err, p)
			require.Less(t, code, 500, "GET %s: %.300s", p, body)
			require.NotContains(t, string(body), "root:x:0:0", "GET %s reads a file", p)
		}
		code, body, err := s.try(context.Background(), "DELETE", "/media/"+id, authAgent, nil, nil)
		require.NoError(t, err)
		require.Less(t, code, 500, "DELETE /media/%s: %s", id, body)
		// An id in the template route's {domain}.
		code, body, err = s.try(context.Background(), "POST", "/livechat/"+id+"/sendExternalTemplateMessageToCtlivesocial", authAPI, []byte(`{}`), nil)
		require.NoError(t, err)
		require.Less(t, code, 500, "template with domain %s: %s", id, body)
		cases += 2
	}

	// Response headers never carry request data (header injection).
	for _, p := range []string{"/api/v1/messages?externalId=%0d%0aX-Injected:%201", "/livechat/%0d%0aX-Injected:1/sendExternalTemplateMessageToCtlivesocial"} {
		req := mustReq(t, "GET", s.base+p)
		authAgent.apply(req)
		resp, err := client.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Empty(t, resp.Header.Get("X-Injected"), p)
		cases++
	}

	// A header block over max_header_bytes gets 431.
	code, _, err := s.try(context.Background(), "GET", "/healthz", authNone, nil, map[string]string{"X-Big": strings.Repeat("b", 64<<10)})
	if err == nil {
		require.Equal(t, 431, code, "oversized headers")
	}
	cases++

	// Slow clients are cut off.
	slowloris(t, s)
	slowBody(t, s, hasInbound)
	cases += 2

	t.Logf("hostile input: %d cases, no 5xx, service up", cases)
	s.healthy(t)
	s.stop(t)
	check(t, db)
	if hasInbound {
		st := openStopped(t, db)
		msgs, err := st.MessagesByExternalID("kept-1")
		require.NoError(t, err)
		require.Len(t, msgs, 1, "the message stored before the attack is still there")
		require.Equal(t, "stored before the attack", msgs[0].Text)
	}
	require.NotContains(t, s.logs.String(), "panic serving request", "a handler panicked")
}

// slowloris opens a connection and sends a header byte every 300ms: the
// server's read_header_timeout (1s here) must close it well before it
// finishes, and healthz keeps answering meanwhile.
func slowloris(t *testing.T, s *svc) {
	t.Helper()
	conn, err := net.Dial("tcp", s.addr)
	require.NoError(t, err)
	defer conn.Close()
	startT := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		for i := 0; i < 200; i++ {
			if _, err := fmt.Fprintf(conn, "X-%d: %d\r\n", i, i); err != nil {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		buf := make([]byte, 512)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err := conn.Read(buf); err != nil {
				break
			}
		}
		closed <- time.Since(startT)
	}()
	s.healthy(t)
	select {
	case d := <-closed:
		require.Less(t, d, 30*time.Second, "slowloris connection held for %s", d)
	case <-time.After(45 * time.Second):
		t.Fatal("slowloris connection was never closed")
	}
}

// slowBody sends complete headers and then trickles the body: read_timeout
// (3s) must end the request.
func slowBody(t *testing.T, s *svc, hasInbound bool) {
	t.Helper()
	if !hasInbound {
		return
	}
	conn, err := net.Dial("tcp", s.addr)
	require.NoError(t, err)
	defer conn.Close()
	startT := time.Now()
	_, err = fmt.Fprintf(conn, "POST /imchannel/message HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", basic(inboundUser, inboundPass))
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			if _, err := io.WriteString(conn, " "); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(40 * time.Second))
	resp, _ := io.ReadAll(conn)
	d := time.Since(startT)
	require.Less(t, d, 30*time.Second, "slow body held the connection for %s", d)
	if len(resp) > 0 {
		require.True(t, bytes.HasPrefix(resp, []byte("HTTP/1.1 4")), "slow body answer: %.200s", resp)
	}
	_ = conn.Close()
	<-done
}
