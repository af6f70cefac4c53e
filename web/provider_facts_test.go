package web

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// Issue 12 item 11: what the provider told us beyond the content is shown
// on the thread page and in the API: the ad a customer came from, the
// product asked about, a changed security code, a voice note, repairs, the
// raw provider data, and a delivery report's action and price.
func TestProviderFactsShown(t *testing.T) {
	e := newEnv(t)
	m := in("wamid.F", customer, "I saw your ad")
	m.Referral = &store.Referral{SourceType: "AD", Headline: "Spring <sale>", Body: "20% off", SourceURL: "https://fb.me/ad-1", CtwaClickID: "clk-1"}
	m.ReferredProduct = &store.ReferredProduct{CatalogID: "cat-1", ProductRetailerID: "sku-9"}
	m.Identity = &store.Identity{Acknowledged: true, Hash: "h=", CreatedAt: time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC)}
	m.Notes = []string{`receivedAt "x" is not a time we can read; the arrival time is used`}
	m.ProviderData = json.RawMessage(`{"keyword":"<JOIN>"}`)
	rs := e.save(m)[0]
	v := in("wamid.V", customer, "")
	v.Type, v.Text, v.Voice = store.TypeAudio, "", true
	v.Media = &store.Media{SourceURL: "https://provider.example/v.ogg", ContentType: "audio/ogg"}
	e.save(v)
	o := e.queue(out("o-1", customer, "hello"))[0]
	e.report(store.Report{Provider: store.ProviderInfobip, ExternalID: "o-1", Status: store.StatusDelivered,
		At: time.Now().UTC(), Name: "DELIVERED_TO_HANDSET", Action: "check <consent>", Price: &store.Price{PricePerMessage: 0.0147, Currency: "USD"}})

	resp, page := e.get("/conversations/" + rs.ConversationID)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, want := range []string{"came from ad “Spring &lt;sale&gt;” — 20% off (https://fb.me/ad-1) · click id clk-1",
		"asks about product sku-9 of catalog cat-1", "security code changed", "the arrival time is used", "voice note",
		"provider data", "&#34;keyword&#34;: &#34;&lt;JOIN&gt;&#34;", "action: check &lt;consent&gt; · price 0.0147 USD"} {
		require.Contains(t, page, want)
	}
	require.NotContains(t, page, "<JOIN>")

	var api map[string]any
	e.getJSON("/api/v1/messages/"+rs.MessageID, http.StatusOK, &api)
	require.Equal(t, map[string]any{"keyword": "<JOIN>"}, api["providerData"])
	require.Equal(t, "clk-1", api["referral"].(map[string]any)["ctwaClickId"])
	require.Equal(t, "sku-9", api["referredProduct"].(map[string]any)["productRetailerId"])
	require.Equal(t, true, api["identity"].(map[string]any)["acknowledged"])
	e.getJSON("/api/v1/messages/"+o.MessageID, http.StatusOK, &api)
	tl := api["timeline"].([]any)
	last := tl[len(tl)-1].(map[string]any)
	require.Equal(t, "check <consent>", last["action"])
	require.Equal(t, map[string]any{"pricePerMessage": 0.0147, "currency": "USD"}, last["price"])
}

// Issue 12 item 15: only cached media has a url; failed, too-large and
// pending media would answer 404 there, so the JSON leaves it out.
func TestMediaURLOnlyWhenCached(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, state := range []string{store.MediaFailed, store.MediaTooLarge} {
		m := in("wamid.media-"+state, customer, "")
		m.Type, m.Text = store.TypeImage, ""
		m.Media = &store.Media{SourceURL: "https://provider.example/" + state, ContentType: "image/jpeg"}
		r := e.save(m)[0]
		got, err := e.st.Message(r.MessageID)
		require.NoError(t, err)
		require.NoError(t, e.st.MarkMediaFailed(ctx, got.Media.ID, state, "gone"))
		var api map[string]any
		e.getJSON("/api/v1/messages/"+r.MessageID, http.StatusOK, &api)
		md := api["media"].(map[string]any)
		require.Equal(t, state, md["state"])
		require.NotContains(t, md, "url", state)
		require.Equal(t, "https://provider.example/"+state, md["sourceUrl"])
	}
}
