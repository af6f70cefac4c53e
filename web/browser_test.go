package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

const chromiumPath = "/usr/bin/chromium"

// xssName and xssText are what a hostile customer sends; the page must show
// them as text and run nothing.
const (
	xssName = `<img src=x onerror="window.__xss=1;alert(1)">`
	xssText = `<script>window.__xss=2;alert('x')</script> &amp; مرحبا 👋🏽`
)

// TestBrowser starts the built binary, fills it through the real webhooks
// and the send API, and looks at the pages in headless Chromium the way an
// agent would.
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed (CI installs it)", chromiumPath)
		}
		t.Fatalf("CI must run the browser test, but %s is missing: %v", chromiumPath, err)
	}
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// The binary, built as users build it.
	bin := filepath.Join(dir, "imchannel")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "imchannel")
	build.Dir = ".."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	// The media origin and the provider the dispatcher sends to.
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/receipt.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(testPNG(t))
		case "/omni/1/advanced":
			var req struct {
				Destinations []struct {
					MessageID string `json:"messageId"`
					To        struct {
						PhoneNumber string `json:"phoneNumber"`
					} `json:"to"`
				} `json:"destinations"`
			}
			_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req)
			type msg struct {
				To        map[string]string `json:"to"`
				Status    map[string]any    `json:"status"`
				MessageID string            `json:"messageId"`
			}
			var ms []msg
			for _, d := range req.Destinations {
				ms = append(ms, msg{To: map[string]string{"phoneNumber": d.To.PhoneNumber}, MessageID: d.MessageID,
					Status: map[string]any{"groupId": 1, "groupName": "PENDING", "id": 7, "name": "PENDING_ENROUTE", "description": "Message sent to next instance"}})
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"messages": ms})
		default:
			http.NotFound(w, r)
		}
	}))
	defer origin.Close()

	cfgText := func(addr string) []byte {
		return []byte(fmt.Sprintf(`
addr = %q
db = %q
[inbound]
basic_user = "provider"
basic_password = "provider-pass"
[api]
bearer_token = "api-token"
[[agents]]
user = "alice"
password = "agent-pass"
[provider]
kind = "infobip"
url = %q
basic_user = "u"
basic_password = "p"
scenario_key = "CC9F01A5DC7BEE2C2B829D203482A654"
default_number = "1234"
[media]
allow_private_hosts = true
`, addr, filepath.Join(dir, "imchannel.db"), origin.URL+"/omni/1/advanced"))
	}
	cfg := filepath.Join(dir, "imchannel.toml")
	require.NoError(t, os.WriteFile(cfg, cfgText("127.0.0.1:0"), 0o600))

	base, stopBinary := startBinary(t, ctx, bin, cfg)
	c := &client{t: t, base: base}

	// ---- fill it through the real webhooks ----
	now := time.Now().UTC()
	ts := func(d time.Duration) string { return now.Add(d).Format("2006-01-02T15:04:05.000+0000") }
	c.post("/imchannel/message", "provider", "provider-pass", fmt.Sprintf(`{"results":[{"from":"385919998888","to":"1234","integrationType":"WHATSAPP",
		"receivedAt":%q,"messageId":"wamid.Q","pairedMessageId":null,"message":{"type":"TEXT","text":"Where is my order?"},"contact":{"name":"Frank"}}]}`, ts(0)))
	c.post("/imchannel/message", "provider", "provider-pass", fmt.Sprintf(`{"results":[{"from":"385919998888","to":"1234","integrationType":"WHATSAPP",
		"receivedAt":%q,"messageId":"wamid.IMG","pairedMessageId":"wamid.Q","message":{"type":"IMAGE","caption":"my receipt","url":%q}}]}`, ts(time.Second), origin.URL+"/receipt.png"))
	c.post("/webhooks/cm", "provider", "provider-pass", `{"reference":"cm-oops","messageContext":"","from":{"number":"+385919998888","name":"Frank"},
		"to":{"number":"+1234"},"message":{"text":"oops, wrong chat","media":{"mediaUri":"","contentType":"","title":""},"custom":{}},
		"groupings":["","",""],"timeUtc":"`+now.Add(2*time.Second).Format("2006-01-02T15:04:05")+`","channel":"WhatsApp"}`)
	c.post("/webhooks/cm", "provider", "provider-pass", `{"reference":"cm-del","messageContext":"","from":{"number":"+385919998888","name":"Frank"},
		"to":{"number":"+1234"},"message":{"text":"","media":{"mediaUri":"","contentType":"","title":""},"custom":{"deletedMessage":"cm-oops"}},
		"groupings":["","",""],"timeUtc":"`+now.Add(3*time.Second).Format("2006-01-02T15:04:05")+`","channel":"WhatsApp"}`)
	xss, err := json.Marshal(xssText)
	require.NoError(t, err)
	xssN, err := json.Marshal(xssName)
	require.NoError(t, err)
	c.post("/imchannel/message", "provider", "provider-pass", fmt.Sprintf(`{"results":[{"from":"31600000666","to":"1234","integrationType":"WHATSAPP",
		"receivedAt":%q,"messageId":"wamid.X1","message":{"type":"TEXT","text":%s},"contact":{"name":%s}}]}`, ts(4*time.Second), xss, xssN))
	c.post("/imchannel/message", "provider", "provider-pass", fmt.Sprintf(`{"results":[{"from":"31600000666","to":"1234","integrationType":"WHATSAPP",
		"receivedAt":%q,"messageId":"wamid.X2","message":{"type":"INTERACTIVE_LIST_REPLY","id":%s,"title":%s,"description":%s}}]}`, ts(5*time.Second), xssN, xss, xssN))

	// Our answers through the send API: one delivered and seen, one rejected.
	for _, m := range []struct{ id, text string }{{"msg-ok", "Your order ships today"}, {"msg-bad", "This one fails"}} {
		c.postAPI(`{"scenarioKey":"CC9F01A5DC7BEE2C2B829D203482A654","destinations":[{"messageId":"` + m.id +
			`","to":{"phoneNumber":"385919998888"}}],"whatsApp":{"text":"` + m.text + `"}}`)
	}
	c.waitMessage("msg-ok", func(m map[string]any) bool { return m["status"] == "sent" })
	c.waitMessage("msg-bad", func(m map[string]any) bool { return m["status"] == "sent" })
	c.post("/imchannel/message", "provider", "provider-pass", fmt.Sprintf(`{"results":[{"bulkId":"","status":{"id":5,"groupId":3,"groupName":"DELIVERED",
		"name":"DELIVERED_TO_HANDSET","description":"Message delivered to handset"},"messageId":"msg-ok","doneAt":%q,"sentAt":%q,"to":"385919998888","channel":"WHATSAPP"}]}`,
		ts(10*time.Second), ts(9*time.Second)))
	c.post("/imchannel/message", "provider", "provider-pass", fmt.Sprintf(`{"results":[{"messageId":"msg-ok","to":"385919998888","sentAt":%q,"seenAt":%q}]}`,
		ts(9*time.Second), ts(11*time.Second)))
	c.post("/imchannel/message", "provider", "provider-pass", fmt.Sprintf(`{"results":[{"bulkId":"","status":{"groupId":5,"groupName":"REJECTED","id":12,
		"name":"REJECTED_NOT_ENOUGH_CREDITS","description":"Not enough credits"},"error":{"groupId":2,"groupName":"USER_ERRORS","id":10,"name":"EC_ACCOUNT_BLOCKED",
		"description":"Account blocked","permanent":true},"messageId":"msg-bad","doneAt":%q,"sentAt":%q,"to":"385919998888","channel":"WHATSAPP"}]}`,
		ts(10*time.Second), ts(9*time.Second)))
	c.waitMessage("msg-ok", func(m map[string]any) bool { return m["status"] == "seen" })
	c.waitMessage("msg-bad", func(m map[string]any) bool { return m["status"] == "failed" })
	img := c.waitMessage("wamid.IMG", func(m map[string]any) bool {
		md, _ := m["media"].(map[string]any)
		return md != nil && md["state"] == "cached"
	})
	conv := img["conversationId"].(string)
	xssConv := c.message("wamid.X1")["conversationId"].(string)

	// ---- look at it in Chromium ----
	bctx, stop := browser(t, ctx, dir)
	defer stop()
	var dialogs []string
	var mu sync.Mutex
	opened := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range opened {
			if err != nil {
				return
			}
			mu.Lock()
			dialogs = append(dialogs, ev.Message)
			mu.Unlock()
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	_, err = chromedp.Call(bctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	_, err = chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Basic " + basicAuth("alice", "agent-pass")}})
	require.NoError(t, err)

	shots := map[string][]byte{}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(bctx, steps...))
	}
	textOf := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err)
		return s
	}
	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[any](js))
		require.NoError(t, err, js)
		return v
	}
	// Screenshots show what an agent sees at 1440×900 (the viewport the
	// test runs at) or on a 390×844 phone.
	shoot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		shots[name] = b
	}
	do(chromedp.EmulateViewport(1440, 900))

	// axe-core (npm, installed by .ci/run) is injected into the pages: no
	// serious or critical accessibility violation.
	axeSrc, err := os.ReadFile(filepath.Join("..", ".ci", "node", "node_modules", "axe-core", "axe.min.js"))
	if err != nil && os.Getenv("CI") != "" {
		t.Fatalf("CI must run the accessibility checks, but axe-core is missing: %v", err)
	}
	axe := func(what string) {
		t.Helper()
		if axeSrc == nil {
			t.Logf("axe-core not installed (.ci/run installs it): %s not checked", what)
			return
		}
		eval(string(axeSrc))
		res, err := chromedp.Run(bctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ['violations']}).then(function (r) {
			return JSON.stringify(r.violations.filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
				.map(function (v) { return {id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(function (n) { return n.target.join(' '); })}; }));
		})`, chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		require.Equal(t, "[]", res, "axe-core on %s", what)
	}

	// The list.
	do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(".conv-list")))
	text := textOf("body")
	for _, want := range []string{"Frank", "+385919998888", "1 failed", "This one fails", "Conversations",
		"Failed sends", "Last backup", "never", "2 conversations", "5 messages"} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, "to +1234", "one business number: not repeated on every row")
	require.Contains(t, text, xssName, "the hostile name is shown as text")
	shoot("list")
	axe("the list")

	// The search box.
	do(chromedp.SetValue(chromedp.CSS("input[name=q]"), "0666"), chromedp.Submit(chromedp.CSS("form.search")))
	require.Eventually(t, func() bool {
		s, _ := eval(`location.search`).(string)
		return strings.Contains(s, "q=0666")
	}, 10*time.Second, 50*time.Millisecond)
	do(chromedp.WaitVisible(chromedp.CSS(".conv-list")))
	text = textOf(".conversations")
	require.Contains(t, text, "+31600000666")
	require.NotContains(t, text, "Frank")
	require.Equal(t, "0666", textOf(".conv .number mark, .conv .name mark"), "the match is highlighted")

	// Message text: words found in any conversation, highlighted, linked.
	do(chromedp.Navigate(base+"/?q="+url.QueryEscape("ORDER")), chromedp.WaitVisible(chromedp.CSS(".hit-list")))
	text = textOf(".hits")
	require.Contains(t, text, "2 messages containing “ORDER”")
	require.Contains(t, text, "Where is my order?")
	require.Contains(t, text, "You: Your order ships today")
	require.Equal(t, "order", textOf(".hit mark"))
	shoot("search")
	axe("search results")

	// Filters: the overview's tile opens the unanswered list, with its total.
	do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(".conv-list")))
	do(chromedp.Click(chromedp.CSS(`.overview a[href="/?filter=unanswered"]`)))
	require.Eventually(t, func() bool {
		s, _ := eval(`location.search`).(string)
		return s == "?filter=unanswered"
	}, 10*time.Second, 50*time.Millisecond)
	do(chromedp.WaitVisible(chromedp.CSS(".conv-list")))
	require.Equal(t, "1 conversation, unanswered", textOf("#conv-h"))
	require.Equal(t, "page", eval(`document.querySelector('.filter-unanswered').getAttribute('aria-current')`))
	text = textOf(".conv-list")
	require.Contains(t, text, "+31600000666")
	require.Contains(t, text, "waiting")
	require.NotContains(t, text, "Frank")
	do(chromedp.Click(chromedp.CSS(".filter-failed")))
	require.Eventually(t, func() bool {
		s, _ := eval(`document.getElementById('conv-h') && document.getElementById('conv-h').innerText`).(string)
		return s == "1 conversation with failed sends"
	}, 10*time.Second, 50*time.Millisecond)
	require.Contains(t, textOf(".conv-list"), "Frank")

	// The thread.
	do(chromedp.Navigate(base+"/conversations/"+conv), chromedp.WaitVisible(chromedp.CSS("#thread")))
	require.Eventually(t, func() bool {
		w, _ := eval(`(function(){var i=document.querySelector('img.media-img');return i&&i.complete?i.naturalWidth:0})()`).(float64)
		return w == 48
	}, 15*time.Second, 50*time.Millisecond, "the image loads from /media")
	require.EqualValues(t, 0, eval(`Array.from(document.images).filter(function(i){return !i.complete||i.naturalWidth===0}).length`), "no broken image")
	// Its preview, with its size, so nothing shifts while it loads.
	require.Equal(t, "48x32 lazy my receipt", eval(`(function(){var i=document.querySelector('img.media-img');`+
		`return i.getAttribute('width')+'x'+i.getAttribute('height')+' '+i.loading+' '+i.alt})()`))
	text = textOf("#thread")
	for _, want := range []string{"Where is my order?", "my receipt", "message deleted", "Your order ships today", "seen",
		"This one fails", "failed", "Not enough credits", "Frank"} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, "oops, wrong chat")
	// The quote above the image links to the original.
	require.Equal(t, "#msg-"+c.message("wamid.Q")["id"].(string), eval(`document.querySelector('li.type-image a.quote').getAttribute('href')`))

	// The timeline opens on a click.
	okID := c.message("msg-ok")["id"].(string)
	do(chromedp.Click(chromedp.CSS("#msg-"+okID+" details.status summary")),
		chromedp.WaitVisible(chromedp.CSS("#msg-"+okID+" ol.timeline")))
	tl := textOf("#msg-" + okID + " ol.timeline")
	for _, want := range []string{"queued", "sent", "delivered", "DELIVERED_TO_HANDSET", "seen"} {
		require.Contains(t, tl, want)
	}
	shoot("thread")
	axe("a thread")

	// A new message appears without a reload.
	eval(`window.__mark = 42`)
	c.post("/imchannel/message", "provider", "provider-pass", fmt.Sprintf(`{"results":[{"from":"385919998888","to":"1234","integrationType":"WHATSAPP",
		"receivedAt":%q,"messageId":"wamid.LIVE","message":{"type":"TEXT","text":"arrived live ✓"}}]}`, ts(20*time.Second)))
	require.Eventually(t, func() bool {
		s, _ := eval(`document.getElementById('thread').innerText`).(string)
		return strings.Contains(s, "arrived live ✓")
	}, 15*time.Second, 50*time.Millisecond, "the live message appears")
	require.EqualValues(t, 42, eval(`window.__mark`), "the page was not reloaded")
	shoot("thread-live")

	// ---- a long thread: opens at the newest, loads older going up ----
	var long strings.Builder
	long.WriteString(`{"results":[`)
	const longN = 260
	for i := 0; i < longN; i++ {
		if i > 0 {
			long.WriteByte(',')
		}
		// Over three days up to now (the last one is always today, even
		// just after midnight), so the thread has day separators.
		fmt.Fprintf(&long, `{"from":"4917000000001","to":"1234","integrationType":"WHATSAPP","receivedAt":%q,`+
			`"messageId":"wamid.L%03d","message":{"type":"TEXT","text":"long thread message %03d"},"contact":{"name":"Lena"}}`,
			ts(time.Duration(i+1-longN)*17*time.Minute), i, i)
	}
	long.WriteString(`]}`)
	c.post("/imchannel/message", "provider", "provider-pass", long.String())
	last := c.message(fmt.Sprintf("wamid.L%03d", longN-1))
	lena := last["conversationId"].(string)
	do(chromedp.Navigate(base+"/conversations/"+lena), chromedp.WaitVisible(chromedp.CSS("#thread")))
	require.Eventually(t, func() bool {
		v, _ := eval(`(function(){var r=document.getElementById('msg-` + last["id"].(string) + `').getBoundingClientRect();` +
			`return window.scrollY>1000 && r.bottom<=window.innerHeight && r.top>=0})()`).(bool)
		return v
	}, 10*time.Second, 50*time.Millisecond, "the thread opens scrolled to its newest message")
	require.EqualValues(t, 200, eval(`document.querySelectorAll('#thread li.msg').length`), "one page is loaded")
	days, _ := eval(`Array.from(document.querySelectorAll('#thread li.day')).map(function(d){return d.textContent}).join('|')`).(string)
	require.Regexp(t, `\|Yesterday\|Today$`, days, "day separators, the last two Yesterday and Today")
	title, _ := eval(`document.querySelector('#thread li.msg .meta time').title`).(string)
	require.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$`, title, "the full UTC time on hover")
	require.Regexp(t, `^\d\d:\d\d$`, textOf("#thread li.msg .meta time"), "local HH:MM")
	shoot("thread-long")

	// Scrolling up loads the older messages and keeps the reader in place.
	eval(`window.dispatchEvent(new WheelEvent('wheel')); window.__top = document.querySelector('#thread li.msg').id; window.scrollTo(0, 0)`)
	require.Eventually(t, func() bool {
		n, _ := eval(`document.querySelectorAll('#thread li.msg').length`).(float64)
		return n == longN
	}, 10*time.Second, 50*time.Millisecond, "older messages load on scrolling up")
	require.Contains(t, textOf("#thread"), "long thread message 000")
	require.Equal(t, true, eval(`(function(){var r=document.getElementById(window.__top).getBoundingClientRect();return r.top>=0&&r.top<window.innerHeight})()`),
		"the message that was at the top stays in view")
	require.EqualValues(t, 0, eval(`document.querySelectorAll('#older').length`), "no older page left")

	// A message arriving while the reader is up the thread does not move
	// them: a pill counts it, and the live region announces it.
	eval(`window.scrollTo(0, 1500)`)
	y0 := eval(`window.scrollY`)
	c.post("/imchannel/message", "provider", "provider-pass", fmt.Sprintf(`{"results":[{"from":"4917000000001","to":"1234","integrationType":"WHATSAPP",
		"receivedAt":%q,"messageId":"wamid.PILL","message":{"type":"TEXT","text":"while you were reading"}}]}`, ts(30*time.Second)))
	require.Eventually(t, func() bool {
		v, _ := eval(`!document.getElementById('pill').hidden`).(bool)
		return v
	}, 10*time.Second, 50*time.Millisecond, "the new-messages pill shows")
	require.Equal(t, "↓ 1 new message", strings.TrimSpace(textOf("#pill")))
	require.Equal(t, y0, eval(`window.scrollY`), "the reader was not moved")
	require.Contains(t, textOf("#announce"), "while you were reading")
	require.Equal(t, "polite", eval(`document.getElementById('announce').getAttribute('aria-live')`))
	shoot("thread-pill")
	do(chromedp.Click(chromedp.CSS("#pill")))
	require.Eventually(t, func() bool {
		v, _ := eval(`document.getElementById('pill').hidden && document.scrollingElement.scrollHeight-(window.scrollY+window.innerHeight)<80`).(bool)
		return v
	}, 10*time.Second, 50*time.Millisecond, "the pill takes the reader to the bottom and goes")

	// ---- the list keeps keyboard focus across a live refresh ----
	do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(".conv-list")))
	eval(`document.querySelector('li.conv[data-id="` + lena + `"] a').focus()`)
	c.post("/imchannel/message", "provider", "provider-pass", fmt.Sprintf(`{"results":[{"from":"385919998888","to":"1234","integrationType":"WHATSAPP",
		"receivedAt":%q,"messageId":"wamid.FOCUS","message":{"type":"TEXT","text":"moves Frank to the top"}}]}`, ts(40*time.Second)))
	require.Eventually(t, func() bool {
		s, _ := eval(`document.querySelector('.conv-list li.conv').innerText`).(string)
		return strings.Contains(s, "moves Frank to the top")
	}, 10*time.Second, 50*time.Millisecond, "the list refreshes")
	require.Equal(t, lena, eval(`(document.activeElement.closest('li.conv')||{dataset:{}}).dataset.id`), "focus stayed on Lena's row")

	// ---- the stream drops: a banner says so, and goes on reconnect ----
	require.Equal(t, true, eval(`document.getElementById('conn').hidden`))
	stopBinary()
	require.Eventually(t, func() bool {
		v, _ := eval(`!document.getElementById('conn').hidden`).(bool)
		return v
	}, 10*time.Second, 50*time.Millisecond, "the reconnect banner shows")
	require.Equal(t, "Live updates paused — reconnecting", textOf("#conn"))
	shoot("list-reconnecting")
	require.NoError(t, os.WriteFile(cfg, cfgText(strings.TrimPrefix(base, "http://")), 0o600))
	base2, _ := startBinary(t, ctx, bin, cfg)
	require.Equal(t, base, base2)
	require.Eventually(t, func() bool {
		v, _ := eval(`document.getElementById('conn').hidden`).(bool)
		return v
	}, 15*time.Second, 50*time.Millisecond, "the banner goes on reconnect")

	// Hostile text stays text.
	do(chromedp.Navigate(base+"/conversations/"+xssConv), chromedp.WaitVisible(chromedp.CSS("#thread")))
	text = textOf("body")
	require.Contains(t, text, xssName)
	require.Contains(t, text, "<script>window.__xss=2;alert('x')</script> &amp; مرحبا 👋🏽")
	require.Equal(t, false, eval(`window.__xss !== undefined || document.querySelector('img[src="x"], main script, svg') !== null`),
		"an injected element or script ran")
	shoot("xss")

	// ---- an unknown address: the HTML error page ----
	do(chromedp.Navigate(base+"/no/such/page"), chromedp.WaitVisible(chromedp.CSS("main.error-page")))
	require.Contains(t, textOf("main"), "404 Not Found")
	axe("the error page")

	// ---- the transcript and the export, for supervisors ----
	do(chromedp.Navigate(base+"/conversations/"+conv+"/transcript"), chromedp.WaitVisible(chromedp.CSS("ol.transcript")))
	text = textOf("main")
	for _, want := range []string{"Transcript: Frank", "+385919998888", "Where is my order?", "my receipt", "message deleted",
		"Your order ships today", "DELIVERED_TO_HANDSET", "failed: REJECTED_NOT_ENOUGH_CREDITS", "all times UTC"} {
		require.Contains(t, text, want)
	}
	require.Equal(t, "transcript", eval(`document.body.dataset.page`), "no live updates")
	media := func(m string) {
		t.Helper()
		_, err := chromedp.Call(bctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: m})
		require.NoError(t, err)
	}
	media("print")
	require.Equal(t, "none", eval(`getComputedStyle(document.querySelector('.no-print')).display`), "print CSS hides the links")
	shoot("transcript-print")
	media("")
	axe("the transcript")
	var export struct {
		Conversation struct{ ID string }
		Messages     []struct {
			Text     string
			Timeline []struct{ Status string }
		}
	}
	c.getJSON("/api/v1/conversations/"+conv+"/export", &export)
	require.Equal(t, conv, export.Conversation.ID)
	require.Len(t, export.Messages, 7)
	require.Equal(t, "Where is my order?", export.Messages[0].Text)

	// ---- a phone ----
	do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(".conv-list")))
	require.Equal(t, true, eval(`document.documentElement.scrollWidth <= 390`), "the list fits a phone's width")
	shoot("phone-list")
	do(chromedp.Navigate(base+"/conversations/"+conv), chromedp.WaitVisible(chromedp.CSS("#thread")))
	require.Equal(t, true, eval(`document.documentElement.scrollWidth <= 390`), "the thread fits a phone's width")
	shoot("phone-thread")

	mu.Lock()
	require.Empty(t, dialogs, "a dialog opened")
	mu.Unlock()

	for name, b := range shots {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644))
		if os.Getenv("SCREENSHOTS") == "1" {
			require.NoError(t, os.MkdirAll("../screenshots", 0o755))
			require.NoError(t, os.WriteFile(filepath.Join("..", "screenshots", "web-"+name+".png"), b, 0o644))
		}
	}
	t.Logf("screenshots in %s", dir)
}

// startBinary runs `imchannel serve` and returns its base URL, read from
// the "listening" log line, and a stop that ends it with SIGTERM (also
// run at cleanup).
func startBinary(t *testing.T, ctx context.Context, bin, cfg string) (string, func()) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var logMu sync.Mutex
	var logBuf bytes.Buffer
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			logBuf.WriteString(line + "\n")
			logMu.Unlock()
			if strings.Contains(line, "msg=listening") {
				for _, f := range strings.Fields(line) {
					if a, ok := strings.CutPrefix(f, "addr="); ok {
						addr <- a
					}
				}
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("imchannel exited with %v", err)
				}
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				t.Errorf("imchannel did not stop on SIGTERM")
			}
			if t.Failed() {
				logMu.Lock()
				t.Logf("imchannel log:\n%s", logBuf.String())
				logMu.Unlock()
			}
		})
	}
	t.Cleanup(stop)
	select {
	case a := <-addr:
		return "http://" + a, stop
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	logMu.Lock()
	defer logMu.Unlock()
	t.Fatalf("imchannel did not report its address; log:\n%s", logBuf.String())
	return "", nil
}

// browser starts headless Debian Chromium with a fresh profile.
func browser(t *testing.T, ctx context.Context, dir string) (context.Context, func()) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium-profile")),
		chromedp.WindowSize(1100, 1400),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	require.NoError(t, chromedp.Do(bctx), "start chromium")
	return bctx, func() { cancelBrowser(); cancelAlloc() }
}

// client talks to the running binary.
type client struct {
	t    *testing.T
	base string
}

func (c *client) post(path, user, pass, body string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	c.send(req)
}

func (c *client) postAPI(body string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+"/omni/1/advanced", strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer api-token")
	c.send(req)
}

func (c *client) send(req *http.Request) {
	c.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Less(c.t, resp.StatusCode, 300, "POST %s: %s", req.URL.Path, b)
}

// message returns the one message with that external id (nil if none).
func (c *client) message(ext string) map[string]any {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+"/api/v1/messages?externalId="+url.QueryEscape(ext), nil)
	require.NoError(c.t, err)
	req.SetBasicAuth("alice", "agent-pass")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	require.Equal(c.t, http.StatusOK, resp.StatusCode)
	var out struct{ Messages []map[string]any }
	require.NoError(c.t, json.NewDecoder(resp.Body).Decode(&out))
	if len(out.Messages) == 0 {
		return nil
	}
	return out.Messages[0]
}

// getJSON GETs path with the agent's credentials into v.
func (c *client) getJSON(path string, v any) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	require.NoError(c.t, err)
	req.SetBasicAuth("alice", "agent-pass")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	require.Equal(c.t, http.StatusOK, resp.StatusCode)
	require.NoError(c.t, json.NewDecoder(resp.Body).Decode(v))
}

// waitMessage polls until the message with that external id satisfies ok.
func (c *client) waitMessage(ext string, ok func(map[string]any) bool) map[string]any {
	c.t.Helper()
	var m map[string]any
	require.Eventually(c.t, func() bool {
		m = c.message(ext)
		return m != nil && ok(m)
	}, 20*time.Second, 50*time.Millisecond, "message %s: last seen %v", ext, m)
	return m
}

func basicAuth(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// testPNG is a 48×32 picture.
func testPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 48, 32))
	for x := 0; x < 48; x++ {
		for y := 0; y < 32; y++ {
			img.Set(x, y, color.RGBA{R: uint8(x * 5), G: 140, B: uint8(y * 7), A: 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}
