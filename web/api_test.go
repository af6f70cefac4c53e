package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

func TestEveryRouteNeedsAgentCredentials(t *testing.T) {
	e := newEnv(t)
	rs := e.save(in("w1", "31612345678", "hi"))
	w, err := New(Deps{Store: e.st})
	require.NoError(t, err)
	css, _ := w.pages.static["app.css"]
	routes := []string{
		"/", "/?q=316", "/conversations/" + rs[0].ConversationID, "/fragments/messages/" + rs[0].MessageID,
		"/static/" + css.hash + "/app.css", "/events",
		"/api/v1/conversations", "/api/v1/conversations/" + rs[0].ConversationID,
		"/api/v1/conversations/" + rs[0].ConversationID + "/messages",
		"/api/v1/messages/" + rs[0].MessageID, "/api/v1/messages?externalId=w1",
	}
	for _, path := range routes {
		for _, c := range []struct{ name, user, pass string }{
			{"none", "", ""}, {"wrong password", agentUser, "nope"}, {"unknown user", "mallory", agentPass},
		} {
			resp, body := e.do(path, c.user, c.pass)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s with %s", path, c.name)
			require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
			require.JSONEq(t, `{"error":"missing or wrong credentials"}`, body)
		}
	}
	for _, path := range routes {
		if path == "/events" {
			continue // a stream: checked in the SSE test
		}
		resp, body := e.get(path)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
	}
}

func TestConversationsListSearchAndPaging(t *testing.T) {
	e := newEnv(t)
	names := []string{"Frank", "Aïcha", "Bob"}
	var convIDs []string
	for i := 0; i < 7; i++ {
		m := in(fmt.Sprintf("w%d", i), fmt.Sprintf("+31 6 1000 00%02d", i), fmt.Sprintf("hello %d", i))
		m.ContactName = names[i%3]
		rs := e.save(m)
		convIDs = append(convIDs, rs[0].ConversationID)
	}
	// An answer to the third customer makes it the most recent.
	e.queue(out("o1", "31610000002", "answer"))

	var page struct {
		Conversations []ConversationJSON `json:"conversations"`
		Next          string             `json:"next"`
	}
	e.getJSON("/api/v1/conversations?limit=3", http.StatusOK, &page)
	require.Len(t, page.Conversations, 3)
	require.NotEmpty(t, page.Next)
	first := page.Conversations[0]
	require.Equal(t, convIDs[2], first.ID)
	require.Equal(t, "31610000002", first.Customer)
	require.Equal(t, bizNumber, first.Business)
	require.Equal(t, "Bob", first.Name)
	require.Equal(t, "answer", first.LastMessage)
	require.Equal(t, "outbound", first.LastDirection)
	require.False(t, first.Unanswered)
	require.Equal(t, 2, first.MessageCount)
	require.True(t, page.Conversations[1].Unanswered)
	require.Equal(t, convIDs[6], page.Conversations[1].ID)

	// Walk every page: each conversation once, most recent first.
	seen := map[string]bool{}
	cursor := ""
	var order []string
	for i := 0; ; i++ {
		require.Less(t, i, 10)
		var p struct {
			Conversations []ConversationJSON `json:"conversations"`
			Next          string             `json:"next"`
		}
		e.getJSON("/api/v1/conversations?limit=2&cursor="+url.QueryEscape(cursor), http.StatusOK, &p)
		for _, c := range p.Conversations {
			require.False(t, seen[c.ID], "conversation %s twice", c.ID)
			seen[c.ID] = true
			order = append(order, c.ID)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	require.Equal(t, []string{convIDs[2], convIDs[6], convIDs[5], convIDs[4], convIDs[3], convIDs[1], convIDs[0]}, order)

	search := func(q string) []string {
		var p struct {
			Conversations []ConversationJSON `json:"conversations"`
		}
		e.getJSON("/api/v1/conversations?q="+url.QueryEscape(q), http.StatusOK, &p)
		var ids []string
		for _, c := range p.Conversations {
			ids = append(ids, c.Customer)
		}
		return ids
	}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"+31 6 1000 0004", []string{"31610000004"}},
		{"0031610000004", []string{"31610000004"}},
		{"00 04", []string{"31610000004"}}, // partial digits, any spacing
		{"0000", []string{"31610000002", "31610000006", "31610000005", "31610000004", "31610000003", "31610000001", "31610000000"}},
		{"aïcha", []string{"31610000004", "31610000001"}},
		{"FRANK", []string{"31610000006", "31610000003", "31610000000"}},
		{"nobody", nil},
	} {
		require.Equal(t, c.want, search(c.q), "q=%q", c.q)
	}
	// No match is an empty list, not null.
	_, body := e.get("/api/v1/conversations?q=nobody")
	require.JSONEq(t, `{"conversations":[],"total":0}`, body)
}

// Filters, business numbers, totals, accents, national numbers and message
// text through the API.
func TestConversationsFiltersAndMessageSearch(t *testing.T) {
	e := newEnv(t, func(d *Deps) { d.DefaultRegion = "DE" })
	a := in("a1", "491701234567", "Wo ist meine Bestellung 4711?")
	a.ContactName = "Jürgen Müller"
	e.save(a)
	b := in("b1", "31611111111", "order 4711 please")
	b.To = "5678"
	e.save(b)
	e.queue(out("b2", "31611111111", "your order 4711 ships"))
	fail := e.queue(out("c1", "31622222222", "never arrives"))[0]
	require.NoError(t, e.st.MarkFailed(context.Background(), fail.MessageID, "provider answered 400: no"))

	type list struct {
		Conversations []ConversationJSON `json:"conversations"`
		Total         int                `json:"total"`
	}
	for _, c := range []struct {
		query string
		want  []string
		total int
	}{
		{"", []string{"31622222222", "31611111111", "31611111111", "491701234567"}, 4},
		{"filter=unanswered", []string{"31611111111", "491701234567"}, 2},
		{"filter=failed", []string{"31622222222"}, 1},
		{"business=5678", []string{"31611111111"}, 1},
		{"q=jurgen", []string{"491701234567"}, 1},
		{"q=MULLER", []string{"491701234567"}, 1},
		{"q=" + url.QueryEscape("0170 1234567"), []string{"491701234567"}, 1}, // national, read as DE
		{"q=" + url.QueryEscape("+49 170 1234567"), []string{"491701234567"}, 1},
		{"limit=1", []string{"31622222222"}, 4},
	} {
		var l list
		e.getJSON("/api/v1/conversations?"+c.query, http.StatusOK, &l)
		var got []string
		for _, cv := range l.Conversations {
			got = append(got, cv.Customer)
		}
		require.Equal(t, c.want, got, c.query)
		require.Equal(t, c.total, l.Total, c.query)
	}

	var ms struct {
		Messages []MessageJSON `json:"messages"`
		Next     string        `json:"next"`
		Total    int           `json:"total"`
	}
	e.getJSON("/api/v1/messages?q=4711", http.StatusOK, &ms)
	require.Equal(t, 3, ms.Total)
	require.Len(t, ms.Messages, 3)
	require.Equal(t, "your order 4711 ships", ms.Messages[0].Text, "newest first")
	require.NotEmpty(t, ms.Messages[0].ConversationID)
	e.getJSON("/api/v1/messages?q=ORDER+4711&limit=1", http.StatusOK, &ms)
	require.Equal(t, 2, ms.Total)
	require.Len(t, ms.Messages, 1)
	require.NotEmpty(t, ms.Next)
	next := ms.Next
	ms.Next = ""
	e.getJSON("/api/v1/messages?q=ORDER+4711&limit=1&cursor="+next, http.StatusOK, &ms)
	require.Equal(t, "order 4711 please", ms.Messages[0].Text)
	require.Empty(t, ms.Next)

	for _, bad := range []struct{ path, want string }{
		{"/api/v1/conversations?filter=maybe", "filter"},
		{"/api/v1/conversations?business=abc", "business"},
		{"/api/v1/messages?q=a", "no word"},
		{"/api/v1/messages?q=order&cursor=x", "cursor"},
	} {
		require.Contains(t, e.apiError(bad.path, http.StatusBadRequest), bad.want, bad.path)
	}
}

func TestBadParametersAre400(t *testing.T) {
	e := newEnv(t)
	rs := e.save(in("w1", "31612345678", "hi"))
	conv := rs[0].ConversationID
	for _, c := range []struct {
		path, want string
	}{
		{"/api/v1/conversations?limit=0", "limit must be an integer between 1 and 500"},
		{"/api/v1/conversations?limit=501", "limit must be an integer between 1 and 500"},
		{"/api/v1/conversations?limit=ten", "limit must be an integer between 1 and 500"},
		{"/api/v1/conversations?cursor=zz", "cursor"},
		{"/api/v1/conversations?cursor=00", "cursor"},
		{"/api/v1/conversations?q=" + url.QueryEscape(string(make([]byte, 200))), "q is longer than 100 bytes"},
		{"/api/v1/conversations/" + conv + "/messages?limit=-1", "limit must be an integer between 1 and 1000"},
		{"/api/v1/conversations/" + conv + "/messages?limit=1001", "limit must be an integer between 1 and 1000"},
		{"/api/v1/conversations/" + conv + "/messages?before=nope", "before \"nope\" is not a message id"},
		{"/api/v1/messages", "externalId or q is required"},
	} {
		require.Contains(t, e.apiError(c.path, http.StatusBadRequest), c.want, c.path)
	}
	for _, c := range []struct {
		path, want string
	}{
		{"/api/v1/conversations/01HZZZZZZZZZZZZZZZZZZZZZZZ/messages", "not found"},
		{"/api/v1/conversations/short/messages", "not found"},
		{"/api/v1/conversations/01HZZZZZZZZZZZZZZZZZZZZZZZ", "not found"},
		{"/api/v1/messages/01HZZZZZZZZZZZZZZZZZZZZZZZ", "not found"},
		{"/api/v1/messages/" + url.PathEscape("<script>"), "not found"},
		{"/api/v1/nothing", "no route"},
	} {
		require.Contains(t, e.apiError(c.path, http.StatusNotFound), c.want, c.path)
	}
	// An unknown external id is an empty result, not an error.
	var got struct{ Messages []MessageJSON }
	e.getJSON("/api/v1/messages?externalId=unknown", http.StatusOK, &got)
	require.Empty(t, got.Messages)
}

func TestConversationMessagesPaging(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := 0; i < 9; i++ {
		rs := e.save(in(fmt.Sprintf("w%d", i), "31612345678", fmt.Sprintf("m%d", i)))
		ids = append(ids, rs[0].MessageID)
	}
	conv, err := e.st.ConversationByNumbers(bizNumber, "31612345678")
	require.NoError(t, err)

	type page struct {
		Messages []MessageJSON `json:"messages"`
		Next     string        `json:"next"`
	}
	var got []string
	before := ""
	for i := 0; ; i++ {
		require.Less(t, i, 10)
		var p page
		e.getJSON("/api/v1/conversations/"+conv.ID+"/messages?limit=4&before="+before, http.StatusOK, &p)
		var pageIDs []string
		for _, m := range p.Messages {
			pageIDs = append(pageIDs, m.ID)
		}
		// Oldest first within a page; pages go back in time.
		got = append(pageIDs, got...)
		if p.Next == "" {
			break
		}
		before = p.Next
	}
	require.Equal(t, ids, got)

	var p page
	e.getJSON("/api/v1/conversations/"+conv.ID+"/messages", http.StatusOK, &p)
	require.Len(t, p.Messages, 9)
	require.Empty(t, p.Next)
	require.Equal(t, "m0", p.Messages[0].Text)
	require.Equal(t, "m8", p.Messages[8].Text)
}

// TestMessageJSONIsTheContract checks the shape of docs/agents.md#message-json: the keys
// that apply, none of the store's internal fields.
func TestMessageJSONIsTheContract(t *testing.T) {
	e := newEnv(t)
	q := in("wamid.Q", "385919998888", "Support hello")
	q.ContactName = "Frank"
	q.Domain = "sales"
	q.Raw = json.RawMessage(`{"secret":"raw payload"}`)
	rq := e.save(q)[0]

	img := in("wamid.IMG", "385919998888", "")
	img.Type, img.Text, img.Caption = store.TypeImage, "", "look"
	img.Media = &store.Media{SourceURL: "https://provider.example/media/1", ContentType: "image/jpeg"}
	img.ReplyTo = &store.ReplyRef{ExternalID: "wamid.Q"}
	ri := e.save(img)[0]

	// A reaction to the image: shown on it, and no message of its own.
	e.save(&store.Message{Provider: store.ProviderInfobip, ExternalID: "wamid.R", From: "385919998888", To: bizNumber,
		Type: store.TypeReaction, Target: "wamid.IMG", ReactionEmoji: "👍"})

	o := out("ctlive-1", "385919998888", "We are on it")
	o.Outbound = &store.OutboundSpec{ScenarioKey: "CC9F01A5DC7BEE2C2B829D203482A654", BulkID: "b1"}
	ro := e.queue(o)[0]
	require.NoError(t, e.st.Update(context.Background(), func(tx *store.Tx) error {
		return tx.AddAlias(ro.MessageID, store.ProviderInfobip, "50c24400-124f-4678-9f4b-309e994a4deb")
	}))
	later := time.Now().UTC().Truncate(time.Second).Add(time.Minute)
	e.report(
		store.Report{Provider: store.ProviderInfobip, ExternalID: "50c24400-124f-4678-9f4b-309e994a4deb", Status: store.StatusDelivered,
			At: later, GroupName: "DELIVERED", Name: "DELIVERED_TO_HANDSET", Description: "Message delivered to handset"},
		store.Report{Provider: store.ProviderInfobip, ExternalID: "ctlive-1", Status: store.StatusSeen, At: later.Add(time.Second)},
	)

	keys := func(path string) map[string]any {
		var m map[string]any
		e.getJSON(path, http.StatusOK, &m)
		return m
	}
	internal := []string{"raw", "domain", "target", "reactionEmoji", "reactionRemoved", "outbound", "aliases", "sniffedType", "messageId", "attempts"}

	m := keys("/api/v1/messages/" + rq.MessageID)
	require.Equal(t, map[string]any{
		"id": rq.MessageID, "conversationId": rq.ConversationID, "direction": "inbound", "provider": "infobip",
		"externalId": "wamid.Q", "from": "385919998888", "to": "1234", "contactName": "Frank", "type": "text",
		"text": "Support hello", "receivedAt": "2024-05-01T12:00:00Z", "createdAt": m["createdAt"], "status": "received",
	}, m)

	m = keys("/api/v1/messages/" + ri.MessageID)
	require.Equal(t, map[string]any{"id": rq.MessageID, "externalId": "wamid.Q"}, m["replyTo"])
	media := m["media"].(map[string]any)
	require.Equal(t, "pending", media["state"])
	require.NotContains(t, media, "url", "pending media has no bytes to serve: a url would 404")
	require.Equal(t, "https://provider.example/media/1", media["sourceUrl"])
	require.Equal(t, "image/jpeg", media["contentType"])
	reactions := m["reactions"].([]any)
	require.Len(t, reactions, 1)
	require.Equal(t, "👍", reactions[0].(map[string]any)["emoji"])
	require.Equal(t, "385919998888", reactions[0].(map[string]any)["from"])
	require.Equal(t, "look", m["caption"])
	require.NotContains(t, m, "text")

	m = keys("/api/v1/messages/" + ro.MessageID)
	require.Equal(t, "outbound", m["direction"])
	require.Equal(t, "seen", m["status"])
	require.NotContains(t, m, "receivedAt")
	tl := m["timeline"].([]any)
	require.Len(t, tl, 3)
	require.Equal(t, "queued", tl[0].(map[string]any)["status"])
	require.Equal(t, map[string]any{"status": "delivered", "at": later.Format(time.RFC3339), "groupName": "DELIVERED",
		"name": "DELIVERED_TO_HANDSET", "description": "Message delivered to handset"}, tl[1])
	require.Equal(t, "seen", tl[2].(map[string]any)["status"])

	for _, id := range []string{rq.MessageID, ri.MessageID, ro.MessageID} {
		m := keys("/api/v1/messages/" + id)
		for _, k := range internal {
			require.NotContains(t, m, k, "message %s", id)
		}
		if md, ok := m["media"].(map[string]any); ok {
			for _, k := range internal {
				require.NotContains(t, md, k, "media of %s", id)
			}
		}
	}

	// Lookup by our external id and by the provider's alias.
	for _, ext := range []string{"ctlive-1", "50c24400-124f-4678-9f4b-309e994a4deb"} {
		var got struct{ Messages []map[string]any }
		e.getJSON("/api/v1/messages?externalId="+url.QueryEscape(ext), http.StatusOK, &got)
		require.Len(t, got.Messages, 1, ext)
		require.Equal(t, ro.MessageID, got.Messages[0]["id"])
		require.NotContains(t, got.Messages[0], "aliases")
	}

	// The thread through the pager shows the same views.
	var page struct{ Messages []map[string]any }
	e.getJSON("/api/v1/conversations/"+rq.ConversationID+"/messages", http.StatusOK, &page)
	require.Len(t, page.Messages, 3)
	for _, pm := range page.Messages {
		for _, k := range internal {
			require.NotContains(t, pm, k)
		}
	}
	var conv map[string]any
	e.getJSON("/api/v1/conversations/"+rq.ConversationID, http.StatusOK, &conv)
	require.Equal(t, "sales", conv["domain"])
	require.Equal(t, "We are on it", conv["lastMessage"])
	require.Equal(t, false, conv["unanswered"])
	require.EqualValues(t, 3, conv["messageCount"])
}
