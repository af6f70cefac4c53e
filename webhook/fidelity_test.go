package webhook_test

// Issue 12 (inbound): regression tests built from real payload shapes.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// Item 2: CM's reference is not a message id. CM's page's list and button
// replies both say "my-reference"; both are kept, a byte-identical retry
// of either is still stored once, and threading by the reference works.
func TestCMDistinctRepliesShareAReference(t *testing.T) {
	e := newTestEnv(t)
	e.cmAccepted(t, "list_reply.json", 0)
	e.cmAccepted(t, "button_reply.json", 0)
	e.cmAccepted(t, "list_reply.json", 1)
	e.cmAccepted(t, "button_reply.json", 1)
	// The same content, formatted differently, is the same message.
	reformatted := strings.ReplaceAll(string(fixture(t, "cm", "list_reply.json")), "\n", "\n  ")
	a := e.post(t, cmPath, []byte(reformatted))
	require.JSONEq(t, `{"accepted":0,"duplicates":1,"quarantined":0}`, string(a.Body))

	ms, err := e.Store.MessagesByExternalID("my-reference")
	require.NoError(t, err)
	require.Len(t, ms, 1, "the reference alone names the first message stored with it")
	conv := e.conversationMessages(t, ms[0].ConversationID)
	require.Len(t, conv, 2)
	require.Equal(t, "list_reply", conv[0].Interactive.Type)
	require.Equal(t, "button_reply", conv[1].Interactive.Type)

	// A later MO replying to "my-reference" threads to the first.
	reply := `{"reference":"wamid.reply-1","messageContext":"my-reference","from":{"number":"0031612345678"},"to":{"number":"0031612345678"},"message":{"text":"about that"}}`
	a = e.post(t, cmPath, []byte(reply))
	require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
	m := e.byExternalID(t, "wamid.reply-1")
	require.Equal(t, ms[0].ID, m.ReplyTo.ID)
	e.requireClean(t)
}

// Item 3: unknown custom keys never demote media or text; they are kept.
func TestCMUnknownCustomKeysKeepContent(t *testing.T) {
	e := newTestEnv(t)
	img := `{"reference":"wamid.img-x","from":{"number":"0031612345678"},"to":{"number":"003197008101015"},
		"message":{"text":"look","media":{"mediaUri":"https://cdn-2.messaging.cm.com/fileproxy/files/abc","contentType":"image/jpeg","title":""},
		"custom":{"future_feature":{"x":1},"message_type":"image","meta_received_time":"2024-02-21T11:01:34"}},"groupings":["a","b",""],"timeUtc":"2024-02-21T11:01:35"}`
	require.Equal(t, http.StatusOK, e.post(t, cmPath, []byte(img)).Status)
	m := e.byExternalID(t, "wamid.img-x")
	require.Equal(t, store.TypeImage, m.Type)
	require.Equal(t, "look", m.Caption)
	require.Equal(t, store.MediaPending, m.Media.State, "the media is fetched before CM's URL expires")
	require.JSONEq(t, `{"message":{"custom":{"future_feature":{"x":1},"meta_received_time":"2024-02-21T11:01:34"}},"groupings":["a","b",""]}`, string(m.ProviderData))

	txt := `{"reference":"wamid.txt-x","from":{"number":"0031612345678"},"to":{"number":"003197008101015"},
		"message":{"text":"hello","custom":{"interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"accept"}}}}}`
	require.Equal(t, http.StatusOK, e.post(t, cmPath, []byte(txt)).Status)
	m = e.byExternalID(t, "wamid.txt-x")
	require.Equal(t, store.TypeText, m.Type)
	require.Equal(t, "hello", m.Text)
	require.Contains(t, string(m.ProviderData), "call_permission_reply")

	voice := `{"reference":"wamid.voice-x","from":{"number":"0031612345678"},"to":{"number":"003197008101015"},
		"message":{"text":"","media":{"mediaUri":"https://cdn-1.messaging.cm.com/fileproxy/files/v","contentType":"audio/ogg; codecs=opus"},"custom":{"message_type":"voice"}}}`
	require.Equal(t, http.StatusOK, e.post(t, cmPath, []byte(voice)).Status)
	m = e.byExternalID(t, "wamid.voice-x")
	require.Equal(t, store.TypeAudio, m.Type)
	require.True(t, m.Voice, "a voice note stays distinguishable from audio")
}

// Item 5: a CM MO without from takes its customer from the stored message
// messageContext names; with none it is quarantined, answered 2xx.
func TestCMNoFromUsesMessageContext(t *testing.T) {
	e := newTestEnv(t)
	// CM's example reply to an MT (docs/protocols.md#cm-inbound), verbatim: no from.
	body := `{"reference":"ABGGMWNhcIFfAhBa1rc5B-fkdkERREvkk","messageContext":"referencereplytest","name":"John Doe","to":{"number":"003197008101015"},"message":{"text":"I would like an invite to the Webinar","media":{"mediaUri":"","contentType":"","title":""},"custom":{}},"groupings":["","",""],"timeUtc":"2019-11-05T08:32:33"}`
	a := e.post(t, cmPath, []byte(body))
	require.Equal(t, http.StatusOK, a.Status)
	require.JSONEq(t, `{"accepted":0,"duplicates":0,"quarantined":1}`, string(a.Body))
	q, _, err := e.Store.Quarantine(5, "")
	require.NoError(t, err)
	require.Contains(t, q[0].Reason, "messageContext names no stored message")

	out := e.cmQueueOutbound(t, "referencereplytest", cmBusiness, cmCustomer)
	a = e.post(t, cmPath, []byte(body))
	require.JSONEq(t, `{"accepted":1,"duplicates":0,"quarantined":0}`, string(a.Body))
	m := e.byExternalID(t, "ABGGMWNhcIFfAhBa1rc5B-fkdkERREvkk")
	require.Equal(t, cmCustomer, m.From)
	require.Equal(t, out.ConversationID, m.ConversationID)
	require.Equal(t, out.ID, m.ReplyTo.ID)
	require.Equal(t, "John Doe", m.ContactName)

	// Replying to an MO with no from: the MO's customer.
	reply := `{"reference":"SDFSDFNhcDFlcsdUSbGTGKTaLKokdVw0GVL","messageContext":"ABGGMWNhcIFfAhBa1rc5B-fkdkERREvkk","name":"John Doe","to":{"number":"003197008101015"},"message":{"text":"Scratch that"}}`
	require.Equal(t, http.StatusOK, e.post(t, cmPath, []byte(reply)).Status)
	require.Equal(t, cmCustomer, e.byExternalID(t, "SDFSDFNhcDFlcsdUSbGTGKTaLKokdVw0GVL").From)
	e.requireClean(t)
}

// Item 14: times in every shape Infobip's clients print; no zone is UTC.
func TestInfobipTimeShapes(t *testing.T) {
	cases := map[string]string{
		"2024-03-01T10:00:00.000+0000":    "2024-03-01T10:00:00Z",
		"2024-03-01T12:00:00.000+02:00":   "2024-03-01T10:00:00Z",
		"2024-03-01T12:00:00.000+02":      "2024-03-01T10:00:00Z",
		"2024-03-01T10:00:00.123456Z":     "2024-03-01T10:00:00.123456Z",
		"2024-03-01T10:00:00.123456":      "2024-03-01T10:00:00.123456Z",
		"2024-03-01T10:00:00":             "2024-03-01T10:00:00Z",
		"2024-03-01T12:00:00.123456+0200": "2024-03-01T10:00:00.123456Z",
	}
	e := newTestEnv(t)
	i := 0
	for in, want := range cases {
		i++
		ext := "wamid.time-" + string(rune('a'+i))
		body := `{"results":[{"from":"385919998888","to":"1234","receivedAt":"` + in + `","messageId":"` + ext + `","message":{"type":"TEXT","text":"x"}}]}`
		a := e.post(t, ibRoute, []byte(body))
		require.Equal(t, http.StatusOK, a.Status, "%s: %s", in, a.Body)
		m := e.byExternalID(t, ext)
		require.Equal(t, want, m.ReceivedAt.Format(time.RFC3339Nano), in)
		require.Empty(t, m.Notes, in)
	}
}

// Item 6: a delivery or seen report naming an inbound message's id never
// lands on it; it waits for (and then applies to) our outbound message.
func TestReportsNeverLandOnInboundMessages(t *testing.T) {
	e := newTestEnv(t)
	in := `{"results":[{"from":"41793026731","to":"1234","messageId":"fb469d73-d362-463f-b30f-1e959b53badc","message":{"type":"TEXT","text":"same id as our send"}}]}`
	require.Equal(t, http.StatusOK, e.post(t, ibRoute, []byte(in)).Status)
	a := e.post(t, seedRoute, fixture(t, "infobip", "seed_delivery.json"))
	require.Equal(t, http.StatusOK, a.Status)
	ms, err := e.Store.MessagesByExternalID("fb469d73-d362-463f-b30f-1e959b53badc")
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, store.StatusReceived, ms[0].Status)
	require.Empty(t, ms[0].Timeline)

	out := queueOut(t, e, "fb469d73-d362-463f-b30f-1e959b53badc", "41793026731")
	require.NotEqual(t, ms[0].ID, out.ID, "the send is queued, not taken for the inbound message")
	require.Equal(t, store.StatusDelivered, out.Status, "the parked report applies to ours")
	e.requireClean(t)
}
