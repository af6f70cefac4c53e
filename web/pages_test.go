package web

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	_ "time/tzdata" // the zones the overview test loads

	"github.com/gorilla/mux"
	"github.com/stretchr/testify/require"

	"imchannel/httpx"
	"imchannel/store"
)

const customer = "385919998888"

// hostile strings go everywhere a customer or provider can put text.
var hostile = []struct{ name, raw, escaped string }{
	{"script", `<script>alert('x')</script>`, `&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;`},
	{"img", `<img src=x onerror=alert(1)>`, `&lt;img src=x onerror=alert(1)&gt;`},
	{"attr break", `"><svg onload=alert(2)>`, `&#34;&gt;&lt;svg onload=alert(2)&gt;`},
	{"entity", `&lt;b&gt; &amp; &#x3C;`, `&amp;lt;b&amp;gt; &amp;amp; &amp;#x3C;`},
}

const rtlEmoji = "مرحبا بالعالم 👋🏽 שלום"

func TestThreadPageShowsWhatWasStored(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	q := in("wamid.Q", customer, "Where is my order?")
	q.ContactName = "Frank"
	rq := e.save(q)[0]

	img := in("wamid.IMG", customer, "")
	img.Type, img.Text, img.Caption = store.TypeImage, "", "my receipt"
	img.Media = &store.Media{ContentType: "image/png", State: store.MediaCached, FileName: "receipt.png"}
	img.ReplyTo = &store.ReplyRef{ExternalID: "wamid.Q"}
	ri := e.save(img)[0]

	pend := in("wamid.VID", customer, "")
	pend.Type, pend.Text = store.TypeVideo, ""
	pend.Media = &store.Media{SourceURL: "https://provider.example/v.mp4", ContentType: "video/mp4"}
	e.save(pend)

	doc := in("wamid.DOC", customer, "")
	doc.Type, doc.Text = store.TypeDocument, ""
	doc.Media = &store.Media{ContentType: "application/pdf", State: store.MediaCached, FileName: "invoice-42.pdf", Size: 2048}
	e.save(doc)

	aud := in("wamid.AUD", customer, "")
	aud.Type, aud.Text = store.TypeAudio, ""
	aud.Media = &store.Media{ContentType: "audio/ogg", State: store.MediaCached}
	e.save(aud)

	loc := in("wamid.LOC", customer, "")
	loc.Type, loc.Text = store.TypeLocation, ""
	loc.Location = &store.Location{Latitude: 51.603802, Longitude: 4.770821, Name: "CM HQ", Address: "Konijnenberg 30"}
	e.save(loc)

	card := in("wamid.VCF", customer, "")
	card.Type, card.Text = store.TypeContacts, ""
	card.Contacts = json.RawMessage(`[{"name":{"formatted_name":"CM Developer"},"phones":[{"phone":"+31 76 572 7000","type":"WORK"}],"addresses":[{"city":"Breda","street":"Konijnenberg 30"}]}]`)
	e.save(card)

	list := in("wamid.LIST", customer, "list-row-title")
	list.Type = store.TypeInteractive
	list.Interactive = &store.Interactive{Type: "list_reply", ID: "row-7", Title: "list-row-title", Description: "list-row-description"}
	e.save(list)

	flow := in("wamid.FLOW", customer, "")
	flow.Type, flow.Text = store.TypeInteractive, ""
	flow.Interactive = &store.Interactive{Type: "nfm_reply", Response: json.RawMessage(`{"flow_token":"tok-1","entered-field-1":"entered-value-1"}`)}
	e.save(flow)

	order := in("wamid.ORDER", customer, "")
	order.Type, order.Text = store.TypeOrder, ""
	order.Order = json.RawMessage(`{"catalog_id":"CAT-1","product_items":[{"product_retailer_id":"cmcomdevelop-frisbee","quantity":"99","item_price":"15","currency":"EUR"}],"text":null}`)
	e.save(order)

	errMO := in("wamid.ERR", customer, "")
	errMO.Type, errMO.Text, errMO.Error = store.TypeError, "", "Message type is not currently supported"
	e.save(errMO)

	gone := in("wamid.GONE", customer, "this will be deleted")
	rg := e.save(gone)[0]
	e.save(&store.Message{Provider: store.ProviderInfobip, ExternalID: "wamid.DEL", From: customer, To: bizNumber,
		Type: store.TypeDelete, Target: "wamid.GONE"})
	e.save(&store.Message{Provider: store.ProviderInfobip, ExternalID: "wamid.REACT", From: customer, To: bizNumber,
		Type: store.TypeReaction, Target: "wamid.IMG", ReactionEmoji: "❤️"})

	later := time.Now().UTC().Add(time.Minute)
	ok := e.queue(out("ctlive-ok", customer, "Your order ships today"))[0]
	e.report(store.Report{Provider: store.ProviderInfobip, ExternalID: "ctlive-ok", Status: store.StatusDelivered, At: later,
		GroupName: "DELIVERED", Name: "DELIVERED_TO_HANDSET", Description: "Message delivered to handset"},
		store.Report{Provider: store.ProviderInfobip, ExternalID: "ctlive-ok", Status: store.StatusSeen, At: later.Add(time.Second)})
	bad := e.queue(out("ctlive-bad", customer, "This one fails"))[0]
	require.NoError(t, e.st.AddEvent(ctx, bad.MessageID, store.Event{Status: store.StatusFailed, At: later,
		GroupName: "REJECTED", Reason: "Number not on WhatsApp"}))
	e.queue(out("ctlive-q", customer, "still queued"))

	resp, page := e.get("/conversations/" + rq.ConversationID)
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

	li := func(id string) string {
		i := strings.Index(page, `<li id="msg-`+id+`"`)
		require.GreaterOrEqual(t, i, 0, "message %s not on the page", id)
		j := strings.Index(page[i:], "\n</li>")
		require.Greater(t, j, 0)
		return page[i : i+j]
	}
	msgID := func(ext string) string {
		ms, err := e.st.MessagesByExternalID(ext)
		require.NoError(t, err)
		require.Len(t, ms, 1, ext)
		return ms[0].ID
	}

	imgLI := li(ri.MessageID)
	require.Contains(t, imgLI, `class="msg inbound type-image`)
	require.Contains(t, imgLI, `<a class="quote" href="#msg-`+rq.MessageID+`">`)
	require.Contains(t, imgLI, "Where is my order?")
	m, err := e.st.Message(ri.MessageID)
	require.NoError(t, err)
	// The preview, loaded lazily, links to the original; the caption is its alt.
	require.Contains(t, imgLI, `<a class="media-link" href="/media/`+m.Media.ID+`"><img class="media-img" src="/media/`+m.Media.ID+`/thumb" loading="lazy" alt="my receipt">`)
	require.Contains(t, imgLI, "my receipt")
	require.Contains(t, imgLI, `<li class="reaction"`)
	require.Contains(t, imgLI, "❤️")

	vid := li(msgID("wamid.VID"))
	require.Contains(t, vid, `media-placeholder state-pending`)
	require.Contains(t, vid, "not downloaded yet")
	require.NotContains(t, vid, "<video")
	require.NotContains(t, vid, "<img")

	require.Contains(t, li(msgID("wamid.DOC")), `download="invoice-42.pdf"`)
	require.Contains(t, li(msgID("wamid.DOC")), "2.0 KiB")
	require.Contains(t, li(msgID("wamid.AUD")), `<audio class="media-audio" controls`)

	l := li(msgID("wamid.LOC"))
	require.Contains(t, l, "51.603802, 4.770821")
	require.Contains(t, l, `href="https://www.openstreetmap.org/?mlat=51.603802&amp;mlon=4.770821#map=16/51.603802/4.770821"`)
	require.Contains(t, l, "CM HQ")

	c := li(msgID("wamid.VCF"))
	require.Contains(t, c, "CM Developer")
	require.Contains(t, c, "&#43;31 76 572 7000 (work)") // html/template escapes +
	require.Contains(t, c, "Konijnenberg 30, Breda")

	require.Contains(t, li(msgID("wamid.LIST")), "List reply")
	require.Contains(t, li(msgID("wamid.LIST")), "list-row-description")
	require.Contains(t, li(msgID("wamid.FLOW")), "Flow reply")
	require.Contains(t, li(msgID("wamid.FLOW")), "entered-value-1")
	require.Contains(t, li(msgID("wamid.ORDER")), "cmcomdevelop-frisbee")
	require.Contains(t, li(msgID("wamid.ORDER")), "15 EUR")

	er := li(msgID("wamid.ERR"))
	require.Contains(t, er, "error-mo")
	require.Contains(t, er, "Message type is not currently supported")

	del := li(rg.MessageID)
	require.Contains(t, del, "message deleted")
	require.NotContains(t, del, "this will be deleted")

	okLI := li(ok.MessageID)
	require.Contains(t, okLI, `class="msg outbound type-text`)
	require.Contains(t, okLI, `tick tick-seen`)
	require.Contains(t, okLI, "DELIVERED_TO_HANDSET")
	require.Contains(t, okLI, "Message delivered to handset")
	require.Contains(t, okLI, `<details class="status">`)

	badLI := li(bad.MessageID)
	require.Contains(t, badLI, " failed")
	require.Contains(t, badLI, "tick-failed")
	require.Contains(t, badLI, "Failed: <span class=\"reason\">Number not on WhatsApp</span>")

	require.Contains(t, li(msgID("ctlive-q")), `<span class="status-label">queued</span>`)

	// The list shows the failure and that the last word was ours.
	_, index := e.get("/")
	require.Contains(t, index, "1 failed")
	require.Contains(t, index, "still queued")
	require.Contains(t, index, "Frank")
	require.Contains(t, index, "+"+customer)
	require.Contains(t, index, `id="ov-failed">1<`)
	require.Contains(t, index, `id="ov-backup">never<`)
	require.Contains(t, index, `id="ov-media-pending">1<`)
	require.NotContains(t, index, "unanswered-marker")
}

func TestHostileTextIsEscapedEverywhere(t *testing.T) {
	e := newEnv(t)
	for i, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			payload := h.raw + " " + rtlEmoji
			from := "3161000000" + string(rune('0'+i))
			txt := in("t-"+h.name, from, payload)
			txt.ContactName = payload
			rs := e.save(txt)
			cap := in("c-"+h.name, from, "")
			cap.Type, cap.Text, cap.Caption = store.TypeDocument, "", payload
			cap.Media = &store.Media{State: store.MediaCached, ContentType: "application/pdf", FileName: payload + ".pdf"}
			cap.ReplyTo = &store.ReplyRef{ExternalID: "t-" + h.name}
			e.save(cap)
			pend := in("p-"+h.name, from, "")
			pend.Type, pend.Text = store.TypeImage, ""
			pend.Media = &store.Media{SourceURL: "https://x.example/a", FileName: payload}
			e.save(pend)
			it := in("i-"+h.name, from, "")
			it.Type, it.Text = store.TypeInteractive, ""
			it.Interactive = &store.Interactive{Type: "button_reply", ID: payload, Title: payload, Description: payload, Payload: payload}
			e.save(it)
			raw, err := json.Marshal(payload)
			require.NoError(t, err)
			fl := in("f-"+h.name, from, "")
			fl.Type, fl.Text = store.TypeInteractive, ""
			fl.Interactive = &store.Interactive{Type: "nfm_reply", Response: json.RawMessage(`{"field":` + string(raw) + `}`)}
			e.save(fl)
			ct := in("v-"+h.name, from, "")
			ct.Type, ct.Text = store.TypeContacts, ""
			ct.Contacts = json.RawMessage(`[{"name":{"formatted_name":` + string(raw) + `},"phones":[{"phone":` + string(raw) + `}]}]`)
			e.save(ct)
			or := in("o-"+h.name, from, "")
			or.Type, or.Text = store.TypeOrder, ""
			or.Order = json.RawMessage(`{"catalog_id":` + string(raw) + `,"product_items":[{"product_retailer_id":` + string(raw) + `,"quantity":1}]}`)
			e.save(or)
			lc := in("l-"+h.name, from, "")
			lc.Type, lc.Text = store.TypeLocation, ""
			lc.Location = &store.Location{Latitude: 1, Longitude: 2, Name: payload, Address: payload}
			e.save(lc)
			ob := out("ob-"+h.name, from, payload)
			rob := e.queue(ob)[0]
			require.NoError(t, e.st.AddEvent(context.Background(), rob.MessageID, store.Event{Status: store.StatusFailed,
				At: time.Now().Add(time.Minute), Description: payload, Reason: payload}))

			for _, path := range []string{"/conversations/" + rs[0].ConversationID, "/?q=" + from, "/", "/fragments/messages/" + rob.MessageID} {
				resp, body := e.get(path)
				require.Equal(t, http.StatusOK, resp.StatusCode, path)
				require.NotContains(t, body, h.raw, "raw payload on %s", path)
				require.Contains(t, body, h.escaped, "escaped payload on %s", path)
				require.Contains(t, body, rtlEmoji, "RTL text and emoji intact on %s", path)
			}
			// The API returns the text as it was sent.
			var got MessageJSON
			e.getJSON("/api/v1/messages/"+rs[0].MessageID, http.StatusOK, &got)
			require.Equal(t, payload, got.Text)
			require.Equal(t, payload, got.ContactName)
		})
	}
}

func TestPagesPagingAndErrors(t *testing.T) {
	e := newEnv(t, func(d *Deps) {
		d.LastBackup = func() (time.Time, int64) { return time.Date(2024, 5, 1, 3, 0, 0, 0, time.UTC), 5 << 20 }
	})
	var ids []string
	for i := 0; i < 5; i++ {
		m := in("w"+string(rune('a'+i)), customer, "msg "+string(rune('a'+i)))
		if i == 4 {
			m.ReplyTo = &store.ReplyRef{ExternalID: "wa"}
		}
		ids = append(ids, e.save(m)[0].MessageID)
	}
	conv, err := e.st.ConversationByNumbers(bizNumber, customer)
	require.NoError(t, err)

	_, body := e.get("/conversations/" + conv.ID + "?limit=2")
	require.NotContains(t, body, "msg c")
	require.Contains(t, body, "msg d")
	require.Contains(t, body, `href="/conversations/`+conv.ID+`?before=`+ids[3]+`"`)
	// The quoted message is not on this page: the link opens its page.
	require.Contains(t, body, `href="/conversations/`+conv.ID+`?at=`+ids[0]+`#msg-`+ids[0]+`"`)
	require.Contains(t, body, `data-latest="true"`)

	_, body = e.get("/conversations/" + conv.ID + "?at=" + ids[0])
	require.Contains(t, body, `id="msg-`+ids[0]+`"`)
	require.NotContains(t, body, `id="msg-`+ids[1]+`"`)
	require.Contains(t, body, `data-latest="false"`)

	_, body = e.get("/conversations/" + conv.ID + "?before=" + ids[3] + "&limit=2")
	require.Contains(t, body, "msg b")
	require.Contains(t, body, "msg c")
	require.NotContains(t, body, "msg d")

	resp, body := e.get("/conversations/" + conv.ID + "?fragment=thread")
	require.True(t, strings.HasPrefix(strings.TrimSpace(body), `<li id="msg-`+ids[0]), body)
	require.NotContains(t, body, "<html")
	require.Empty(t, resp.Header.Get("X-Older"), "the whole thread: nothing older")
	// The page's script loads older messages from here: the fragment says
	// where the page after it starts.
	resp, body = e.get("/conversations/" + conv.ID + "?fragment=thread&before=" + ids[4] + "&limit=2")
	require.Equal(t, ids[2], resp.Header.Get("X-Older"))
	require.Contains(t, body, "msg c")
	require.NotContains(t, body, "msg b")

	_, body = e.get("/fragments/messages/" + ids[4])
	require.True(t, strings.HasPrefix(body, `<li id="msg-`+ids[4]+`"`), body)

	_, body = e.get("/?fragment=list")
	require.NotContains(t, body, "<html")
	require.Contains(t, body, `id="ov-backup">2024-05-01 03:00:00 UTC (5.0 MiB)<`)
	require.Contains(t, body, "unanswered-marker")

	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/conversations/01HZZZZZZZZZZZZZZZZZZZZZZZ", 404, "not found"},
		{"/conversations/%3Cscript%3E", 404, "&lt;script&gt;"},
		{"/conversations/" + conv.ID + "?before=x", 400, "is not a message id"},
		{"/conversations/" + conv.ID + "?limit=0", 400, "limit must be"},
		{"/?cursor=nothex", 400, "cursor"},
		{"/fragments/messages/01HZZZZZZZZZZZZZZZZZZZZZZZ", 404, "not found"},
	} {
		resp, body := e.get(c.path)
		require.Equal(t, c.status, resp.StatusCode, c.path)
		require.Contains(t, resp.Header.Get("Content-Type"), "text/html", c.path)
		require.Contains(t, body, c.want, c.path)
		require.NotContains(t, body, "<script>", c.path)
	}

	// Paging the list: 3 customers, 2 per page.
	for _, n := range []string{"31600000001", "31600000002"} {
		e.save(in("x"+n, n, "hi"))
	}
	_, body = e.get("/?limit=2")
	i := strings.Index(body, `class="older" href="/?cursor=`)
	require.Greater(t, i, 0, body)
	next := body[i+len(`class="older" href="`):]
	next = next[:strings.IndexByte(next, '"')]
	_, body = e.get(strings.ReplaceAll(next, "&amp;", "&"))
	require.Contains(t, body, "+"+customer)
	require.NotContains(t, body, "+31600000002")
	require.Contains(t, body, `class="newest"`)
}

func TestStaticFilesAreHashedAndCached(t *testing.T) {
	e := newEnv(t)
	w, err := New(Deps{Store: e.st})
	require.NoError(t, err)
	require.Equal(t, []string{"app.css", "app.js"}, w.pages.sortedStatic())
	_, page := e.get("/")
	for _, name := range []string{"app.css", "app.js"} {
		f := w.pages.static[name]
		url := "/static/" + f.hash + "/" + name
		require.Contains(t, page, url)
		resp, body := e.get(url)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, resp.Header.Get("Cache-Control"), "max-age=31536000")
		require.Equal(t, string(f.body), body)
		resp, _ = e.get("/static/0000000000000000/" + name)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	}
	require.Contains(t, w.pages.static["app.css"].ctype, "text/css")
	// No inline script anywhere: the CSP forbids it.
	require.NotContains(t, page, "<script>")
	require.NotContains(t, page, " on")
}

func TestEventsStreamChanges(t *testing.T) {
	e := newEnv(t)
	a := e.save(in("a1", "31611111111", "first"))[0]
	b := e.save(in("b1", "31622222222", "other"))[0]

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/events?conversation="+a.ConversationID, nil)
	require.NoError(t, err)
	req.SetBasicAuth(agentUser, agentPass)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/event-stream")
	rd := bufio.NewReader(resp.Body)
	readUntil := func(prefix string) string {
		for {
			line, err := rd.ReadString('\n')
			require.NoError(t, err)
			if strings.HasPrefix(line, prefix) {
				return strings.TrimSpace(strings.TrimPrefix(line, prefix))
			}
		}
	}
	readUntil(": connected") // subscribed from here on

	// Another conversation's message is not sent; this one's is, and so is
	// the status change of our reply.
	e.save(in("b2", "31622222222", "other again"))
	n := e.save(in("a2", "31611111111", "second"))[0]
	var c changeJSON
	require.NoError(t, json.Unmarshal([]byte(readUntil("data: ")), &c))
	require.Equal(t, changeJSON{Kind: "message", ConversationID: a.ConversationID, MessageID: n.MessageID}, c)

	o := e.queue(out("o1", "31611111111", "reply"))[0]
	require.NoError(t, json.Unmarshal([]byte(readUntil("data: ")), &c))
	require.Equal(t, o.MessageID, c.MessageID)
	e.report(store.Report{Provider: store.ProviderInfobip, ExternalID: "o1", Status: store.StatusDelivered, At: time.Now().Add(time.Minute)})
	for c.Kind != "status" {
		require.NoError(t, json.Unmarshal([]byte(readUntil("data: ")), &c))
		require.Equal(t, a.ConversationID, c.ConversationID)
	}
	require.Equal(t, o.MessageID, c.MessageID)
	_ = b

	// Bad and unknown conversations are refused before streaming.
	require.Contains(t, e.apiError("/events?conversation=bad", http.StatusBadRequest), "not a conversation id")
	require.Contains(t, e.apiError("/events?conversation=01HZZZZZZZZZZZZZZZZZZZZZZZ", http.StatusNotFound), "not found")
}

func TestEventsStreamLimit(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.MaxStreams = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/events", nil)
	require.NoError(t, err)
	req.SetBasicAuth(agentUser, agentPass)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "retry: 2000\n", line)
	require.Contains(t, e.apiError("/events", http.StatusServiceUnavailable), "too many open event streams")
}

func TestBrokenTemplatesFailAtStart(t *testing.T) {
	// newPages parses everything once; a name the handlers need must exist.
	p, err := newPages()
	require.NoError(t, err)
	for _, name := range []string{"index", "thread", "messages", "msg", "list", "error", "head", "overview", "body", "media"} {
		require.NotNil(t, p.tmpl.Lookup(name), name)
	}
}

// A client that keeps its connection open but stops reading must not hold
// a stream (and its goroutine) forever: once its socket buffers are full,
// the write deadline ends the stream and frees the slot.
func TestEventsStreamDropsAClientThatStopsReading(t *testing.T) {
	e := newEnv(t, func(d *Deps) {
		d.MaxStreams = 1
		d.Heartbeat = 50 * time.Millisecond
		d.StreamWriteTimeout = 100 * time.Millisecond
	})
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return err
	}}
	conn, err := dialer.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/events", nil)
	require.NoError(t, err)
	req.SetBasicAuth(agentUser, agentPass)
	require.NoError(t, req.Write(conn))
	// The client never reads a byte from here on.
	require.Eventually(t, func() bool { return e.w.streams.Load() == 1 }, 10*time.Second, 5*time.Millisecond)

	// Flood the stream with large changes until the server's writes block.
	big := strings.Repeat("X", 8<<10)
	deadline := time.Now().Add(20 * time.Second)
	for e.w.streams.Load() != 0 {
		require.True(t, time.Now().Before(deadline), "the stream of a client that stopped reading is still open")
		require.NoError(t, e.st.Update(context.Background(), func(tx *store.Tx) error {
			for range 256 {
				tx.Notify(store.Change{Kind: "message", MessageID: big})
			}
			return nil
		}))
	}
	// The slot is free for the next agent.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/events", nil)
	require.NoError(t, err)
	req.SetBasicAuth(agentUser, agentPass)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// A graceful shutdown ends the event streams instead of waiting for them
// until its deadline.
func TestEventsStreamEndsOnShutdown(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "imchannel.db"), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	w, err := New(Deps{Store: st, Creds: []httpx.Credential{{User: agentUser, Password: agentPass}}})
	require.NoError(t, err)
	r := mux.NewRouter()
	w.Register(r)
	srv := httptest.NewUnstartedServer(r)
	srv.Start()
	t.Cleanup(srv.Close)

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/events", nil)
	require.NoError(t, err)
	req.SetBasicAuth(agentUser, agentPass)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	line, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "retry: 2000\n", line)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, srv.Config.Shutdown(ctx), "shutdown waited for the stream")
	require.Less(t, time.Since(start), 4*time.Second)
	_, err = io.Copy(io.Discard, rd)
	require.NoError(t, err, "the stream ends cleanly")
	require.Zero(t, w.streams.Load())
}

// Never a broken image: an image message gets an <img> only for cached
// bytes a browser can show; anything else is a placeholder or a download.
func TestImageMessagesNeverShowABrokenImage(t *testing.T) {
	e := newEnv(t)
	for i, c := range []struct {
		name                  string
		state, ctype, sniffed string
		img, download, holder bool
	}{
		{name: "cached jpeg", state: store.MediaCached, ctype: "image/jpeg", img: true},
		{name: "cached, type unknown", state: store.MediaCached, ctype: "application/octet-stream", img: true},
		{name: "cached, declared html, bytes a png", state: store.MediaCached, ctype: "text/html", sniffed: "image/png", img: true},
		{name: "cached html page", state: store.MediaCached, ctype: "text/html; charset=utf-8", download: true},
		{name: "cached json error", state: store.MediaCached, ctype: "application/json", download: true},
		{name: "pending", state: store.MediaPending, ctype: "image/jpeg", holder: true},
		{name: "failed", state: store.MediaFailed, ctype: "image/jpeg", holder: true},
		{name: "too large", state: store.MediaTooLarge, ctype: "image/jpeg", holder: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := in(fmt.Sprintf("img-%d", i), customer, "")
			m.Type, m.Text = store.TypeImage, ""
			m.Media = &store.Media{State: c.state, ContentType: c.ctype, SniffedType: c.sniffed, Size: 100}
			rs := e.save(m)
			resp, frag := e.get("/fragments/messages/" + rs[0].MessageID)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, c.img, strings.Contains(frag, "<img"), frag)
			require.Equal(t, c.download, strings.Contains(frag, `class="download"`), frag)
			require.Equal(t, c.holder || c.download, strings.Contains(frag, "media-placeholder"), frag)
			if c.download {
				require.Contains(t, frag, "image: download failed", "bytes that are not an image: a failed fetch")
			}
		})
	}
}

// "Messages today" counts the day of web.timezone.
func TestOverviewCountsTheConfiguredDay(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	require.NoError(t, err)
	cases := []struct {
		name string
		loc  *time.Location
		want string
	}{
		{"UTC", nil, `id="ov-today">0 in · 0 out<`},
		{"Tokyo", tokyo, `id="ov-today">1 in · 0 out<`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// 20:00 UTC on the 1st is the 2nd in Tokyo; "now" is 01:00 UTC on the 2nd.
			clock := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
			st, err := store.Open(filepath.Join(t.TempDir(), "imchannel.db"), store.Options{Now: func() time.Time { return clock }})
			require.NoError(t, err)
			defer st.Close()
			_, err = st.SaveInbound(context.Background(), []*store.Message{in("w1", customer, "hi")})
			require.NoError(t, err)
			clock = time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
			w, err := New(Deps{Store: st, Location: c.loc})
			require.NoError(t, err)
			r := mux.NewRouter()
			w.Register(r)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/?fragment=list", nil)
			req.Host = "127.0.0.1" // open mode answers loopback hosts only
			r.ServeHTTP(rec, req)
			require.Equal(t, http.StatusOK, rec.Code)
			require.Contains(t, rec.Body.String(), c.want)
		})
	}
}

// Our replies show where they really are: retrying (attempts, last error,
// next try), scheduled (when they go), failed (the reason and what to do),
// and the API carries the same.
func TestRepliesShowTheirRealState(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.save(in("wamid.1", customer, "hello"))

	retry := e.queue(out("r1", customer, "retried one"))[0]
	next := time.Date(2030, 1, 2, 21, 29, 0, 0, time.UTC)
	for i := 0; i < 6; i++ {
		require.NoError(t, e.st.MarkRetry(ctx, retry.MessageID, next, "provider answered 503: Service Unavailable"))
	}
	later := out("s1", customer, "scheduled one")
	sendAt := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	later.Outbound = &store.OutboundSpec{SendAt: sendAt}
	sched := e.queue(later)[0]
	failed := e.queue(out("f1", customer, "failed one"))[0]
	require.NoError(t, e.st.MarkFailed(ctx, failed.MessageID, "provider answered 400: (#131047) Re-engagement message"))

	_, body := e.get("/conversations/" + retry.ConversationID)
	require.Contains(t, body, `retrying: attempt 6, last error <span class="reason">provider answered 503: Service Unavailable</span>, next try <time class="when" datetime="2030-01-02T21:29:00Z">`)
	require.Contains(t, body, `scheduled: goes out at <time class="when" datetime="`+sendAt.Format(time.RFC3339Nano)+`"`)
	require.Contains(t, body, `<strong>What to do:</strong> outside the 24 h window: send a template`)

	var m MessageJSON
	e.getJSON("/api/v1/messages/"+retry.MessageID, http.StatusOK, &m)
	require.Equal(t, &DeliveryJSON{Attempts: 6, LastError: "provider answered 503: Service Unavailable", NextAttemptAt: next}, m.Delivery)
	var raw map[string]any
	e.getJSON("/api/v1/messages/"+sched.MessageID, http.StatusOK, &raw)
	require.Equal(t, sendAt.Format(time.RFC3339), raw["sendAt"])
	require.Equal(t, "scheduled", raw["status"])
	require.Contains(t, raw, "delivery", "the outbox holds it")
	raw = nil
	e.getJSON("/api/v1/messages/"+failed.MessageID, http.StatusOK, &raw)
	require.NotContains(t, raw, "delivery", "a failed message has left the outbox")
	require.NotContains(t, raw, "sendAt")
}

func TestNextStepForFailureReasons(t *testing.T) {
	cases := []struct{ reason, want string }{
		{"provider answered 400: (#131047) Re-engagement message", "outside the 24 h window"},
		{"customer 31… is outside the 24h0m0s customer-service window", "outside the 24 h window"},
		{"REJECTED_NOT_ENOUGH_CREDITS: Not enough credits", "out of credit"},
		{"EC_ACCOUNT_BLOCKED: Account blocked (permanent)", "blocked"},
		{"provider answered 401: unauthorized", "credentials"},
		{"(#131026) Message undeliverable", "cannot receive WhatsApp"},
		{"gave up after 24h0m0s (9 attempts); last error: timeout", "could not be reached"},
		{"something nobody has seen", "send it again"},
	}
	for _, c := range cases {
		t.Run(c.reason, func(t *testing.T) {
			require.Contains(t, nextStep(c.reason), c.want)
		})
	}
}

// Pages, JSON and the event stream are gzip-compressed for clients that
// accept it; the stream still delivers each event as it happens.
func TestAnswersAreCompressed(t *testing.T) {
	e := newEnv(t)
	var conv string
	for i := 0; i < 30; i++ {
		conv = e.save(in(fmt.Sprintf("w%d", i), customer, "a message long enough to make the page worth compressing"))[0].ConversationID
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(path string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		require.NoError(t, err)
		req.SetBasicAuth(agentUser, agentPass)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		require.NoError(t, err)
		return resp
	}
	for _, c := range []struct{ path, ctype, want string }{
		{"/", "text/html", `class="conv-list"`},
		{"/api/v1/conversations/" + conv + "/messages", "application/json", `"messages"`},
	} {
		resp := get(c.path)
		require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"), c.path)
		require.Contains(t, resp.Header.Get("Content-Type"), c.ctype)
		zr, err := gzip.NewReader(resp.Body)
		require.NoError(t, err)
		b, err := io.ReadAll(zr)
		require.NoError(t, err)
		resp.Body.Close()
		require.Contains(t, string(b), c.want)
	}

	resp := get("/events")
	defer resp.Body.Close()
	require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	zr, err := gzip.NewReader(resp.Body) // reads the header the first flush sent
	require.NoError(t, err)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	id := e.save(in("live", customer, "while the stream is open"))[0].MessageID
	for l := range lines {
		if strings.Contains(l, id) {
			return // the event arrived through the compressor, unbuffered
		}
	}
	t.Fatal("the stream ended without the event")
}

// The smaller fixes of issue 15 and the supervisors' pieces.
func TestSmallerFixesExportAndTranscript(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := 0; i < 6; i++ {
		ids = append(ids, e.save(in(fmt.Sprintf("w%d", i), customer, fmt.Sprintf("msg %d", i)))[0].MessageID)
	}
	doc := in("doc", customer, "")
	doc.Type, doc.Caption = store.TypeDocument, "invoice-42.pdf"
	doc.Media = &store.Media{ContentType: "application/pdf", State: store.MediaCached, FileName: "invoice-42.pdf", Size: 2048}
	docID := e.save(doc)[0].MessageID
	un := in("uns", customer, "")
	un.Type, un.Text, un.Raw = store.TypeUnsupported, "", json.RawMessage(`{"type":"ORDER_STATUS","x":1}`)
	unID := e.save(un)[0].MessageID
	ours := e.queue(out("o1", customer, "our answer"))[0]
	conv := ours.ConversationID

	_, frag := e.get("/fragments/messages/" + docID)
	require.Equal(t, 1, strings.Count(frag, "invoice-42.pdf</a>")+strings.Count(frag, ">invoice-42.pdf<"), "the document's name once: %s", frag)
	_, frag = e.get("/fragments/messages/" + unID)
	require.Contains(t, frag, "A message of a type imchannel does not show: ORDER_STATUS.")
	_, frag = e.get("/fragments/messages/" + ours.MessageID)
	require.NotContains(t, frag, "to +"+customer, "our bubbles do not repeat the customer's number")

	// A quote's older page offers "newer →", which pages forwards.
	_, body := e.get("/conversations/" + conv + "?at=" + ids[1] + "&limit=2")
	require.Contains(t, body, `href="/conversations/`+conv+`?after=`+ids[1]+`">newer →</a>`)
	_, body = e.get("/conversations/" + conv + "?after=" + ids[1] + "&limit=2")
	require.Contains(t, body, "msg 2")
	require.Contains(t, body, "msg 3")
	require.NotContains(t, body, "msg 1<")
	require.NotContains(t, body, "msg 4")
	require.Contains(t, body, `?after=`+ids[3]+`">newer →`)
	_, body = e.get("/conversations/" + conv + "?after=" + ids[3] + "&limit=50")
	require.Contains(t, body, `data-latest="true"`)
	require.NotContains(t, body, "newer →")

	// Export and transcript.
	var ex struct {
		Conversation ConversationJSON `json:"conversation"`
		Messages     []MessageJSON    `json:"messages"`
	}
	e.getJSON("/api/v1/conversations/"+conv+"/export", http.StatusOK, &ex)
	require.Equal(t, conv, ex.Conversation.ID)
	require.Len(t, ex.Messages, 9)
	require.Equal(t, "msg 0", ex.Messages[0].Text)
	require.Equal(t, "queued", ex.Messages[8].Timeline[0].Status)
	resp, body := e.get("/conversations/" + conv + "/transcript")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `data-page="transcript"`)
	require.Contains(t, body, "msg 5")
	require.Contains(t, body, "Agent (business &#43;"+bizNumber+")")
	require.Contains(t, e.apiError("/api/v1/conversations/01HZZZZZZZZZZZZZZZZZZZZZZZ/export", http.StatusNotFound), "not found")

	// An unknown address: HTML for a browser, JSON for the rest.
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(e.w.NotFound)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/nope", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	r.ServeHTTP(rec, req)
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Contains(t, rec.Header().Get("Content-Type"), "text/html")
	require.Contains(t, rec.Body.String(), "there is no page at /nope")
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nope", nil))
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Contains(t, rec.Header().Get("Content-Type"), "application/json")
}

func TestSnippetKeepsTheMatchInView(t *testing.T) {
	long := strings.Repeat("filler words here ", 30) + "the order 4711 arrived " + strings.Repeat("more text after ", 30)
	s := snippet(long, []string{"4711"})
	require.Contains(t, s, "4711")
	require.True(t, strings.HasPrefix(s, "…") && strings.HasSuffix(s, "…"), s)
	require.LessOrEqual(t, len([]rune(s)), 162)
	require.Equal(t, "short text", snippet("short   text", []string{"x"}))
}
