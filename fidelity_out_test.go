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

// requestOf reads the "request" of a testdata/outbound or testdata/template
// case (the shapes of docs/protocols.md#omni-send and #template-endpoint).
func requestOf(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var c struct {
		Request json.RawMessage `json:"request"`
	}
	if json.Unmarshal(b, &c) == nil && len(c.Request) > 0 {
		return c.Request
	}
	return b // testdata/template files are the request itself
}

// TestSentIsVisible: what was sent shows in the message JSON and on the
// thread page: media by its source URL, templates with their values.
func TestSentIsVisible(t *testing.T) {
	e := opsNewEnv(t, func(c *config.Config) {
		c.API = config.API{BearerToken: "send-token", TokenTTL: config.Duration{Duration: time.Hour}}
		c.Provider.DefaultNumber = "31100000000"
		c.Outbox.CheckWindow = false
	})
	api := func(r *http.Request) { r.Header.Set("Authorization", "Bearer send-token") }
	for _, f := range []string{"image", "document", "audio", "video", "media_template", "template"} {
		status, b := e.do(t, "POST", "/omni/1/advanced", requestOf(t, "testdata/outbound/"+f+".json"), api)
		require.Equal(t, 200, status, "%s: %s", f, b)
	}
	status, b := e.do(t, "POST", "/livechat/default/sendExternalTemplateMessageToCtlivesocial", requestOf(t, "testdata/template/header_image.json"), api)
	require.Equal(t, 200, status, "%s", b)

	type media struct {
		ID          string `json:"id"`
		SourceURL   string `json:"sourceUrl"`
		ContentType string `json:"contentType"`
		FileName    string `json:"fileName"`
		State       string `json:"state"`
	}
	get := func(ext string) (map[string]json.RawMessage, string) {
		status, b := e.do(t, "GET", "/api/v1/messages?externalId="+ext, nil, asAgent)
		require.Equal(t, 200, status, "%s", b)
		var ans struct {
			Messages []map[string]json.RawMessage `json:"messages"`
		}
		require.NoError(t, json.Unmarshal(b, &ans))
		require.Len(t, ans.Messages, 1, "%s", b)
		var conv string
		require.NoError(t, json.Unmarshal(ans.Messages[0]["conversationId"], &conv))
		return ans.Messages[0], conv
	}
	for ext, want := range map[string]media{
		"msg-image": {SourceURL: "https://cdn.example.com/img/offer.JPG", ContentType: "image/jpeg"},
		"msg-doc":   {SourceURL: "https://www.documentUrl.com/terms.pdf", ContentType: "application/pdf", FileName: "File caption"},
		"msg-audio": {SourceURL: "https://cdn.example.com/voice/note.aac", ContentType: "audio/aac"},
		"msg-video": {SourceURL: "https://cdn.example.com/v/clip.mp4?sig=abc", ContentType: "video/mp4"},
	} {
		m, _ := get(ext)
		var got media
		require.NoError(t, json.Unmarshal(m["media"], &got), ext)
		require.Equal(t, want, got, "%s: the media we sent, by its URL (no cached copy: no id, no state)", ext)
	}

	m, conv := get("msg-mt")
	require.JSONEq(t, `{"name":"ticket_ready","language":"en",
		"header":{"type":"image","mediaUrl":"https://cdn.example.com/banner.png"},
		"bodyParameters":["Frank","#4711"],
		"buttons":[{"index":0,"type":"url","parameter":"tickets/4711"},{"index":1,"type":"quick_reply","parameter":"STOP"}]}`, string(m["template"]))
	m, _ = get("46dbab11-f9cc-4d32-852b-cbba988b7d08")
	require.JSONEq(t, `{"name":"order_update","language":"en_GB","bodyParameters":["Frank","5"]}`, string(m["template"]))

	status, page := e.do(t, "GET", "/conversations/"+conv, nil, asAgent)
	require.Equal(t, 200, status)
	for _, s := range []string{"ticket_ready", "tickets/4711", "quick_reply: STOP", "#4711", "https://cdn.example.com/banner.png",
		"https://www.documentUrl.com/terms.pdf", "File caption", "https://cdn.example.com/voice/note.aac"} {
		require.Contains(t, string(page), s)
	}

	// The template endpoint's hosted header is shown through the agents'
	// media route, not the provider's capability URL.
	status, b = e.do(t, "GET", "/api/v1/conversations", nil, asAgent)
	require.Equal(t, 200, status)
	var convs struct {
		Conversations []struct {
			ID       string `json:"id"`
			Business string `json:"business"`
		} `json:"conversations"`
	}
	require.NoError(t, json.Unmarshal(b, &convs))
	var found bool
	for _, c := range convs.Conversations {
		status, b := e.do(t, "GET", "/api/v1/conversations/"+c.ID+"/messages", nil, asAgent)
		require.Equal(t, 200, status)
		var ms struct {
			Messages []struct {
				Template *struct {
					Name   string `json:"name"`
					Header struct {
						Type     string `json:"type"`
						MediaURL string `json:"mediaUrl"`
						MediaID  string `json:"mediaId"`
						FileName string `json:"fileName"`
					} `json:"header"`
				} `json:"template"`
			} `json:"messages"`
		}
		require.NoError(t, json.Unmarshal(b, &ms))
		for _, x := range ms.Messages {
			if x.Template != nil && x.Template.Name == "promo" {
				found = true
				require.Equal(t, "image", x.Template.Header.Type)
				require.Equal(t, "/media/"+x.Template.Header.MediaID, x.Template.Header.MediaURL)
				require.Equal(t, "promo.png", x.Template.Header.FileName)
			}
		}
	}
	require.True(t, found, "the seed 001 template with a hosted header")
}
