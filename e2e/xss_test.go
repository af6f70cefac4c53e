package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

const chromium = "/usr/bin/chromium"

// xssPayloads each set window.__xss if they ever run.
var xssPayloads = []string{
	`<img src=x onerror="window.__xss='img'">`,
	`<script>window.__xss='script'</script>`,
	`"><svg onload="window.__xss='svg'">`,
	`'><iframe srcdoc="<script>parent.__xss='iframe'</script>"></iframe>`,
	`</title></textarea><body onload="window.__xss='body'">`,
	`javascript:window.__xss='href'`,
}

// TestXSSInBrowser stores hostile payloads in every field agents see that
// web/browser_test.go does not already cover (captions, file names, CM
// names and media titles, button titles, locations, contacts, outbound
// text and template file names) and opens the status page and each
// thread in headless Chromium: nothing runs, no element is injected, and
// the payloads are shown as text.
func TestXSSInBrowser(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the browser test, but there is no Chromium at %s", chromium)
		}
		t.Skip("no Chromium at " + chromium)
	}
	dir := t.TempDir()
	s := start(t, writeConfig(t, dir, options{}), dir+"/xss.db")
	s.healthy(t)
	if !s.routeExists(t, "GET", "/", authAgent) || !s.routeExists(t, "GET", "/api/v1/messages?externalId=x", authAgent) {
		t.Skip("status page not mounted")
	}

	post := func(path string, a auth, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		require.NoError(t, err)
		code, resp := s.do(t, "POST", path, a, b, nil)
		if strings.Contains(path, "sendExternalTemplate") && code == 400 {
			return // refusing a hostile file name is safe too
		}
		require.Equal(t, 200, code, "%s: %s", path, resp)
	}
	ib := func(id, from string, msg map[string]any, name string) {
		post("/imchannel/message", authInbound, map[string]any{"results": []any{map[string]any{
			"from": from, "to": "31100000000", "integrationType": "WHATSAPP", "receivedAt": "2024-05-01T10:00:00.000+0000",
			"messageId": id, "message": msg, "contact": map[string]any{"name": name}}}})
	}
	var ids []string
	for i, p := range xssPayloads {
		from := fmt.Sprintf("3164444%04d", i)
		id := func(k string) string { v := fmt.Sprintf("xss-%d-%s", i, k); ids = append(ids, v); return v }
		ib(id("text"), from, map[string]any{"type": "TEXT", "text": p}, p)
		ib(id("image"), from, map[string]any{"type": "IMAGE", "caption": p, "url": "http://127.0.0.1:9/" + p}, p)
		ib(id("doc"), from, map[string]any{"type": "DOCUMENT", "caption": p + ".pdf", "url": "http://127.0.0.1:9/d.pdf"}, p)
		ib(id("button"), from, map[string]any{"type": "INTERACTIVE_BUTTON_REPLY", "id": p, "title": p}, p)
		ib(id("loc"), from, map[string]any{"type": "LOCATION", "latitude": 51.6, "longitude": 4.7, "name": p, "address": p}, p)
		post("/webhooks/cm", authInbound, map[string]any{
			"reference": id("cm"), "from": map[string]any{"number": "+" + from, "name": p}, "to": map[string]any{"number": "+31100000000"},
			"message": map[string]any{"text": p, "media": map[string]any{"mediaUri": "http://127.0.0.1:9/x.pdf", "contentType": "application/pdf", "title": p + ".pdf"},
				"custom": map[string]any{}},
			"groupings": []string{"", "", ""}, "timeUtc": "2024-05-01T10:00:01", "channel": "WhatsApp"})
		post("/omni/1/advanced", authAPI, map[string]any{"destinations": []any{map[string]any{"messageId": id("out"), "to": map[string]any{"phoneNumber": from}}},
			"whatsApp": map[string]any{"text": p}})
		post("/livechat/default/sendExternalTemplateMessageToCtlivesocial", authAPI, map[string]any{
			"customerPhoneNumber": from, "servicePhoneNumber": "31100000000", "templateName": "t", "language": "en",
			"header":     map[string]any{"type": "document", "data": "JVBERi0xLjQK", "documentType": "pdf", "fileName": p + ".pdf"},
			"headerData": []string{}, "bodyData": []string{p}, "dynamicUrl": []string{p}})
	}

	convs := map[string]bool{}
	for _, id := range ids {
		code, body := s.do(t, "GET", "/api/v1/messages?externalId="+id, authAgent, nil, nil)
		require.Equal(t, 200, code, "%s", body)
		var got struct {
			Messages []struct{ ConversationID string }
		}
		require.NoError(t, json.Unmarshal(body, &got))
		require.Len(t, got.Messages, 1, id)
		convs[got.Messages[0].ConversationID] = true
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium-profile")))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	require.NoError(t, chromedp.Do(bctx), "start chromium")

	dialogs := make(chan string, 16)
	go func() {
		for ev, err := range chromedp.Events(bctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			dialogs <- ev.Message
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	_, err := chromedp.Call(bctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	_, err = chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": basic(agentUser, agentPass)}})
	require.NoError(t, err)

	pages := []string{"/"}
	for c := range convs {
		pages = append(pages, "/conversations/"+c)
	}
	injected := `window.__xss !== undefined || window.parent.__xss !== undefined ||
		document.querySelector('img[src="x"], svg[onload], iframe, body[onload], main script, a[href^="javascript:"]') !== null`
	for _, p := range pages {
		require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(s.base+p), chromedp.WaitReady(chromedp.CSS("body"))), p)
		ran, err := chromedp.Run(bctx, chromedp.Evaluate[bool](injected))
		require.NoError(t, err)
		require.False(t, ran, "%s: a payload ran or injected an element", p)
		text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
		require.NoError(t, err)
		if strings.HasPrefix(p, "/conversations/") {
			found := false
			for _, x := range xssPayloads {
				found = found || strings.Contains(text, x)
			}
			require.True(t, found, "%s: the payload is not shown as text", p)
		}
	}
	select {
	case d := <-dialogs:
		t.Fatalf("a dialog opened: %q", d)
	default:
	}
	t.Logf("xss: %d payloads × %d fields, %d pages opened in Chromium, nothing ran", len(xssPayloads), len(ids)/len(xssPayloads), len(pages))
}
