package relay

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/config"
	"imchannel/store"
)

const (
	business = "1234"
	customer = "385919998888"
)

// target is a fake CTLive: it records every post and answers what answer
// says for the n-th post (0-based); nil answers 200.
type target struct {
	srv    *httptest.Server
	mu     sync.Mutex
	posts  []post
	answer func(n int, p post) int
}

type post struct {
	header http.Header
	body   []byte
	items  []map[string]any // results (infobip) or events (json)
}

func newTarget(t testing.TB, answer func(n int, p post) int) *target {
	t.Helper()
	tg := &target{answer: answer}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body struct {
			Results []map[string]any `json:"results"`
			Events  []map[string]any `json:"events"`
		}
		_ = json.Unmarshal(b, &body)
		p := post{header: r.Header.Clone(), body: b, items: append(body.Results, body.Events...)}
		tg.mu.Lock()
		n := len(tg.posts)
		tg.posts = append(tg.posts, p)
		tg.mu.Unlock()
		code := 200
		if tg.answer != nil {
			code = tg.answer(n, p)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// accepted lists the items of the posts answered 2xx, in order.
func (tg *target) accepted(ok func(n int, p post) bool) []map[string]any {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	var out []map[string]any
	for n, p := range tg.posts {
		if ok(n, p) {
			out = append(out, p.items...)
		}
	}
	return out
}

func (tg *target) all() []map[string]any {
	return tg.accepted(func(int, post) bool { return true })
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "imchannel.db"), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func targetConfig(url, format string) config.Relay {
	c := config.RelayDefaults()
	c.Name, c.URL, c.Format = "ct", url, format
	c.Timeout = config.Duration{Duration: 2 * time.Second}
	c.MaxBackoff = config.Duration{Duration: 50 * time.Millisecond}
	return c
}

// start runs a relay until the test ends (or stop is called).
func start(t *testing.T, s *store.Store, targets ...config.Relay) (r *Relay, stop func()) {
	t.Helper()
	r = New(Deps{Store: s, Targets: targets, PublicURL: "http://imchannel.test/", MinBackoff: 5 * time.Millisecond,
		MessageJSON: func(m *store.Message) any {
			return map[string]any{"id": m.ID, "externalId": m.ExternalID, "media": m.Media}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return r, stop
}

func save(t *testing.T, s *store.Store, msgs ...*store.Message) []store.Result {
	t.Helper()
	rs, err := s.SaveInbound(context.Background(), msgs)
	require.NoError(t, err)
	return rs
}

func text(provider, ext, from, body string) *store.Message {
	return &store.Message{Provider: provider, ExternalID: ext, From: from, To: business, Type: store.TypeText, Text: body,
		ReceivedAt: time.Date(2019, 7, 19, 11, 21, 27, 861e6, time.UTC)}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 5*time.Millisecond, what)
}

func messageIDs(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		out = append(out, it["messageId"].(string))
	}
	return out
}

// Every inbound type, from either provider, becomes the IM channel protocol's shape with
// every field that has a place there.
func TestInfobipFormatTranslatesEveryType(t *testing.T) {
	s := openStore(t)
	cases := []struct {
		name string
		msg  *store.Message
		want string // the result's "message" object
	}{
		{"text", text("infobip", "ib-text", customer, "Support hello"),
			`{"type":"TEXT","text":"Support hello"}`},
		{"cm location", &store.Message{Provider: "cm", ExternalID: "cm-loc", From: customer, To: business, Type: store.TypeLocation,
			Location: &store.Location{Latitude: 51.6, Longitude: 4.77, Name: "Office", Address: "Main St 1"}},
			`{"type":"LOCATION","latitude":51.6,"longitude":4.77,"name":"Office","address":"Main St 1"}`},
		{"cm contacts", &store.Message{Provider: "cm", ExternalID: "cm-contacts", From: customer, To: business, Type: store.TypeContacts,
			Contacts: json.RawMessage(`[{"name":{"formatted_name":"Ann"}}]`)},
			`{"type":"CONTACT","contacts":[{"name":{"formatted_name":"Ann"}}]}`},
		{"cm list reply", &store.Message{Provider: "cm", ExternalID: "cm-list", From: customer, To: business, Type: store.TypeInteractive,
			Interactive: &store.Interactive{Type: "list_reply", ID: "r1", Title: "Row", Description: "d"}},
			`{"type":"INTERACTIVE_LIST_REPLY","id":"r1","title":"Row","description":"d"}`},
		{"cm button reply", &store.Message{Provider: "cm", ExternalID: "cm-btn", From: customer, To: business, Type: store.TypeInteractive,
			Interactive: &store.Interactive{Type: "button_reply", ID: "b1", Title: "Yes"}},
			`{"type":"INTERACTIVE_BUTTON_REPLY","id":"b1","title":"Yes"}`},
		{"cm template button", &store.Message{Provider: "cm", ExternalID: "cm-tbtn", From: customer, To: business, Type: store.TypeButton,
			Text: "Stop", Interactive: &store.Interactive{Type: "button", Title: "Stop", Payload: "STOP"}},
			`{"type":"BUTTON","text":"Stop","payload":"STOP"}`},
		{"cm order", &store.Message{Provider: "cm", ExternalID: "cm-order", From: customer, To: business, Type: store.TypeOrder,
			Order: json.RawMessage(`{"catalog_id":"c1","product_items":[{"product_retailer_id":"p"}],"text":"pls"}`)},
			`{"type":"ORDER","text":"pls","catalogId":"c1","productItems":[{"product_retailer_id":"p"}]}`},
		{"unsupported", &store.Message{Provider: "cm", ExternalID: "cm-x", From: customer, To: business, Type: store.TypeUnsupported, Text: "?"},
			`{"type":"UNSUPPORTED","text":"?"}`},
	}
	for _, c := range cases {
		save(t, s, c.msg)
	}
	tg := newTarget(t, nil)
	start(t, s, targetConfig(tg.srv.URL, "infobip"))
	waitFor(t, "every message relayed", func() bool { return len(tg.all()) == len(cases) })
	got := map[string]map[string]any{}
	for _, it := range tg.all() {
		got[it["messageId"].(string)] = it
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := got[c.msg.ExternalID]
			require.NotNil(t, r)
			require.Equal(t, customer, r["from"])
			require.Equal(t, business, r["to"])
			require.Equal(t, "WHATSAPP", r["integrationType"])
			require.Contains(t, r, "pairedMessageId")
			m, _ := json.Marshal(r["message"])
			require.JSONEq(t, c.want, string(m))
		})
	}
	require.Equal(t, "2019-07-19T11:21:27.861+0000", got["ib-text"]["receivedAt"])
}

// Contact name, quotes (pairedMessageId, the id CTLive knows the quoted
// message by) and media at our own capability URL, held back until the
// bytes are cached; another conversation is not held up meanwhile.
func TestInfobipFormatMediaRepliesAndOrder(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	out, err := s.QueueOutbound(ctx, []*store.Message{{Provider: "infobip", ExternalID: "ct-out-1", From: business, To: customer,
		Type: store.TypeText, Text: "hi from the agent"}}, store.QueueOptions{})
	require.NoError(t, err)
	img := &store.Message{Provider: "cm", ExternalID: "cm-img", From: customer, To: business, Type: store.TypeImage,
		Caption: "look", ContactName: "Frank", Media: &store.Media{SourceURL: "http://cm.test/img", ContentType: "image/jpeg"}}
	doc := &store.Message{Provider: "cm", ExternalID: "cm-doc", From: customer, To: business, Type: store.TypeDocument,
		Caption: "see attached", Media: &store.Media{SourceURL: "http://cm.test/doc", FileName: "invoice.pdf"}}
	after := text("cm", "cm-after", customer, "did you get it?")
	after.ReplyTo = &store.ReplyRef{ExternalID: "cm-alias-of-out"}
	rs := save(t, s, img, doc, after)
	require.NoError(t, s.Update(ctx, func(tx *store.Tx) error { return tx.AddAlias(out[0].MessageID, "cm", "cm-alias-of-out") }))
	save(t, s, text("infobip", "ib-other", "31600000001", "another customer"))

	tg := newTarget(t, nil)
	start(t, s, targetConfig(tg.srv.URL, "infobip"))
	waitFor(t, "the other conversation goes first", func() bool { return len(tg.all()) == 1 })
	require.Equal(t, []string{"ib-other"}, messageIDs(tg.all()))

	for _, r := range rs[:2] {
		m, err := s.Message(r.MessageID)
		require.NoError(t, err)
		_, err = s.MarkMediaFetched(ctx, m.Media.ID, store.BytesSource([]byte("%PDF-1.4 bytes "+m.ExternalID)), "", "", nil)
		require.NoError(t, err)
	}
	waitFor(t, "the held conversation follows", func() bool { return len(tg.all()) == 4 })
	items := tg.all()
	require.Equal(t, []string{"ib-other", "cm-img", "cm-doc", "cm-after"}, messageIDs(items))
	imgRes, docRes, afterRes := items[1], items[2], items[3]
	require.Equal(t, map[string]any{"name": "Frank"}, imgRes["contact"])
	im := imgRes["message"].(map[string]any)
	require.Equal(t, "IMAGE", im["type"])
	require.Equal(t, "look", im["caption"])
	md, err := s.Message(rs[0].MessageID)
	require.NoError(t, err)
	full, err := s.Media(md.Media.ID)
	require.NoError(t, err)
	require.Equal(t, "http://imchannel.test/media/public/"+full.Token, im["url"])
	dm := docRes["message"].(map[string]any)
	require.Equal(t, "DOCUMENT", dm["type"])
	require.Equal(t, "invoice.pdf", dm["caption"], "seed 000: a document's caption is its file name")
	require.Equal(t, "ct-out-1", afterRes["pairedMessageId"], "a reply names the agent's message by CTLive's id")
	require.Nil(t, imgRes["pairedMessageId"])
}

// Delivery and seen reports of outbound messages go in the protocol's report
// shapes (docs/protocols.md#infobip-reports); queued and scheduled entries have no shape and are passed over.
func TestInfobipFormatReports(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	_, err := s.QueueOutbound(ctx, []*store.Message{{Provider: "cm", ExternalID: "ct-9", From: business, To: customer,
		Type: store.TypeText, Text: "x", Outbound: &store.OutboundSpec{BulkID: "bulk-1"}}}, store.QueueOptions{})
	require.NoError(t, err)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	_, err = s.ApplyReports(ctx, []store.Report{
		{Provider: "cm", ExternalID: "ct-9", Status: store.StatusSent, At: at},
		{Provider: "cm", ExternalID: "ct-9", Status: store.StatusDelivered, At: at.Add(time.Second)},
		{Provider: "cm", ExternalID: "ct-9", Status: store.StatusSeen, At: at.Add(2 * time.Second)},
		{Provider: "cm", ExternalID: "ct-9", Status: store.StatusFailed, At: at.Add(3 * time.Second), Reason: "blocked"},
	})
	require.NoError(t, err)
	tg := newTarget(t, nil)
	start(t, s, targetConfig(tg.srv.URL, "infobip"))
	waitFor(t, "four reports", func() bool { return len(tg.all()) == 4 })
	var got []string
	for _, it := range tg.all() {
		b, _ := json.Marshal(it)
		got = append(got, string(b))
	}
	require.JSONEq(t, `{"bulkId":"bulk-1","status":{"id":7,"groupId":1,"groupName":"PENDING","name":"PENDING_ENROUTE","description":"Message sent to next instance"},"messageId":"ct-9","doneAt":"2026-12-01T10:00:00.000+0000","sentAt":"2026-12-01T10:00:00.000+0000","to":"385919998888","channel":"WHATSAPP"}`, got[0])
	require.JSONEq(t, `{"bulkId":"bulk-1","status":{"id":5,"groupId":3,"groupName":"DELIVERED","name":"DELIVERED_TO_HANDSET","description":"Message delivered to handset"},"messageId":"ct-9","doneAt":"2026-12-01T10:00:01.000+0000","sentAt":"2026-12-01T10:00:00.000+0000","to":"385919998888","channel":"WHATSAPP"}`, got[1])
	require.JSONEq(t, `{"messageId":"ct-9","to":"385919998888","sentAt":"2026-12-01T10:00:00.000+0000","seenAt":"2026-12-01T10:00:02.000+0000"}`, got[2])
	require.JSONEq(t, `{"bulkId":"bulk-1","status":{"id":9,"groupId":2,"groupName":"UNDELIVERABLE","name":"UNDELIVERABLE_NOT_DELIVERED","description":"blocked"},"messageId":"ct-9","doneAt":"2026-12-01T10:00:03.000+0000","sentAt":"2026-12-01T10:00:00.000+0000","to":"385919998888","channel":"WHATSAPP"}`, got[3])
}

// Failures: 503s, a hanging target and a 4xx for one event. Everything else
// arrives (at least once, in order per conversation), the refused event is
// quarantined and shown in the status, and the failures are counted.
func TestDeliveryThroughFailures(t *testing.T) {
	s := openStore(t)
	for i := range 30 {
		from := []string{customer, "31600000001", "31600000002"}[i%3]
		save(t, s, text([]string{"infobip", "cm"}[i%2], "m"+strconv.Itoa(i), from, "n"+strconv.Itoa(i)))
	}
	release := make(chan struct{})
	answer := func(n int, p post) int {
		switch {
		case n < 3:
			return 503
		case n == 3:
			<-release // hangs past the client timeout
			return 200
		}
		for _, it := range p.items {
			if it["messageId"] == "m7" {
				return 422
			}
		}
		return 200
	}
	tg := newTarget(t, answer)
	cfg := targetConfig(tg.srv.URL, "infobip")
	cfg.Timeout = config.Duration{Duration: 200 * time.Millisecond}
	r, _ := start(t, s, cfg)
	defer close(release)
	ok := func(n int, p post) bool { return n != 3 && answer(n, p) == 200 }
	waitFor(t, "29 delivered", func() bool { return len(tg.accepted(ok)) >= 29 })
	got := tg.accepted(ok)
	seen := map[string]int{}
	last := map[string]int{}
	for _, it := range got {
		id := it["messageId"].(string)
		seen[id]++
		n, _ := strconv.Atoi(id[1:])
		from := it["from"].(string)
		require.Greater(t, n, last[from]-1, "in order per conversation")
		last[from] = n
	}
	require.Len(t, seen, 29)
	require.NotContains(t, seen, "m7")
	waitFor(t, "state saved", func() bool {
		st := r.Status()[0]
		return st.LagEvents == 0 && st.State.Quarantined == 1
	})
	st := r.Status()[0]
	require.GreaterOrEqual(t, st.State.Failures, uint64(4))
	require.Len(t, st.Quarantine, 1)
	require.Equal(t, "m7", st.Quarantine[0].ExternalID)
	require.Equal(t, 422, st.Quarantine[0].HTTPStatus)
	require.False(t, st.State.LastSuccess.IsZero())
}

// The cursor is durable: a relay started again on the same file sends only
// what came after.
func TestCursorSurvivesRestart(t *testing.T) {
	s := openStore(t)
	save(t, s, text("infobip", "a", customer, "1"), text("infobip", "b", customer, "2"))
	tg := newTarget(t, nil)
	cfg := targetConfig(tg.srv.URL, "infobip")
	r, stop := start(t, s, cfg)
	waitFor(t, "two delivered", func() bool { return r.Status()[0].State.Cursor == 2 })
	stop()
	save(t, s, text("infobip", "c", customer, "3"))
	start(t, s, cfg)
	waitFor(t, "the third", func() bool { return len(tg.all()) == 3 })
	require.Equal(t, []string{"a", "b", "c"}, messageIDs(tg.all()))
}

// Credentials: Basic, and an HMAC of timestamp.body a receiver can check.
func TestCredentialsAndSignature(t *testing.T) {
	s := openStore(t)
	save(t, s, text("infobip", "a", customer, "1"))
	tg := newTarget(t, nil)
	cfg := targetConfig(tg.srv.URL, "json")
	cfg.BasicUser, cfg.BasicPassword, cfg.HMACSecret = "ct", "pw", "s3cret"
	start(t, s, cfg)
	waitFor(t, "one post", func() bool { return len(tg.all()) == 1 })
	tg.mu.Lock()
	p := tg.posts[0]
	tg.mu.Unlock()
	req := &http.Request{Header: p.header}
	u, pw, ok := req.BasicAuth()
	require.True(t, ok)
	require.Equal(t, "ct", u)
	require.Equal(t, "pw", pw)
	ts, err := strconv.ParseInt(p.header.Get(HeaderTimestamp), 10, 64)
	require.NoError(t, err)
	require.Equal(t, Sign("s3cret", time.Unix(ts, 0), p.body), p.header.Get(HeaderSignature))
	require.NotEqual(t, Sign("other", time.Unix(ts, 0), p.body), p.header.Get(HeaderSignature))
	ev := p.items[0]
	require.Equal(t, "1", ev["cursor"])
	require.Equal(t, store.EventMessageReceived, ev["type"])
	require.Equal(t, "a", ev["message"].(map[string]any)["externalId"])
}

// Media still pending when MediaWait has passed goes with the provider's
// URL rather than holding its conversation for ever; media given up on
// (too large) goes with the provider's URL at once.
func TestMediaNotCachedGoesWithTheProvidersURL(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	rs := save(t, s,
		&store.Message{Provider: "cm", ExternalID: "slow", From: customer, To: business, Type: store.TypeImage,
			Media: &store.Media{SourceURL: "http://cm.test/slow"}},
		&store.Message{Provider: "cm", ExternalID: "big", From: "31600000001", To: business, Type: store.TypeVideo,
			Media: &store.Media{SourceURL: "http://cm.test/big"}})
	big, err := s.Message(rs[1].MessageID)
	require.NoError(t, err)
	require.NoError(t, s.MarkMediaFailed(ctx, big.Media.ID, store.MediaTooLarge, "over max_bytes"))

	tg := newTarget(t, nil)
	r := New(Deps{Store: s, Targets: []config.Relay{targetConfig(tg.srv.URL, "infobip")}, PublicURL: "http://imchannel.test",
		MinBackoff: 5 * time.Millisecond, MediaWait: time.Nanosecond})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "both relayed", func() bool { return len(tg.all()) == 2 })
	urls := map[string]any{}
	for _, it := range tg.all() {
		urls[it["messageId"].(string)] = it["message"].(map[string]any)["url"]
	}
	require.Equal(t, "http://cm.test/slow", urls["slow"])
	require.Equal(t, "http://cm.test/big", urls["big"])
}

// Events purged by age before a target got them are skipped and counted;
// the target goes on with what is kept.
func TestExpiredEventsAreSkippedAndCounted(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	save(t, s, text("infobip", "old-1", customer, "1"), text("infobip", "old-2", customer, "2"))
	_, err := s.PurgeEvents(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	save(t, s, text("infobip", "new", customer, "3"))
	tg := newTarget(t, nil)
	r, _ := start(t, s, targetConfig(tg.srv.URL, "infobip"))
	waitFor(t, "the kept event", func() bool { return len(tg.all()) == 1 })
	require.Equal(t, []string{"new"}, messageIDs(tg.all()))
	waitFor(t, "state saved", func() bool { return r.Status()[0].State.Cursor == 3 })
	require.Equal(t, uint64(2), r.Status()[0].State.Skipped)
}

// The json format sends every event type, media at the public URL once
// cached.
func TestJSONFormatEveryEvent(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	rs := save(t, s, &store.Message{Provider: "infobip", ExternalID: "img", From: customer, To: business, Type: store.TypeImage,
		Media: &store.Media{SourceURL: "http://ib.test/img"}})
	m, err := s.Message(rs[0].MessageID)
	require.NoError(t, err)
	_, err = s.MarkMediaFetched(ctx, m.Media.ID, store.BytesSource([]byte("\xff\xd8\xffjpeg")), "image/jpeg", "image/jpeg", nil)
	require.NoError(t, err)
	_, err = s.EraseNumber(ctx, "31600000009") // nobody: no event
	require.NoError(t, err)
	_, err = s.QueueOutbound(ctx, []*store.Message{{Provider: "infobip", ExternalID: "out", From: business, To: customer,
		Type: store.TypeText, Text: "hi"}}, store.QueueOptions{})
	require.NoError(t, err)
	tg := newTarget(t, nil)
	start(t, s, targetConfig(tg.srv.URL, "json"))
	waitFor(t, "three events", func() bool { return len(tg.all()) == 3 })
	evs := tg.all()
	var types []string
	for _, e := range evs {
		types = append(types, e["type"].(string))
	}
	require.Equal(t, []string{store.EventMessageReceived, store.EventMediaCached, store.EventMessageQueued}, types)
	md, err := s.Media(m.Media.ID)
	require.NoError(t, err)
	require.Equal(t, "http://imchannel.test/media/public/"+md.Token, evs[1]["message"].(map[string]any)["media"].(map[string]any)["url"])
	require.Equal(t, rs[0].ConversationID, evs[0]["conversationId"])
}
