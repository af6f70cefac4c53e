package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	ctUser   = "ctlive"
	ctPass   = "ct-secret-1"
	ctSecret = "ct-hmac-secret"
)

// ctlive is a fake CTLive IM channel endpoint (docs/protocols.md#infobip-inbound): it checks the
// credentials and signature of every post, dedupes results by messageId
// the way CTLive does, and can be told to answer 503 or to hang (after
// storing the post, so the answer is lost but the messages are not).
type ctlive struct {
	srv         *httptest.Server
	*modeSwitch // ok, 503, hang

	mu      sync.Mutex
	posts   int
	badAuth int
	// byID is the first copy of each result; order is messageIds in the
	// order they first arrived; dups counts copies after the first.
	byID  map[string]map[string]any
	order []string
	dups  int
}

func newCTLive(t *testing.T) *ctlive {
	c := &ctlive{modeSwitch: newModeSwitch(), byID: map[string]map[string]any{}}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(func() {
		c.setMode("ok")
		c.srv.CloseClientConnections()
		c.srv.Close()
	})
	return c
}

func (c *ctlive) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	mode, hangc := c.answer()
	c.mu.Lock()
	c.posts++
	c.mu.Unlock()
	if mode == "503" {
		http.Error(w, `{"error":"down for maintenance"}`, http.StatusServiceUnavailable)
		return
	}
	u, p, ok := r.BasicAuth()
	mac := hmac.New(sha256.New, []byte(ctSecret))
	mac.Write([]byte(r.Header.Get("X-Imchannel-Timestamp") + "."))
	mac.Write(body)
	if !ok || u != ctUser || p != ctPass || r.Header.Get("X-Imchannel-Signature") != "v1="+hex.EncodeToString(mac.Sum(nil)) {
		c.mu.Lock()
		c.badAuth++
		c.mu.Unlock()
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var post struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(body, &post); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.record(post.Results)
	if mode == "hang" {
		// Stored, but the answer never comes: the relay must send these
		// again, and this side's dedupe must absorb them.
		select {
		case <-hangc:
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// record keeps the first copy of each result, as CTLive's dedupe does.
func (c *ctlive) record(results []map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, res := range results {
		id, _ := res["messageId"].(string)
		key := id
		if _, isReport := res["status"]; isReport {
			key = "report:" + id + ":" + res["status"].(map[string]any)["groupName"].(string)
		} else if _, isSeen := res["seenAt"]; isSeen {
			key = "seen:" + id
		}
		if _, dup := c.byID[key]; dup {
			c.dups++
			continue
		}
		c.byID[key] = res
		c.order = append(c.order, key)
	}
}

func (c *ctlive) has(keys ...string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if c.byID[k] == nil {
			return false
		}
	}
	return true
}

func (c *ctlive) missing(keys []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, k := range keys {
		if c.byID[k] == nil {
			out = append(out, k)
		}
	}
	return out
}

// assertEventually polls cond until it holds or d passes.
func assertEventually(cond func() bool, d time.Duration) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// freeAddr reserves a loopback port for a service whose public_url must be
// known before it starts (the relay's media URLs name it).
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startOn starts the service on addr with cfg (tryStart's port 0
// replaced by addr).
func startOn(t *testing.T, cfg, db, addr string) *svc {
	t.Helper()
	s, err := tryStart(t, cfg, db, func(cmd *exec.Cmd) {
		for i, a := range cmd.Args {
			if a == "127.0.0.1:0" {
				cmd.Args[i] = addr
			}
		}
	})
	require.NoError(t, err)
	return s
}

// TestRelayToCTLive: a fake CTLive behind the relay gets Infobip and CM
// messages in the IM channel format. It answers 503 for a while, then hangs, and
// the service is killed (SIGKILL) in the middle of that outage. After it
// recovers CTLive holds every message exactly once by messageId (its own
// dedupe counting the resends), in the order each customer sent them; the
// media URLs it got serve the bytes; reports for an agent's message come in
// the protocol's report shapes (docs/protocols.md#infobip-reports).
func TestRelayToCTLive(t *testing.T) {
	perPhase := 6
	if long() {
		perPhase = 60
	}
	ct := newCTLive(t)
	prov := newProvider(t)
	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write(imageBytes(r.URL.Path))
	}))
	t.Cleanup(media.Close)

	dir := t.TempDir()
	addr := freeAddr(t)
	o := options{allowPrivate: true, providerURL: prov.url(), extra: fmt.Sprintf(`
[[relay]]
name = "ctlive"
url = %q
format = "infobip"
basic_user = %q
basic_password = %q
hmac_secret = %q
timeout = "300ms"
max_backoff = "200ms"
`, ct.srv.URL+"/imchanne/message", ctUser, ctPass, ctSecret)}
	cfg := filepath.Join(dir, "imchannel.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(o.toml("http://"+addr)), 0o600))
	db := filepath.Join(dir, "relay.db")
	s := startOn(t, cfg, db, addr)
	s.healthy(t)
	defer s.dumpOnFailure(t)

	customers := []string{"31611000001", "31611000002", "31611000003"}
	sent := map[string][]string{} // customer → messageIds in the order sent
	var images []string
	post := func(s *svc, phase string, i int) {
		for ci, cust := range customers {
			n := len(sent[cust])
			var path string
			var body []byte
			var id string
			switch {
			case ci == 0: // an Infobip customer: texts, every third an image
				id = fmt.Sprintf("ib-%s-%d", phase, i)
				path, body = "/imchanne/message", infobipInbound(id, cust, fmt.Sprintf("text %d", n))
				if i%3 == 0 {
					body = infobipImage(id, cust, media.URL+"/"+id+".jpg")
					images = append(images, id)
				}
			default: // CM customers: texts, every third an image
				id = fmt.Sprintf("cm-%s-%d-%d", phase, ci, i)
				path, body = "/webhooks/cm", cmInbound(id, cust, fmt.Sprintf("text %d", n))
				if i%3 == 1 {
					body = cmImage(id, cust, media.URL+"/"+id+".jpg")
					images = append(images, id)
				}
			}
			code, b := s.do(t, "POST", path, authInbound, body, nil)
			require.Equal(t, 200, code, "%s: %s", id, b)
			sent[cust] = append(sent[cust], id)
		}
	}
	all := func() []string {
		var ids []string
		for _, c := range customers {
			ids = append(ids, sent[c]...)
		}
		return ids
	}

	// Phase 1: CTLive is up.
	for i := range perPhase {
		post(s, "up", i)
	}
	require.Eventually(t, func() bool { return ct.has(all()...) }, 30*time.Second, 10*time.Millisecond, "CTLive never got phase 1")

	// An agent's message and its reports (delivery and seen: docs/protocols.md#infobip-reports).
	code, b := s.do(t, "POST", "/omni/1/advanced", authAPI, sendAPI("ct-out-1", customers[0], "hello from the agent"), nil)
	require.Equal(t, 200, code, string(b))
	reports := []byte(`{"results":[{"bulkId":"","status":{"id":5,"groupId":3,"groupName":"DELIVERED","name":"DELIVERED_TO_HANDSET","description":"Message delivered to handset"},"messageId":"ct-out-1","doneAt":"2026-12-01T10:00:01.000+0000","sentAt":"2026-12-01T10:00:00.000+0000","to":"` + customers[0] + `","channel":"WHATSAPP"},
		{"messageId":"ct-out-1","to":"` + customers[0] + `","sentAt":"2026-12-01T10:00:00.000+0000","seenAt":"2026-12-01T10:00:02.000+0000"}]}`)
	code, b = s.do(t, "POST", "/imchanne/message", authInbound, reports, nil)
	require.Equal(t, 200, code, string(b))

	// Phase 2: 503s.
	ct.setMode("503")
	for i := range perPhase {
		post(s, "503", i)
	}
	require.Eventually(t, func() bool { return ct.attemptsIn("503") >= 3 }, 30*time.Second, 10*time.Millisecond, "the relay did not retry after 503s")

	// Phase 3: CTLive hangs past the relay's timeout; kill -9 meanwhile.
	ct.setMode("hang")
	for i := range perPhase {
		post(s, "hang", i)
	}
	require.Eventually(t, func() bool { return ct.attemptsIn("hang") >= 2 }, 30*time.Second, 10*time.Millisecond, "the relay never reached the hanging CTLive")
	s.kill()

	// Restart while CTLive still hangs, take more messages, then recover.
	s = startOn(t, cfg, db, addr)
	s.healthy(t)
	s.dumpOnFailure(t)
	for i := range perPhase {
		post(s, "after", i)
	}
	require.Eventually(t, func() bool { return ct.attemptsIn("hang") >= 3 }, 30*time.Second, 10*time.Millisecond, "the restarted relay did not resume")
	ct.setMode("ok")
	want := all()
	if !assertEventually(func() bool {
		return ct.has(want...) && ct.has("report:ct-out-1:DELIVERED", "seen:ct-out-1")
	}, 60*time.Second) {
		t.Fatalf("CTLive is missing %v after recovery\n%s", ct.missing(append(want, "report:ct-out-1:DELIVERED", "seen:ct-out-1")), relayLines(s))
	}

	// The status page and /metrics show the target, caught up.
	require.Eventually(t, func() bool {
		_, m := s.do(t, "GET", "/metrics", authAgent, nil, nil)
		return strings.Contains(string(m), `imchannel_relay_lag_events{target="ctlive"} 0`)
	}, 20*time.Second, 20*time.Millisecond, "the relay never showed as caught up")
	_, m := s.do(t, "GET", "/metrics", authAgent, nil, nil)
	for _, want := range []string{`imchannel_relay_delivered_total{target="ctlive"}`, `imchannel_relay_lag_seconds{target="ctlive"} 0`,
		`imchannel_relay_failures_total{kind="retry",target="ctlive"}`, `imchannel_relay_last_success_timestamp_seconds{target="ctlive"}`} {
		require.Contains(t, string(m), want)
	}
	code, page := s.do(t, "GET", "/", authAgent, nil, nil)
	require.Equal(t, 200, code)
	require.Contains(t, string(page), "Relay to CTLive")
	require.Contains(t, string(page), "0 events")
	ct.mu.Lock()
	defer ct.mu.Unlock()
	require.Zero(t, ct.badAuth, "every post carried the credentials and a valid signature")
	// Exactly once by messageId: every message sent, nothing else.
	var got []string
	for _, k := range ct.order {
		if !strings.Contains(k, ":") {
			got = append(got, k)
		}
	}
	require.ElementsMatch(t, want, got)
	t.Logf("%d messages, %d posts, %d duplicate results deduped by CTLive", len(want), ct.posts, ct.dups)
	require.Positive(t, ct.dups, "the posts CTLive stored but never answered were sent again")
	// In order per conversation.
	for _, cust := range customers {
		var arrived []string
		for _, k := range ct.order {
			if r := ct.byID[k]; r != nil && r["from"] == cust {
				arrived = append(arrived, k)
			}
		}
		require.Equal(t, sent[cust], arrived, "customer %s", cust)
	}
	// The IM channel shapes for both providers.
	ib := ct.byID["ib-up-1"]
	require.Equal(t, "WHATSAPP", ib["integrationType"])
	require.Equal(t, map[string]any{"type": "TEXT", "text": "text 1"}, ib["message"])
	require.Equal(t, map[string]any{"name": "Load Tester"}, ib["contact"])
	cm := ct.byID["cm-up-2-2"]
	require.Equal(t, customers[2], cm["from"])
	require.Equal(t, "31100000000", cm["to"])
	require.Equal(t, map[string]any{"type": "TEXT", "text": "text 2"}, cm["message"])
	require.Equal(t, map[string]any{"name": "CM Tester"}, cm["contact"])
	dr := ct.byID["report:ct-out-1:DELIVERED"]
	require.Equal(t, "DELIVERED_TO_HANDSET", dr["status"].(map[string]any)["name"])
	require.Equal(t, customers[0], dr["to"])
	require.Equal(t, "2026-12-01T10:00:02.000+0000", ct.byID["seen:ct-out-1"]["seenAt"])
	// The media URLs serve the bytes, without credentials, from imchannel.
	require.NotEmpty(t, images)
	for _, id := range images {
		msg := ct.byID[id]["message"].(map[string]any)
		require.Equal(t, "IMAGE", msg["type"], id)
		u := msg["url"].(string)
		require.True(t, strings.HasPrefix(u, "http://"+addr+"/media/public/"), "%s: %s", id, u)
		resp, err := client.Get(u)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, id)
		require.True(t, bytes.Equal(imageBytes("/"+id+".jpg"), b), "%s: the bytes served are the image's", id)
	}
	s.stop(t)
	check(t, db)
}

// TestEventsFeedAcrossRestart reads GET /api/v1/events while messages
// arrive, across a SIGKILL and a restart, resuming from "next": every
// stored message appears exactly once, cursors strictly increase with no
// gap, and a long poll is answered by the next message.
func TestEventsFeedAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "feed.db")
	cfg := writeConfig(t, dir, options{})
	s := start(t, cfg, db)
	s.healthy(t)
	defer s.dumpOnFailure(t)

	type event struct {
		Cursor  string `json:"cursor"`
		Type    string `json:"type"`
		Message *struct {
			ExternalID string `json:"externalId"`
		} `json:"message"`
	}
	next := ""
	var cursors []uint64
	seen := map[string]int{}
	read := func(s *svc, wait string) int {
		code, b := s.do(t, "GET", "/api/v1/events?limit=7&after="+next+wait, authAgent, nil, nil)
		require.Equal(t, 200, code, string(b))
		var p struct {
			Events []event `json:"events"`
			Next   string  `json:"next"`
		}
		require.NoError(t, json.Unmarshal(b, &p))
		for _, e := range p.Events {
			c, err := strconv.ParseUint(e.Cursor, 10, 64)
			require.NoError(t, err)
			cursors = append(cursors, c)
			if e.Type == "message.received" {
				seen[e.Message.ExternalID]++
			}
		}
		next = p.Next
		return len(p.Events)
	}
	drain := func(s *svc) {
		for read(s, "") > 0 {
		}
	}
	var ids []string
	send := func(s *svc, n int, tag string) {
		for i := range n {
			id := fmt.Sprintf("feed-%s-%d", tag, i)
			code, b := s.do(t, "POST", "/imchanne/message", authInbound, infobipInbound(id, "3161200000"+strconv.Itoa(i%3), "x"), nil)
			require.Equal(t, 200, code, string(b))
			ids = append(ids, id)
		}
	}
	send(s, 10, "a")
	read(s, "") // part of them
	send(s, 10, "b")
	s.kill()

	s = start(t, cfg, db)
	s.healthy(t)
	drain(s)
	// A long poll waiting for the next message.
	done := make(chan int, 1)
	go func() { done <- read(s, "&wait=30") }()
	send(s, 1, "c")
	select {
	case n := <-done:
		require.Positive(t, n)
	case <-time.After(40 * time.Second):
		t.Fatal("the long poll was not answered")
	}
	drain(s)

	for i, c := range cursors {
		require.Equal(t, uint64(i+1), c, "no gap, no repeat")
	}
	require.Len(t, seen, len(ids))
	for _, id := range ids {
		require.Equal(t, 1, seen[id], id)
	}
	s.stop(t)
}

// imageBytes is the fake image served under path: a JPEG header and the path.
func imageBytes(path string) []byte {
	return append([]byte("\xff\xd8\xff\xe0 fake jpeg "), path...)
}

func infobipImage(msgID, from, url string) []byte {
	b, _ := json.Marshal(map[string]any{"results": []any{map[string]any{
		"from": from, "to": "31100000000", "integrationType": "WHATSAPP",
		"receivedAt": "2024-05-01T10:00:00.000+0000", "messageId": msgID,
		"message": map[string]any{"type": "IMAGE", "caption": "a picture", "url": url},
	}}})
	return b
}

func cmImage(ref, from, url string) []byte {
	b, _ := json.Marshal(map[string]any{
		"reference": ref,
		"from":      map[string]any{"number": "+" + from, "name": "CM Tester"},
		"to":        map[string]any{"number": "+31100000000"},
		"message": map[string]any{"text": "a picture",
			"media":  map[string]any{"mediaUri": url, "contentType": "image/jpeg", "title": "pic.jpg"},
			"custom": map[string]any{}},
		"groupings": []string{"", "", ""},
		"timeUtc":   "2024-05-01T10:00:00",
		"channel":   "WhatsApp",
	})
	return b
}

// relayLines is the relay's part of the log, for failure messages.
func relayLines(s *svc) string {
	var keep []string
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, "component=relay") {
			keep = append(keep, l)
		}
	}
	if len(keep) > 60 {
		keep = keep[len(keep)-60:]
	}
	return strings.Join(keep, "\n")
}
