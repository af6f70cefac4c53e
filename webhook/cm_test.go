package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
	"imchannel/webhook"
)

const (
	cmPath       = "/webhooks/cm"
	cmStatusPath = "/webhooks/cm/status"
	// The seed's flow, order, error, welcome and deletion examples use one
	// number for both sides; the reply-to-MT example has CM's business number.
	cmCustomer = "31612345678"
	cmBusiness = "3197008101015"
)

func cmUTC(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// cmPost posts a testdata/cm fixture to route and requires the answer.
func (e *testEnv) cmPost(t *testing.T, route, file string, wantStatus int) answer {
	t.Helper()
	a := e.post(t, route, fixture(t, "cm", file))
	require.Equal(t, wantStatus, a.Status, "POST %s %s: %s", route, file, a.Body)
	return a
}

// cmAccepted posts an MO fixture and checks the answer's duplicate count.
func (e *testEnv) cmAccepted(t *testing.T, file string, dup int) {
	t.Helper()
	a := e.cmPost(t, cmPath, file, http.StatusOK)
	require.JSONEq(t, `{"accepted":`+jsonInt(1-dup)+`,"duplicates":`+jsonInt(dup)+`,"quarantined":0}`, string(a.Body))
}

// cmQueueOutbound stores one of our outbound CM messages, as the send API
// does, with the reference we would send.
func (e *testEnv) cmQueueOutbound(t *testing.T, ref, from, to string) *store.Message {
	t.Helper()
	res, err := e.Store.QueueOutbound(context.Background(), []*store.Message{{
		Provider: store.ProviderCM, ExternalID: ref, From: from, To: to,
		Type: store.TypeText, Text: "Reply to this message if you want to receive an invitation to our next webinar",
	}}, store.QueueOptions{})
	require.NoError(t, err)
	m, err := e.Store.Message(res[0].MessageID)
	require.NoError(t, err)
	return m
}

// TestCMInboundKinds posts every MO example of CM's MO webhook page
// (docs/protocols.md#cm-inbound; and the media kinds
// it describes) through the real router and checks what is stored.
func TestCMInboundKinds(t *testing.T) {
	// Stored in the one shape both providers share (Infobip's camelCase,
	// numbers as numbers), whatever CM passed through from Meta.
	contacts := `[{"addresses":[{"city":"Breda","country":"Netherlands","countryCode":"NL","street":"Konijnenberg 30","type":"WORK","zip":"4825 BD"}],"name":{"formattedName":"CM Developer","lastName":"Your last name"}}]`
	order := `{"catalogId":"XXXXXXXXXXXX","productItems":[
		{"productRetailerId":"cmcomdevelop-frisbee","quantity":99,"itemPrice":15,"currency":"EUR"},
		{"productRetailerId":"cmcomdevelop-coaster","quantity":99,"itemPrice":7,"currency":"EUR"},
		{"productRetailerId":"cmcomdevelop-mousepad","quantity":99,"itemPrice":9.99,"currency":"EUR"}]}`
	media := func(ct, file string) func(*testing.T, *testEnv, *store.Message) {
		return func(t *testing.T, e *testEnv, m *store.Message) {
			require.NotNil(t, m.Media)
			require.Equal(t, store.MediaPending, m.Media.State, "the URL goes to the media fetcher")
			require.Equal(t, "https://cdn-2.messaging.cm.com/fileproxy/files/"+m.ExternalID, m.Media.SourceURL)
			require.Equal(t, ct, m.Media.ContentType)
			require.Equal(t, file, m.Media.FileName)
			st, err := e.Store.Stats()
			require.NoError(t, err)
			require.Equal(t, 1, st.MediaPending)
		}
	}
	cases := []struct {
		file, ext         string
		typ, from, to     string
		name, text, capt  string
		at                string
		check             func(*testing.T, *testEnv, *store.Message)
		wantReplyToExtern string
	}{
		{file: "location.json", ext: "2f2d42ac-3809-40fb-bce5-dc720e400000", typ: store.TypeLocation,
			from: "316012345678", to: "316012345678", name: "Demo", at: "2019-11-05T08:32:33Z",
			check: func(t *testing.T, _ *testEnv, m *store.Message) {
				require.Equal(t, &store.Location{Latitude: 51.603802, Longitude: 4.770821, Name: "CM HQ", Address: "Konijnenberg 30"}, m.Location)
			}},
		{file: "contacts.json", ext: "2f2d42ac-3809-40fb-bce5-dc720e400000", typ: store.TypeContacts,
			from: "316012345678", to: "316012345678", name: "Demo", at: "2019-11-05T08:32:33Z",
			check: func(t *testing.T, _ *testEnv, m *store.Message) { require.JSONEq(t, contacts, string(m.Contacts)) }},
		{file: "reply_to_mt.json", ext: "ABGGMWNhcIFfAhBa1rc5B-fkdkERREvkk", typ: store.TypeText,
			from: cmCustomer, to: cmBusiness, name: "John Doe", text: "I would like an invite to the Webinar",
			at: "2019-11-05T08:32:33Z", wantReplyToExtern: "referencereplytest"},
		{file: "mo_original.json", ext: "ADFGDFHNhcIcksdfSDFVSF0oEzwYDFDFClksdDF", typ: store.TypeText,
			from: cmCustomer, to: cmCustomer, name: "John Doe", text: "I would like to reserve a table for four please.",
			at: "2019-11-05T08:32:33Z"},
		{file: "reply_to_mo.json", ext: "SDFSDFNhcDFlcsdUSbGTGKTaLKokdVw0GVL", typ: store.TypeText,
			from: cmCustomer, to: cmCustomer, name: "John Doe",
			text: "Scratch that, a friend can't make it, can you make it a table for three please.",
			at:   "2019-11-05T08:32:33Z", wantReplyToExtern: "ADFGDFHNhcIcksdfSDFVSF0oEzwYDFDFClksdDF"},
		// The reference arrives with a leading space; timeUtc wins over time.
		{file: "wamid_text.json", ext: "wamid.HBgLMzQ2ODUxMjA0NzMVAgASGBYzRUIwOEU5NzhENEIzNkI5MDE2QkE3AA==", typ: store.TypeText,
			from: cmCustomer, to: cmCustomer, text: " I would like an invite to the Webinar", at: "2024-09-17T09:37:31Z"},
		{file: "time_only.json", ext: "wamid.time-only", typ: store.TypeText, from: cmCustomer, to: cmBusiness,
			name: "Top Level Name", text: "no timeUtc here", at: "2024-09-17T11:37:31Z"},
		{file: "text_plus.json", ext: "wamid.text-plus-format", typ: store.TypeText, from: cmCustomer, to: cmBusiness,
			name: "John Doe", text: "Hello from CM", at: "2024-09-17T09:37:31Z"},
		{file: "from_string.json", ext: "wamid.from-as-string", typ: store.TypeText, from: cmCustomer, to: cmBusiness,
			name: "John Doe", text: "sender as a bare number", at: "2024-09-17T09:37:31Z"},
		{file: "template_button.json", ext: "my-reference", typ: store.TypeButton, from: cmCustomer, to: cmCustomer,
			name: "John Doe", text: "Yes, this is OK", at: "2019-11-05T08:32:33Z",
			check: func(t *testing.T, _ *testEnv, m *store.Message) {
				require.Equal(t, &store.Interactive{Type: "button", Title: "Yes, this is OK",
					Payload: "aGlzIHRoaXMgaXMgY29vZHNhc2phZHdpcXdlMGZoIGFTIEZISUQgV1FEV0RT"}, m.Interactive)
			}},
		{file: "list_reply.json", ext: "my-reference", typ: store.TypeInteractive, from: cmCustomer, to: cmCustomer,
			name: "John Doe", text: "list-row-title", at: "2019-11-05T08:32:33Z",
			check: func(t *testing.T, _ *testEnv, m *store.Message) {
				require.Equal(t, &store.Interactive{Type: "list_reply", ID: "your-unique-postbackid",
					Title: "list-row-title", Description: "list-row-description"}, m.Interactive)
			}},
		{file: "button_reply.json", ext: "my-reference", typ: store.TypeInteractive, from: cmCustomer, to: cmCustomer,
			name: "John Doe", at: "2019-11-05T08:32:33Z",
			check: func(t *testing.T, _ *testEnv, m *store.Message) {
				require.Equal(t, &store.Interactive{Type: "button_reply", ID: "your-unique-postbackid", Title: "button-title"}, m.Interactive)
			}},
		{file: "flow_reply.json", ext: "my-reference", typ: store.TypeInteractive, from: cmCustomer, to: cmCustomer,
			name: "John Doe", at: "2019-11-05T08:32:33Z",
			check: func(t *testing.T, _ *testEnv, m *store.Message) {
				require.NotNil(t, m.Interactive)
				require.Equal(t, "nfm_reply", m.Interactive.Type)
				require.Equal(t, "flow", m.Interactive.Title)
				require.JSONEq(t, `{"flow_token":"your-flow-token","entered-field-1":"entered-value-1","entered-field-2":["option-a","option-b"]}`,
					string(m.Interactive.Response))
			}},
		{file: "order.json", ext: "XXXXXXX", typ: store.TypeOrder, from: cmCustomer, to: cmCustomer,
			name: "John Doe", at: "2021-11-08T12:19:49Z",
			check: func(t *testing.T, _ *testEnv, m *store.Message) { require.JSONEq(t, order, string(m.Order)) }},
		{file: "error.json", ext: "XXXXXXX", typ: store.TypeError, from: cmCustomer, to: cmCustomer,
			name: "John Doe", at: "2022-11-08T12:19:49Z",
			check: func(t *testing.T, _ *testEnv, m *store.Message) {
				require.Equal(t, "Message type is not currently supported", m.Error)
			}},
		{file: "welcome_request.json", ext: "XXXXXXX", typ: store.TypeWelcomeRequest, from: cmCustomer, to: cmCustomer,
			name: "John Doe", text: "User request welcome message", at: "2022-11-08T12:19:49Z",
			check: func(t *testing.T, e *testEnv, m *store.Message) {
				st, err := e.Store.Stats()
				require.NoError(t, err)
				require.Zero(t, st.OutboxDepth, "no [welcome] text configured: nothing queued")
			}},
		{file: "media_image.json", ext: "img00000000000000000000000000001", typ: store.TypeImage, from: cmCustomer, to: cmBusiness,
			name: "John Doe", capt: "Look at this", at: "2024-02-21T10:01:34Z", check: media("image/jpeg", "photo.jpg")},
		{file: "media_gif.json", ext: "gif00000000000000000000000000002", typ: store.TypeVideo, from: cmCustomer, to: cmBusiness,
			name: "John Doe", at: "2024-02-21T10:01:34Z", check: media("video/mp4", "")},
		{file: "media_sticker.json", ext: "stk00000000000000000000000000003", typ: store.TypeSticker, from: cmCustomer, to: cmBusiness,
			name: "John Doe", at: "2024-02-21T10:01:34Z", check: media("image/webp", "")},
		{file: "media_audio.json", ext: "aud00000000000000000000000000004", typ: store.TypeAudio, from: cmCustomer, to: cmBusiness,
			name: "John Doe", at: "2024-02-21T10:01:34Z", check: media("audio/ogg; codecs=opus", "")},
		{file: "media_document.json", ext: "doc00000000000000000000000000005", typ: store.TypeDocument, from: cmCustomer, to: cmBusiness,
			name: "John Doe", capt: "My invoice", at: "2024-02-21T10:01:34Z", check: media("application/pdf", "invoice.pdf")},
		{file: "media_video.json", ext: "vid00000000000000000000000000006", typ: store.TypeVideo, from: cmCustomer, to: cmBusiness,
			name: "John Doe", at: "2024-02-21T10:01:34Z", check: media("video/mp4", "clip.mp4")},
		{file: "unsupported_custom.json", ext: "wamid.unsupported-custom", typ: store.TypeUnsupported, from: cmCustomer, to: cmBusiness,
			name: "John Doe", at: "2024-02-21T10:01:34Z",
			check: func(t *testing.T, _ *testEnv, m *store.Message) {
				require.JSONEq(t, string(fixture(t, "cm", "unsupported_custom.json")), string(m.Raw), "the raw body is kept")
			}},
		{file: "unsupported_interactive.json", ext: "wamid.unsupported-interactive", typ: store.TypeUnsupported, from: cmCustomer, to: cmBusiness,
			name: "John Doe", at: "2024-02-21T10:01:34Z",
			check: func(t *testing.T, _ *testEnv, m *store.Message) {
				require.JSONEq(t, string(fixture(t, "cm", "unsupported_interactive.json")), string(m.Raw), "the raw body is kept")
			}},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.file, ".json"), func(t *testing.T) {
			e := newTestEnv(t)
			e.cmAccepted(t, c.file, 0)
			m := e.byExternalID(t, c.ext)
			require.Equal(t, store.Inbound, m.Direction)
			require.Equal(t, store.ProviderCM, m.Provider)
			require.Equal(t, store.StatusReceived, m.Status)
			require.Equal(t, c.typ, m.Type)
			require.Equal(t, c.from, m.From)
			require.Equal(t, c.to, m.To)
			require.Equal(t, c.name, m.ContactName)
			require.Equal(t, c.text, m.Text)
			require.Equal(t, c.capt, m.Caption)
			require.True(t, cmUTC(c.at).Equal(m.ReceivedAt), "receivedAt %s, want %s", m.ReceivedAt, c.at)
			if c.wantReplyToExtern != "" {
				require.Equal(t, &store.ReplyRef{ExternalID: c.wantReplyToExtern}, m.ReplyTo, "target not stored yet")
			} else {
				require.Nil(t, m.ReplyTo)
			}
			if c.typ != store.TypeUnsupported {
				require.Empty(t, m.Raw)
			}
			if c.check != nil {
				c.check(t, e, m)
			}

			// CM resends what it is not sure we have: answered, never stored twice.
			e.cmAccepted(t, c.file, 1)
			require.EqualValues(t, 1, e.messageCount(t))
			require.Equal(t, 1.0, counterValue(t, e.Metrics.InboundMessages, "cm"))
			require.Equal(t, 1.0, counterValue(t, e.Metrics.InboundDuplicates, "cm"))
			require.Equal(t, 2.0, counterValue(t, e.Metrics.InboundPosts, "cm"))
			e.requireClean(t)
		})
	}
}

// TestCMDeletion erases a message's content when the deletion comes after
// it, and when it comes first (parked until the message arrives).
func TestCMDeletion(t *testing.T) {
	checkTombstone := func(t *testing.T, e *testEnv) {
		t.Helper()
		m := e.byExternalID(t, "XXXXXXXYYYYY")
		require.True(t, m.Deleted)
		require.Equal(t, store.StatusDeleted, m.Status)
		require.Empty(t, m.Text)
		require.Empty(t, m.Caption)
		require.NotNil(t, m.Media)
		require.Equal(t, store.MediaDeleted, m.Media.State)
		require.Empty(t, m.Media.URL, "no bytes to serve")
		st, err := e.Store.Stats()
		require.NoError(t, err)
		require.Zero(t, st.MediaPending, "the deleted message's media is never fetched")
		e.requireClean(t)
	}
	thread := func(t *testing.T, e *testEnv) []string {
		t.Helper()
		m := e.byExternalID(t, "XXXXXXXYYYYY")
		var refs []string
		for _, x := range e.conversationMessages(t, m.ConversationID) {
			refs = append(refs, x.ExternalID)
		}
		return refs
	}

	t.Run("after", func(t *testing.T) {
		e := newTestEnv(t)
		e.cmAccepted(t, "mo_original.json", 0)
		e.cmAccepted(t, "text_deleted_target.json", 0)
		before := e.byExternalID(t, "XXXXXXXYYYYY")
		require.Equal(t, store.TypeImage, before.Type)
		require.Equal(t, "Please forget my card number 1234", before.Caption)

		e.cmAccepted(t, "deleted.json", 0)
		checkTombstone(t, e)
		e.cmAccepted(t, "reply_to_mo.json", 0)
		require.Equal(t, []string{"ADFGDFHNhcIcksdfSDFVSF0oEzwYDFDFClksdDF", "XXXXXXXYYYYY", "SDFSDFNhcDFlcsdUSbGTGKTaLKokdVw0GVL"},
			thread(t, e), "the tombstone keeps its place in the thread")
		// The deletion itself is no message, and a resent one changes nothing.
		e.noMessage(t, "XXXXXXX")
		e.cmAccepted(t, "deleted.json", 1)
		require.EqualValues(t, 3, e.messageCount(t))
		checkTombstone(t, e)
	})

	t.Run("before", func(t *testing.T) {
		e := newTestEnv(t)
		e.cmAccepted(t, "deleted.json", 0)
		require.EqualValues(t, 0, e.messageCount(t))
		e.cmAccepted(t, "text_deleted_target.json", 0)
		checkTombstone(t, e)
		require.Equal(t, []string{"XXXXXXXYYYYY"}, thread(t, e))
	})
}

// TestCMReplies links messageContext to an earlier MO or to our outbound
// message, whichever order they arrive in.
func TestCMReplies(t *testing.T) {
	t.Run("to an MO", func(t *testing.T) {
		e := newTestEnv(t)
		e.cmAccepted(t, "mo_original.json", 0)
		e.cmAccepted(t, "reply_to_mo.json", 0)
		orig := e.byExternalID(t, "ADFGDFHNhcIcksdfSDFVSF0oEzwYDFDFClksdDF")
		reply := e.byExternalID(t, "SDFSDFNhcDFlcsdUSbGTGKTaLKokdVw0GVL")
		require.Equal(t, &store.ReplyRef{ID: orig.ID, ExternalID: orig.ExternalID}, reply.ReplyTo)
		require.Equal(t, orig.ConversationID, reply.ConversationID)
	})
	t.Run("to an MO not stored yet", func(t *testing.T) {
		e := newTestEnv(t)
		e.cmAccepted(t, "reply_to_mo.json", 0)
		require.Empty(t, e.byExternalID(t, "SDFSDFNhcDFlcsdUSbGTGKTaLKokdVw0GVL").ReplyTo.ID)
		e.cmAccepted(t, "mo_original.json", 0)
		orig := e.byExternalID(t, "ADFGDFHNhcIcksdfSDFVSF0oEzwYDFDFClksdDF")
		require.Equal(t, orig.ID, e.byExternalID(t, "SDFSDFNhcDFlcsdUSbGTGKTaLKokdVw0GVL").ReplyTo.ID)
		e.requireClean(t)
	})
	t.Run("to our outbound message", func(t *testing.T) {
		e := newTestEnv(t)
		out := e.cmQueueOutbound(t, "referencereplytest", "003197008101015", "0031612345678")
		e.cmAccepted(t, "reply_to_mt.json", 0)
		reply := e.byExternalID(t, "ABGGMWNhcIFfAhBa1rc5B-fkdkERREvkk")
		require.Equal(t, &store.ReplyRef{ID: out.ID, ExternalID: "referencereplytest"}, reply.ReplyTo)
		require.Equal(t, out.ConversationID, reply.ConversationID)
		e.requireClean(t)
	})
}

// TestCMWelcome queues the [welcome] text once per customer, and nothing
// when it is not configured.
func TestCMWelcome(t *testing.T) {
	const text = "Welcome to CM! An agent will be with you shortly."
	second := bytes.Replace(fixture(t, "cm", "welcome_request.json"), []byte(`"XXXXXXX"`), []byte(`"XXXXXXX-again"`), 1)

	t.Run("configured", func(t *testing.T) {
		e := newTestEnv(t, func(d *webhook.Deps) { d.WelcomeText, d.OutboundProvider = text, store.ProviderCM })
		e.cmAccepted(t, "welcome_request.json", 0)
		req := e.byExternalID(t, "XXXXXXX")
		require.Equal(t, store.TypeWelcomeRequest, req.Type)

		msgs := e.conversationMessages(t, req.ConversationID)
		require.Len(t, msgs, 2)
		out := msgs[1]
		require.Equal(t, store.Outbound, out.Direction)
		require.Equal(t, store.ProviderCM, out.Provider)
		require.Equal(t, store.TypeText, out.Type)
		require.Equal(t, text, out.Text)
		require.Equal(t, cmCustomer, out.From, "sent from the business number the customer wrote to")
		require.Equal(t, cmCustomer, out.To)
		require.Equal(t, store.StatusQueued, out.Status)
		require.NotNil(t, out.Outbound)
		require.Equal(t, "XXXXXXX", out.Outbound.ReplyToExternal)
		require.NotEmpty(t, out.ExternalID)

		// The same request resent, then a second request: still one welcome.
		e.cmAccepted(t, "welcome_request.json", 1)
		a := e.post(t, cmPath, second)
		require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
		msgs = e.conversationMessages(t, req.ConversationID)
		require.Len(t, msgs, 3)
		require.Equal(t, store.Inbound, msgs[2].Direction)
		st, err := e.Store.Stats()
		require.NoError(t, err)
		require.Equal(t, 1, st.OutboxDepth)
		c, err := e.Store.Conversation(req.ConversationID)
		require.NoError(t, err)
		require.True(t, c.WelcomeSent)
		e.requireClean(t)
	})

	t.Run("business number differs from customer", func(t *testing.T) {
		e := newTestEnv(t, func(d *webhook.Deps) { d.WelcomeText, d.OutboundProvider = text, store.ProviderInfobip })
		body := bytes.Replace(fixture(t, "cm", "welcome_request.json"), []byte(`"to": {
    "number": "0031612345678"`), []byte(`"to": {
    "number": "003197008101015"`), 1)
		a := e.post(t, cmPath, body)
		require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
		c, err := e.Store.ConversationByNumbers(cmBusiness, cmCustomer)
		require.NoError(t, err)
		msgs := e.conversationMessages(t, c.ID)
		require.Len(t, msgs, 2)
		require.Equal(t, cmBusiness, msgs[1].From)
		require.Equal(t, cmCustomer, msgs[1].To)
		require.Equal(t, store.ProviderInfobip, msgs[1].Provider, "queued through the configured outbound provider")
	})

	t.Run("not configured", func(t *testing.T) {
		e := newTestEnv(t, func(d *webhook.Deps) { d.OutboundProvider = store.ProviderCM })
		e.cmAccepted(t, "welcome_request.json", 0)
		a := e.post(t, cmPath, second)
		require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
		req := e.byExternalID(t, "XXXXXXX")
		msgs := e.conversationMessages(t, req.ConversationID)
		require.Len(t, msgs, 2)
		for _, m := range msgs {
			require.Equal(t, store.Inbound, m.Direction)
			require.Equal(t, store.TypeWelcomeRequest, m.Type)
		}
		st, err := e.Store.Stats()
		require.NoError(t, err)
		require.Zero(t, st.OutboxDepth)
		c, err := e.Store.Conversation(req.ConversationID)
		require.NoError(t, err)
		require.False(t, c.WelcomeSent)
	})
}

// TestCMSameCustomerAcrossProviders: 31612345678 through Infobip, then
// 0031612345678 and +31612345678 through CM, is one conversation.
func TestCMSameCustomerAcrossProviders(t *testing.T) {
	e := newTestEnv(t)
	res, err := e.Store.SaveInbound(context.Background(), []*store.Message{{
		Provider: store.ProviderInfobip, ExternalID: "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ",
		From: "31612345678", To: "3197008101015", Type: store.TypeText, Text: "Support hello",
	}})
	require.NoError(t, err)
	conv := res[0].ConversationID

	e.cmAccepted(t, "reply_to_mt.json", 0) // 0031612345678 → 003197008101015
	e.cmAccepted(t, "text_plus.json", 0)   // +31612345678 → +3197008101015
	for _, ext := range []string{"ABGGMWNhcIFfAhBa1rc5B-fkdkERREvkk", "wamid.text-plus-format"} {
		require.Equal(t, conv, e.byExternalID(t, ext).ConversationID, ext)
	}
	require.Len(t, e.conversationMessages(t, conv), 3)
	convs, _, err := e.Store.ListConversations("", 10, "")
	require.NoError(t, err)
	require.Len(t, convs, 1)
	require.Equal(t, cmCustomer, convs[0].Customer)
	require.Equal(t, cmBusiness, convs[0].Business)
	e.requireClean(t)
}

// TestCMStatusReports maps each CM status onto our outbound message.
func TestCMStatusReports(t *testing.T) {
	type ev struct{ status, at, name, reason string }
	cases := []struct {
		file   string
		status string // the message's status afterwards
		events []ev
		errMsg string
	}{
		{"status_accepted.json", store.StatusSent, []ev{{store.StatusSent, "2024-09-17T09:40:00Z", "Accepted", ""}}, ""},
		{"status_sent.json", store.StatusSent, []ev{{store.StatusSent, "2024-09-17T09:40:01Z", "Sent", ""}}, ""},
		{"status_delivered.json", store.StatusDelivered, []ev{{store.StatusDelivered, "2024-09-17T09:40:02Z", "Delivered", ""}}, ""},
		{"status_read.json", store.StatusSeen, []ev{{store.StatusSeen, "2024-09-17T09:40:03Z", "Read", ""}}, ""},
		{"status_rejected.json", store.StatusFailed, []ev{{store.StatusFailed, "2024-09-17T09:40:04Z", "Rejected", "Insufficient credit"}}, "Insufficient credit"},
		{"status_failed.json", store.StatusFailed, []ev{{store.StatusFailed, "2024-09-17T09:40:05.123Z", "Failed", "Recipient is not a WhatsApp user"}}, "Recipient is not a WhatsApp user"},
		{"status_cancelled.json", store.StatusFailed, []ev{{store.StatusFailed, "2024-09-17T09:40:06Z", "Cancelled", "Cancelled"}}, "Cancelled"},
		{"status_unknown.json", store.StatusQueued, []ev{{store.StatusUnknown, "2024-09-17T09:40:07Z", "9", ""}}, ""},
		{"status_array.json", store.StatusSeen, []ev{
			{store.StatusSent, "2024-09-17T09:40:00Z", "Accepted", ""},
			{store.StatusDelivered, "2024-09-17T09:40:02Z", "Delivered", ""},
			{store.StatusSeen, "2024-09-17T09:40:03Z", "Read", ""},
		}, ""},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.file, ".json"), func(t *testing.T) {
			e := newTestEnv(t)
			out := e.cmQueueOutbound(t, "referencereplytest", cmBusiness, "0031612345678")
			a := e.cmPost(t, cmStatusPath, c.file, http.StatusOK)
			require.JSONEq(t, `{"accepted":`+jsonInt(len(c.events))+`,"duplicates":0,"quarantined":0,"ignored":0,"parked":0}`, string(a.Body))

			m, err := e.Store.Message(out.ID)
			require.NoError(t, err)
			require.Equal(t, c.status, m.Status)
			require.Equal(t, c.errMsg, m.Error)
			var got []ev
			for _, x := range m.Timeline {
				if x.Status == store.StatusQueued {
					continue
				}
				got = append(got, ev{x.Status, x.At.UTC().Format(time.RFC3339Nano), x.Name, x.Reason})
			}
			require.Equal(t, c.events, got)
			for _, x := range m.Timeline {
				if x.Status != store.StatusQueued {
					require.JSONEq(t, `{"operator":"20416","to":"0031612345678"}`, string(x.ProviderData),
						"fields a report does not map are kept")
				}
			}
			for _, x := range c.events {
				require.GreaterOrEqual(t, counterValue(t, e.Metrics.InboundReports, "cm", x.status), 1.0)
			}

			// A resent report adds nothing to the timeline.
			e.cmPost(t, cmStatusPath, c.file, http.StatusOK)
			again, err := e.Store.Message(out.ID)
			require.NoError(t, err)
			require.Len(t, again.Timeline, len(m.Timeline))
			e.requireClean(t)
		})
	}
}

// TestCMStatusUnknownReference: a report naming no message of ours (CM
// names our own reference, so it is another sender's on the account) or
// none at all is answered 200, counted and ignored; good reports beside it
// still apply (issue 12 item 13).
func TestCMStatusUnknownReference(t *testing.T) {
	e := newTestEnv(t)
	a := e.cmPost(t, cmStatusPath, "status_delivered.json", http.StatusOK)
	require.JSONEq(t, `{"accepted":0,"duplicates":0,"quarantined":0,"ignored":1,"parked":0}`, string(a.Body))
	out := e.cmQueueOutbound(t, "referencereplytest", cmBusiness, "0031612345678")
	require.Equal(t, store.StatusQueued, out.Status, "an ignored report is not applied later")

	a = e.cmPost(t, cmStatusPath, "status_bad_no_reference.json", http.StatusOK)
	require.JSONEq(t, `{"accepted":0,"duplicates":0,"quarantined":0,"ignored":1,"parked":0}`, string(a.Body))

	body := `{"messages":{"msg":[
		{"received":"2024-01-01T10:00:00","to":"0031612345678","reference":"referencereplytest","status":{"code":2,"errorCode":0,"errorDescription":""},"operator":"x"},
		{"received":"2024-01-01T10:00:01","to":"0031612345678","reference":"someone-elses","status":{"code":3}},
		{"received":"2024-01-01T10:00:02","to":"0031612345678","status":{"code":3}},
		{"received":"2024-01-01T10:00:03","to":"0031612345678","reference":"referencereplytest","status":{}}]}}`
	a = e.post(t, cmStatusPath, []byte(body))
	require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
	require.JSONEq(t, `{"accepted":1,"duplicates":0,"quarantined":1,"ignored":2,"parked":0}`, string(a.Body))
	m, err := e.Store.Message(out.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusDelivered, m.Status)
	require.Equal(t, 4.0, counterValue(t, e.Metrics.InboundReports, "cm", "ignored"))
	e.requireClean(t)
}

// An empty msg array, an unreadable time: 200, nothing lost.
func TestCMStatusLenient(t *testing.T) {
	e := newTestEnv(t)
	a := e.cmPost(t, cmStatusPath, "status_bad_empty_array.json", http.StatusOK)
	require.Equal(t, 0.0, a.JSON(t)["accepted"])
	out := e.cmQueueOutbound(t, "referencereplytest", cmBusiness, "0031612345678")
	e.cmPost(t, cmStatusPath, "status_bad_received.json", http.StatusOK)
	m, err := e.Store.Message(out.ID)
	require.NoError(t, err)
	last := m.Timeline[len(m.Timeline)-1]
	require.Contains(t, last.Note, "is not a time we can read; the arrival time is used")
	require.WithinDuration(t, time.Now(), last.At, time.Minute)
}

// TestCMBadInput refuses every malformed post with a 4xx naming the
// problem, and stores nothing.
func TestCMBadInput(t *testing.T) {
	big := `{"reference":"wamid.big","from":{"number":"0031612345678"},"to":{"number":"003197008101015"},"message":{"text":"` +
		strings.Repeat("a", 1<<20) + `"}}`
	// Only a body that is not a JSON object (or has no messages.msg) is
	// refused: CM retries a refusal for a month. Anything else inside a
	// valid post is quarantined raw, with the reason, and answered 200.
	cases := []struct {
		route, file string
		body        []byte // instead of file
		status      int
		want        string // in the error (4xx) or the quarantine reason (200)
	}{
		{cmPath, "bad_not_json.json", nil, 400, "malformed JSON"},
		{cmPath, "bad_truncated.json", nil, 400, "malformed JSON"},
		{cmPath, "bad_array_body.json", nil, 400, "JSON object"},
		{cmPath, "big", []byte(big), 413, "larger than the limit"},
		{cmPath, "empty", []byte{}, 400, "empty"},
		{cmPath, "bad_no_reference.json", nil, 200, "reference is required"},
		{cmPath, "bad_blank_reference.json", nil, 200, "reference is required"},
		{cmPath, "bad_reference_number.json", nil, 200, "reference"},
		{cmPath, "bad_no_sender.json", nil, 200, "from.number is missing and messageContext names no stored message"},
		{cmPath, "bad_sender_no_number.json", nil, 200, "from.number is missing"},
		{cmPath, "bad_sender_no_digits.json", nil, 200, "from.number"},
		{cmPath, "bad_sender_number_type.json", nil, 200, "number"},
		{cmPath, "bad_no_to.json", nil, 200, "to.number is required"},
		{cmPath, "bad_no_message.json", nil, 200, "message is required"},
		{cmPath, "bad_latitude.json", nil, 200, "latitude 91.5 is out of range"},
		{cmPath, "bad_latitude_negative.json", nil, 200, "latitude -90.0001 is out of range"},
		{cmPath, "bad_longitude.json", nil, 200, "longitude -181 is out of range"},
		{cmPath, "bad_latitude_missing.json", nil, 200, "latitude is required"},
		{cmPath, "bad_latitude_text.json", nil, 200, `message.custom.location.latitude "north" is not a number`},
		{cmPath, "bad_media_uri.json", nil, 200, "message.media.mediaUri"},
		{cmPath, "bad_custom_not_object.json", nil, 200, "message.custom must be a JSON object"},
		{cmStatusPath, "status_bad_not_json.json", nil, 400, "malformed JSON"},
		{cmStatusPath, "status_bad_no_messages.json", nil, 400, "messages is required"},
		{cmStatusPath, "status_bad_no_msg.json", nil, 400, "messages.msg is required"},
		{cmStatusPath, "status_bad_msg_string.json", nil, 400, "messages.msg must be an object or an array"},
		{cmStatusPath, "status_bad_no_code.json", nil, 200, "messages.msg[1].status.code is required"},
		{cmStatusPath, "big", []byte(`{"messages":{"msg":{"reference":"` + strings.Repeat("r", 1<<20) + `"}}}`), 413, "larger than the limit"},
	}
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.route, "/webhooks/")+"/"+strings.TrimSuffix(c.file, ".json"), func(t *testing.T) {
			e := newTestEnv(t)
			body := c.body
			if body == nil {
				body = fixture(t, "cm", c.file)
			}
			a := e.post(t, c.route, body)
			require.Equal(t, c.status, a.Status, "%s", a.Body)
			st, err := e.Store.Stats()
			require.NoError(t, err)
			require.Zero(t, st.Messages)
			require.Zero(t, st.Conversations)
			if c.status == 200 {
				require.Equal(t, 1.0, a.JSON(t)["quarantined"], "%s", a.Body)
				q, _, err := e.Store.Quarantine(10, "")
				require.NoError(t, err)
				require.Len(t, q, 1)
				require.Contains(t, q[0].Reason, c.want)
				require.Equal(t, c.route, q[0].Route)
				require.Equal(t, store.ProviderCM, q[0].Provider)
				require.Equal(t, 1.0, counterValue(t, e.Metrics.Quarantined, store.ProviderCM))
				// A resend is counted on the same item, not kept twice.
				require.Equal(t, 200, e.post(t, c.route, body).Status)
				q, _, err = e.Store.Quarantine(10, "")
				require.NoError(t, err)
				require.Len(t, q, 1)
				require.Equal(t, 2, q[0].Count)
				return
			}
			require.Contains(t, a.ErrorText(t), c.want)
			reason := "invalid"
			if c.status == 413 {
				reason = "too_large"
			}
			require.Equal(t, 1.0, counterValue(t, e.Metrics.Rejections, c.route, reason))
			require.Zero(t, e.Store.QuarantineCount())
		})
	}
}

// TestCMAuth refuses posts without the [inbound] credentials.
func TestCMAuth(t *testing.T) {
	e := newTestEnv(t)
	for _, route := range []string{cmPath, cmStatusPath} {
		for _, who := range []struct{ user, pass string }{{"", ""}, {testUser, "wrong"}, {"someone", testPassword}} {
			body := fixture(t, "cm", "mo_original.json")
			if route == cmStatusPath {
				body = fixture(t, "cm", "status_delivered.json")
			}
			a := e.postAs(t, route, who.user, who.pass, "application/json", body)
			require.Equal(t, http.StatusUnauthorized, a.Status, "%s %q", route, who.user)
			require.NotEmpty(t, a.ErrorText(t))
			require.NotEmpty(t, a.Header.Get("WWW-Authenticate"))
		}
		require.Equal(t, 3.0, counterValue(t, e.Metrics.Rejections, route, "unauthorized"))
	}
	require.EqualValues(t, 0, e.messageCount(t))
	out := e.cmQueueOutbound(t, "referencereplytest", cmBusiness, cmCustomer)
	require.Len(t, out.Timeline, 1, "no report was parked")

	// GET is not a webhook.
	req, err := http.NewRequest(http.MethodGet, e.Server.URL+cmPath, nil)
	require.NoError(t, err)
	req.SetBasicAuth(testUser, testPassword)
	require.Equal(t, http.StatusMethodNotAllowed, e.do(t, req).Status)
}

// TestCMUnavailable answers 503 when the store cannot take the write, so CM
// retries.
func TestCMUnavailable(t *testing.T) {
	e := newTestEnv(t)
	require.NoError(t, e.Store.Close())
	for _, c := range []struct{ route, file string }{{cmPath, "mo_original.json"}, {cmStatusPath, "status_delivered.json"}} {
		a := e.cmPost(t, c.route, c.file, http.StatusServiceUnavailable)
		require.NotEmpty(t, a.ErrorText(t))
		require.NotEmpty(t, a.Header.Get("Retry-After"))
		require.Equal(t, 1.0, counterValue(t, e.Metrics.Rejections, c.route, "unavailable"))
	}
}

func jsonInt(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
