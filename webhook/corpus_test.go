package webhook_test

// The real-world corpus (issue 12): every payload variant in
// testdata/corpus/, each with a MANIFEST line naming its public source, is
// posted through the real router on a real store. Each is stored, deduped
// or quarantined and answered 2xx; nothing in it is lost; only a body that
// is not JSON gets a 4xx. A resend of each changes nothing.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

type corpusCase struct{ file, route, outcome, source string }

func readCorpus(t *testing.T) []corpusCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "corpus", "MANIFEST"))
	require.NoError(t, err)
	defer f.Close()
	var out []corpusCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.Split(line, "\t")
		require.Len(t, p, 4, "MANIFEST line %q: file, route, outcome, source", line)
		require.NotEmpty(t, strings.TrimSpace(p[3]), "%s names no public source", p[0])
		out = append(out, corpusCase{p[0], p[1], p[2], p[3]})
	}
	require.NoError(t, sc.Err())
	return out
}

// TestCorpusManifestCoversEveryFile: every corpus file has one MANIFEST line
// and every line its file; there are at least 100 variants.
func TestCorpusManifestCoversEveryFile(t *testing.T) {
	cases := readCorpus(t)
	require.GreaterOrEqual(t, len(cases), 100)
	listed := map[string]bool{}
	for _, c := range cases {
		require.False(t, listed[c.file], "%s is listed twice", c.file)
		listed[c.file] = true
		_, err := os.Stat(filepath.Join("testdata", "corpus", c.file))
		require.NoError(t, err)
		require.Contains(t, []string{"stored", "quarantined", "ignored", "rejected"}, c.outcome, c.file)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "corpus", "*", "*.json"))
	require.NoError(t, err)
	for _, f := range files {
		rel, _ := filepath.Rel(filepath.Join("testdata", "corpus"), f)
		require.True(t, listed[filepath.ToSlash(rel)], "%s has no MANIFEST line (and so no source)", rel)
	}
}

// items counts what a post carries: Infobip results, CM status msgs, or
// the one CM MO.
func items(t *testing.T, route string, body []byte) int {
	t.Helper()
	switch route {
	case cmPath:
		return 1
	case cmStatusPath:
		var p struct {
			Messages struct{ Msg json.RawMessage } `json:"messages"`
		}
		require.NoError(t, json.Unmarshal(body, &p))
		var many []json.RawMessage
		if json.Unmarshal(p.Messages.Msg, &many) == nil {
			return len(many)
		}
		return 1
	}
	var p struct{ Results []json.RawMessage }
	if json.Unmarshal(body, &p) != nil {
		// CTLive's verbatim example: trailing commas (docs/protocols.md#infobip-inbound).
		return strings.Count(string(body), `"messageId"`)
	}
	return len(p.Results)
}

func TestCorpus(t *testing.T) {
	for _, c := range readCorpus(t) {
		t.Run(strings.TrimSuffix(c.file, ".json"), func(t *testing.T) {
			e := newTestEnv(t)
			// What real traffic finds stored: our outbound messages that
			// reports and replies name.
			queueOut(t, e, "corpus-out-1", "385919998888")
			e.cmQueueOutbound(t, "referencereplytest", cmBusiness, cmCustomer)
			body, err := os.ReadFile(filepath.Join("testdata", "corpus", c.file))
			require.NoError(t, err)
			before := e.messageCount(t)

			a := e.post(t, c.route, body)
			if c.outcome == "rejected" {
				require.Equal(t, http.StatusBadRequest, a.Status, "%s", a.Body)
				require.Contains(t, a.ErrorText(t), "JSON")
				require.Equal(t, before, e.messageCount(t))
				require.Zero(t, e.Store.QuarantineCount())
				return
			}
			require.Equal(t, http.StatusOK, a.Status, "%s: %s", c.source, a.Body)
			var n struct{ Accepted, Duplicates, Quarantined, Ignored, Parked int }
			require.NoError(t, json.Unmarshal(a.Body, &n))
			require.Equal(t, items(t, c.route, body), n.Accepted+n.Duplicates+n.Quarantined+n.Ignored,
				"every item is accounted for: %s", a.Body)
			switch c.outcome {
			case "stored":
				require.Zero(t, n.Quarantined, "%s", a.Body)
			case "quarantined":
				require.Positive(t, n.Quarantined, "%s", a.Body)
				q, _, err := e.Store.Quarantine(50, "")
				require.NoError(t, err)
				require.NotEmpty(t, q)
				require.NotEmpty(t, q[0].Reason)
				require.Equal(t, c.route, q[0].Route)
			case "ignored":
				require.Zero(t, n.Quarantined+n.Accepted, "%s", a.Body)
			}
			msgs, quarantined := e.messageCount(t), e.Store.QuarantineCount()

			// The provider resends it: nothing new is stored.
			a = e.post(t, c.route, body)
			require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
			require.Equal(t, msgs, e.messageCount(t), "a resend stored something again")
			require.Equal(t, quarantined, e.Store.QuarantineCount(), "a resend quarantined something again")
			e.requireClean(t)
			if check := corpusChecks[c.file]; check != nil {
				check(t, e)
			}
		})
	}
}

// inbound returns the one inbound message stored by a corpus post.
func (e *testEnv) inbound(t *testing.T) *store.Message {
	t.Helper()
	convs, _, err := e.Store.ListConversations("", 50, "")
	require.NoError(t, err)
	var out []*store.Message
	for _, c := range convs {
		for _, m := range e.conversationMessages(t, c.ID) {
			if m.Direction == store.Inbound {
				out = append(out, m)
			}
		}
	}
	require.Len(t, out, 1)
	return out[0]
}

func jsonKeys(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var walk func(prefix string, v any, out *[]string)
	walk = func(prefix string, v any, out *[]string) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				*out = append(*out, prefix+k)
				walk(prefix+k+".", val, out)
			}
		case []any:
			for _, val := range x {
				walk(prefix, val, out)
			}
		}
	}
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	var keys []string
	walk("", v, &keys)
	sort.Strings(keys)
	return strings.Join(keys, " ")
}

// corpusChecks are what some variants must map to (issue 12 items 11, 15).
var corpusChecks = map[string]func(t *testing.T, e *testEnv){
	"infobip/text_referral_ad_image.json": func(t *testing.T, e *testEnv) {
		m := e.inbound(t)
		require.Equal(t, &store.Referral{SourceType: "AD", SourceID: "120208001", SourceURL: "https://fb.me/ad-120208001",
			Headline: "Spring sale", Body: "20% off all plans", MediaType: "image", MediaURL: "https://scontent.example/ad.jpg",
			CtwaClickID: "ARAkLkA8rmlFeiCktEJQ"}, m.Referral)
		require.JSONEq(t, `{"price":{"pricePerMessage":0,"currency":"EUR"}}`, string(m.ProviderData), "everything else in it is mapped")
	},
	"infobip/text_referred_product.json": func(t *testing.T, e *testEnv) {
		require.Equal(t, &store.ReferredProduct{CatalogID: "cat-1234", ProductRetailerID: "sku-991"}, e.inbound(t).ReferredProduct)
	},
	"infobip/text_identity.json": func(t *testing.T, e *testEnv) {
		id := e.inbound(t).Identity
		require.NotNil(t, id)
		require.True(t, id.Acknowledged)
		require.Equal(t, "Sjvjlx8G6Z0=", id.Hash)
		require.Equal(t, "2024-05-02T10:15:00Z", id.CreatedAt.Format("2006-01-02T15:04:05Z07:00"))
	},
	"infobip/infected_content.json": func(t *testing.T, e *testEnv) {
		m := e.inbound(t)
		require.Equal(t, store.TypeError, m.Type)
		require.Contains(t, m.Error, "infected content")
		require.Contains(t, m.Error, "EICAR-Test-File")
	},
	"infobip/interactive_payment_confirmation.json": func(t *testing.T, e *testEnv) {
		m := e.inbound(t)
		require.Equal(t, store.TypeInteractive, m.Type)
		require.Equal(t, "payment_confirmation", m.Interactive.Type)
		require.Equal(t, "order-7781", m.Interactive.ID)
		require.Equal(t, "payment success: 25.00 INR", m.Interactive.Title)
		require.JSONEq(t, `{"referenceId":"order-7781","paymentId":"pay-1","status":"SUCCESS","currency":"INR","totalAmount":{"value":2500,"offset":100},"transactionId":"txn-9","transactionType":"UPI"}`,
			string(m.Interactive.Response))
	},
	"infobip/dlr_action_price.json": func(t *testing.T, e *testEnv) {
		m := e.byExternalID(t, "corpus-out-1")
		ev := findEvent(t, m, store.StatusDelivered)
		require.Equal(t, "Check the contact's consent", ev.Action)
		require.Equal(t, &store.Price{PricePerMessage: 0.0147, Currency: "USD"}, ev.Price)
	},
	"infobip/text_keyword.json": func(t *testing.T, e *testEnv) {
		require.JSONEq(t, `{"keyword":"JOIN","price":{"pricePerMessage":0,"currency":"EUR"}}`, string(e.inbound(t).ProviderData))
	},
	"infobip/text_entity_application.json": func(t *testing.T, e *testEnv) {
		require.JSONEq(t, `{"applicationId":"support-app","entityId":"shop-eu","price":{"pricePerMessage":0,"currency":"EUR"}}`, string(e.inbound(t).ProviderData))
	},
	"infobip/text_context_group.json": func(t *testing.T, e *testEnv) {
		require.JSONEq(t, `{"message":{"context":{"groupId":"group-1"}},"price":{"pricePerMessage":0,"currency":"EUR"}}`, string(e.inbound(t).ProviderData))
	},
	"infobip/text_price_nonzero.json": func(t *testing.T, e *testEnv) {
		require.JSONEq(t, `{"price":{"pricePerMessage":0.0065,"currency":"EUR"}}`, string(e.inbound(t).ProviderData),
			"a field of another kind of result is kept, not dropped")
	},
	"infobip/dlr_delivered.json": func(t *testing.T, e *testEnv) {
		ev := findEvent(t, e.byExternalID(t, "corpus-out-1"), store.StatusDelivered)
		require.JSONEq(t, `{"bulkId":"bulk-1","messageCount":1}`, string(ev.ProviderData))
	},
	"infobip/seen_fuller.json": func(t *testing.T, e *testEnv) {
		ev := findEvent(t, e.byExternalID(t, "corpus-out-1"), store.StatusSeen)
		require.JSONEq(t, `{"applicationId":"support-app","entityId":"shop-eu"}`, string(ev.ProviderData))
	},
	"infobip/text_minimal_seed.json": func(t *testing.T, e *testEnv) {
		require.Empty(t, e.inbound(t).ProviderData, "a fully mapped result adds nothing")
	},
	"infobip/voice.json": func(t *testing.T, e *testEnv) {
		m := e.inbound(t)
		require.Equal(t, store.TypeAudio, m.Type)
		require.True(t, m.Voice)
	},
	"infobip/audio.json": func(t *testing.T, e *testEnv) {
		require.False(t, e.inbound(t).Voice, "AUDIO is not a voice note")
	},
	"infobip/interactive_call_permission_reply.json": func(t *testing.T, e *testEnv) {
		m := e.inbound(t)
		require.Equal(t, store.TypeUnsupported, m.Type)
		require.Contains(t, string(m.ProviderData), "callPermissionReply")
	},
	"infobip/time_unreadable.json": func(t *testing.T, e *testEnv) {
		require.Contains(t, strings.Join(e.inbound(t).Notes, " "), "the arrival time is used")
	},
	"infobip/contact_full.json": func(t *testing.T, e *testEnv) {
		require.Equal(t, "addresses addresses.city addresses.country addresses.countryCode addresses.state addresses.street addresses.type addresses.zip birthday emails emails.email emails.type name name name.firstName name.formattedName name.formattedName name.lastName name.middleName name.namePrefix name.nameSuffix org org.company org.department org.title phones phones.phone phones.type urls urls.type urls.url",
			jsonKeys(t, e.inbound(t).Contacts))
	},
	"cm/contacts_phones_emails.json": func(t *testing.T, e *testEnv) {
		require.Equal(t, "birthday emails emails.email emails.type name name.firstName name.formattedName org org.company phones phones.phone phones.type phones.waId urls urls.type urls.url",
			jsonKeys(t, e.inbound(t).Contacts), "the same camelCase shape as Infobip's")
	},
	"infobip/order.json": func(t *testing.T, e *testEnv) {
		require.JSONEq(t, `{"catalogId":"cat-1234","productItems":[{"productRetailerId":"sku-1","quantity":2,"itemPrice":9.99,"currency":"EUR"}],"text":"Please deliver Friday"}`,
			string(e.inbound(t).Order))
	},
	"cm/order.json": func(t *testing.T, e *testEnv) {
		require.JSONEq(t, `{"catalogId":"XXXXXXXXXXXX","productItems":[{"productRetailerId":"cmcomdevelop-frisbee","quantity":99,"itemPrice":15,"currency":"EUR"},{"productRetailerId":"cmcomdevelop-mousepad","quantity":99,"itemPrice":9.99,"currency":"EUR"}]}`,
			string(e.inbound(t).Order), "the same shape as Infobip's")
	},
	"cm/media_unknown_custom_key.json": func(t *testing.T, e *testEnv) {
		m := e.inbound(t)
		require.Equal(t, store.TypeImage, m.Type)
		require.Contains(t, string(m.ProviderData), "frequently_forwarded")
	},
	"cm/text.json": func(t *testing.T, e *testEnv) {
		require.Empty(t, e.inbound(t).ProviderData, "empty groupings carry nothing")
	},
	"cm/groupings_values.json": func(t *testing.T, e *testEnv) {
		require.JSONEq(t, `{"groupings":["39373ce0-f4aa-4918-8ff1-3cef7f77b112","messagesApi",""]}`, string(e.inbound(t).ProviderData))
	},
	"cm/media_voice.json": func(t *testing.T, e *testEnv) {
		m := e.inbound(t)
		require.Equal(t, store.TypeAudio, m.Type)
		require.True(t, m.Voice)
	},
	"cm/reply_to_mt_no_from_known.json": func(t *testing.T, e *testEnv) {
		m := e.inbound(t)
		require.Equal(t, cmCustomer, m.From)
		require.NotEmpty(t, m.ReplyTo.ID)
	},
	"cmstatus/mixed_unknown_reference.json": func(t *testing.T, e *testEnv) {
		ms, err := e.Store.MessagesByExternalID("referencereplytest")
		require.NoError(t, err)
		require.Equal(t, store.StatusDelivered, ms[0].Status)
	},
}

// The corpus has a variant of every Infobip message type the client
// models list (WhatsAppWebhookType).
func TestCorpusCoversEveryInfobipType(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range readCorpus(t) {
		if !strings.HasPrefix(c.file, "infobip/") || c.outcome != "stored" {
			continue
		}
		body, err := os.ReadFile(filepath.Join("testdata", "corpus", c.file))
		require.NoError(t, err)
		var p struct {
			Results []struct {
				Message *struct{ Type string } `json:"message"`
			} `json:"results"`
		}
		if json.Unmarshal(body, &p) != nil {
			continue
		}
		for _, r := range p.Results {
			if r.Message != nil {
				seen[strings.ToUpper(r.Message.Type)] = true
			}
		}
	}
	for _, typ := range []string{"TEXT", "LOCATION", "IMAGE", "DOCUMENT", "AUDIO", "VIDEO", "VOICE", "CONTACT", "INFECTED_CONTENT",
		"BUTTON", "STICKER", "INTERACTIVE_BUTTON_REPLY", "INTERACTIVE_LIST_REPLY", "INTERACTIVE_FLOW_REPLY",
		"INTERACTIVE_PAYMENT_CONFIRMATION", "INTERACTIVE_CALL_PERMISSION_REPLY", "ORDER", "REACTION", "UNSUPPORTED"} {
		require.True(t, seen[typ], fmt.Sprintf("no corpus variant of %s", typ))
	}
}
