package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
	"imchannel/webhook"
)

const (
	seedRoute = "/imchanne/message" // CTLive's spelling
	ibRoute   = "/imchannel/message"
)

// queueOut stores an outbound message the way the send API will, with the
// external id the provider's reports name.
func queueOut(t *testing.T, e *testEnv, ext, to string) *store.Message {
	t.Helper()
	rs, err := e.Store.QueueOutbound(context.Background(), []*store.Message{{
		Provider: store.ProviderInfobip, ExternalID: ext, From: "1234", To: to,
		Type: store.TypeText, Text: "Hello from the agent",
	}}, store.QueueOptions{})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	m, err := e.Store.Message(rs[0].MessageID)
	require.NoError(t, err)
	return m
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// timelineStatuses lists a timeline's (status, name) pairs in order.
func timelineStatuses(m *store.Message) []string {
	var out []string
	for _, e := range m.Timeline {
		out = append(out, e.Status+"/"+e.Name)
	}
	return out
}

type ibCase struct {
	name string
	file string
	// before are fixtures posted first, each answered 200.
	before []string
	// outbound are external ids of outbound messages queued first.
	outbound []string

	status     int // 200 unless set
	accepted   int
	duplicates int
	// quarantined counts results kept raw; errHas then names their reason.
	quarantined int
	errHas      []string // fragments of {"error"} for 4xx cases
	check       func(t *testing.T, e *testEnv)
}

func TestInfobipPosts(t *testing.T) {
	cases := []ibCase{
		// ---- CTLive's protocol examples (docs/protocols.md#infobip-inbound), verbatim ----
		{name: "seed text without contact name", file: "seed_text.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ")
			require.Equal(t, store.Inbound, m.Direction)
			require.Equal(t, store.ProviderInfobip, m.Provider)
			require.Equal(t, store.TypeText, m.Type)
			require.Equal(t, "Support hello", m.Text)
			require.Equal(t, "385919998888", m.From)
			require.Equal(t, "1234", m.To)
			require.Empty(t, m.ContactName)
			require.Nil(t, m.ReplyTo, "pairedMessageId null is no reply")
			require.Equal(t, store.StatusReceived, m.Status)
			require.True(t, m.ReceivedAt.Equal(utc("2019-07-19T11:21:27.861Z")), "receivedAt %s", m.ReceivedAt)
			require.False(t, m.CreatedAt.IsZero())
			require.True(t, m.CreatedAt.After(m.ReceivedAt), "our time is kept beside the provider's")
			c, err := e.Store.Conversation(m.ConversationID)
			require.NoError(t, err)
			require.Equal(t, "1234", c.Business)
			require.Equal(t, "385919998888", c.Customer)
		}},
		{name: "seed text with contact name", file: "seed_text_contact.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "ABEGOFl3VCQoAhBalbc6rTQT6mgS29EmGZ7a")
			require.Equal(t, "Frank", m.ContactName)
			require.Equal(t, "Support hello", m.Text)
			require.True(t, m.ReceivedAt.Equal(utc("2019-07-19T11:23:26.998Z")))
			c, err := e.Store.Conversation(m.ConversationID)
			require.NoError(t, err)
			require.Equal(t, "Frank", c.Name)
		}},
		{name: "seed image", file: "seed_image.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "ABEGOFkWA5EBAgo6B82cNiWIAMKC")
			require.Equal(t, store.TypeImage, m.Type)
			require.Equal(t, "Image Caption", m.Caption)
			require.NotNil(t, m.Media)
			require.Equal(t, "https://{base_url}/123455", m.Media.SourceURL)
			require.Equal(t, store.MediaPending, m.Media.State)
			require.True(t, m.ReceivedAt.Equal(utc("2018-09-10T11:27:17.980Z")))
		}},
		{name: "seed document verbatim, trailing comma and all: caption is the file name", file: "seed_document_verbatim.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "ABEGOFkWA5EBAgo6B82cNiWIAMKC")
			require.Equal(t, store.TypeDocument, m.Type)
			require.Equal(t, "Document caption", m.Media.FileName)
		}},
		{name: "a comma that is not trailing is still malformed", file: "bad_double_comma.json",
			status: 400, errHas: []string{"malformed JSON at byte"}},
		{name: "seed document corrected: caption is the file name", file: "seed_document.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "ABEGOFkWA5EBAgo6B82cNiWIAMKC")
			require.Equal(t, store.TypeDocument, m.Type)
			require.Equal(t, "Document caption", m.Caption)
			require.Equal(t, "Document caption", m.Media.FileName)
			require.Equal(t, "https://{base_url}/whatsapp/1/senders/447796344125/media/c256e11d-a7e9-4dbb-aa9c-2a6028ddf7e8", m.Media.SourceURL)
			require.Equal(t, store.MediaPending, m.Media.State)
		}},
		{name: "seed delivery report", file: "seed_delivery.json", outbound: []string{"fb469d73-d362-463f-b30f-1e959b53badc"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "fb469d73-d362-463f-b30f-1e959b53badc")
			require.Equal(t, store.StatusDelivered, m.Status)
			ev := m.Timeline[0]
			require.Equal(t, store.StatusDelivered, ev.Status)
			require.Equal(t, "DELIVERED", ev.GroupName)
			require.Equal(t, "DELIVERED_TO_HANDSET", ev.Name)
			require.Equal(t, "Message delivered to handset", ev.Description)
			require.True(t, ev.At.Equal(utc("2019-04-09T19:01:56.494Z")), "doneAt in UTC, got %s", ev.At)
		}},
		{name: "seed seen report", file: "seed_seen.json", outbound: []string{"1215f543ab19-345f-adbd-12ad31451ed25f35"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "1215f543ab19-345f-adbd-12ad31451ed25f35")
			require.Equal(t, store.StatusSeen, m.Status)
			require.Equal(t, store.StatusSeen, m.Timeline[0].Status)
			require.True(t, m.Timeline[0].At.Equal(utc("2018-12-12T11:21:58.251Z")), "seenAt is the event's time")
		}},

		// ---- the rest of Infobip's inbound types ----
		{name: "audio", file: "audio.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.audio-1")
			require.Equal(t, store.TypeAudio, m.Type)
			require.Equal(t, "https://api.infobip.com/whatsapp/1/senders/1234/media/audio-1", m.Media.SourceURL)
			require.Equal(t, store.MediaPending, m.Media.State)
			require.Equal(t, "Frank", m.ContactName)
		}},
		{name: "voice is audio", file: "voice.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.voice-1")
			require.Equal(t, store.TypeAudio, m.Type)
			require.Equal(t, "https://api.infobip.com/whatsapp/1/senders/1234/media/voice-1", m.Media.SourceURL)
		}},
		{name: "video with caption", file: "video.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.video-1")
			require.Equal(t, store.TypeVideo, m.Type)
			require.Equal(t, "Look at this", m.Caption)
			require.Equal(t, "https://api.infobip.com/whatsapp/1/senders/1234/media/video-1", m.Media.SourceURL)
		}},
		{name: "sticker", file: "sticker.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.sticker-1")
			require.Equal(t, store.TypeSticker, m.Type)
			require.Equal(t, "https://api.infobip.com/whatsapp/1/senders/1234/media/sticker-1", m.Media.SourceURL)
		}},
		{name: "location", file: "location.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.location-1")
			require.Equal(t, store.TypeLocation, m.Type)
			require.Equal(t, &store.Location{Latitude: 51.5895, Longitude: 4.7748, Name: "Breda Centraal",
				Address: "Stationsplein 16, Breda", URL: "https://maps.example.com/breda"}, m.Location)
			require.Nil(t, m.Media)
		}},
		{name: "contact card kept whole", file: "contact.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.contact-1")
			require.Equal(t, store.TypeContacts, m.Type)
			var cs []map[string]any
			require.NoError(t, json.Unmarshal(m.Contacts, &cs))
			require.Len(t, cs, 1)
			for _, k := range []string{"name", "phones", "emails", "addresses", "org", "urls", "birthday"} {
				require.Contains(t, cs[0], k)
			}
			require.Equal(t, "Ana Horvat", cs[0]["name"].(map[string]any)["formattedName"])
			require.Equal(t, "385911112222", cs[0]["phones"].([]any)[0].(map[string]any)["waId"])
		}},
		{name: "template quick-reply button", file: "button.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.button-1")
			require.Equal(t, store.TypeButton, m.Type)
			require.Equal(t, "Stop promotions", m.Text)
			require.Equal(t, &store.Interactive{Type: "button", Title: "Stop promotions", Payload: "STOP_PROMOTIONS"}, m.Interactive)
			require.Equal(t, &store.ReplyRef{ExternalID: "out-template-1"}, m.ReplyTo, "context.id threads the reply")
		}},
		{name: "interactive button reply", file: "interactive_button_reply.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.ibr-1")
			require.Equal(t, store.TypeInteractive, m.Type)
			require.Equal(t, &store.Interactive{Type: "button_reply", ID: "confirm_booking", Title: "Confirm"}, m.Interactive)
		}},
		{name: "interactive list reply", file: "interactive_list_reply.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.ilr-1")
			require.Equal(t, store.TypeInteractive, m.Type)
			require.Equal(t, &store.Interactive{Type: "list_reply", ID: "slot_4pm", Title: "4 PM", Description: "Breda store"}, m.Interactive)
		}},
		{name: "interactive flow reply keeps the response whole", file: "interactive_flow_reply.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.ifr-1")
			require.Equal(t, store.TypeInteractive, m.Type)
			require.Equal(t, "Sent", m.Text)
			require.Equal(t, "nfm_reply", m.Interactive.Type)
			require.JSONEq(t, `{"flow_token":"tok-1","city":"Zagreb","consent":true,"answers":[1,2]}`, string(m.Interactive.Response))
		}},
		{name: "order", file: "order.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.order-1")
			require.Equal(t, store.TypeOrder, m.Type)
			require.Equal(t, "Please deliver before noon", m.Text)
			require.JSONEq(t, `{"catalogId":"1234567890","text":"Please deliver before noon","productItems":[
				{"productRetailerId":"sku-1","quantity":2,"itemPrice":9.99,"currency":"EUR"},
				{"productRetailerId":"sku-2","quantity":1,"itemPrice":24.5,"currency":"EUR"}]}`, string(m.Order))
		}},
		{name: "reaction is shown on the message it reacts to", file: "reaction.json", before: []string{"seed_text.json"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			require.EqualValues(t, 1, e.messageCount(t), "a reaction is not a message of its own")
			e.noMessage(t, "wamid.reaction-1")
			m := e.byExternalID(t, "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ")
			require.Len(t, m.Reactions, 1)
			require.Equal(t, "👍", m.Reactions[0].Emoji)
			require.Equal(t, "385919998888", m.Reactions[0].From)
			require.True(t, m.Reactions[0].At.Equal(utc("2024-03-01T09:01:00Z")))
		}},
		{name: "reaction removed", file: "reaction_removed.json", before: []string{"seed_text.json", "reaction.json"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ")
			require.Empty(t, m.Reactions)
		}},
		{name: "reaction before its message is applied when the message arrives", file: "seed_text.json", before: []string{"reaction.json"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ")
			require.Len(t, m.Reactions, 1)
			require.Equal(t, "👍", m.Reactions[0].Emoji)
		}},
		{name: "UNSUPPORTED kept with its raw result", file: "unsupported.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.unsupported-1")
			require.Equal(t, store.TypeUnsupported, m.Type)
			require.JSONEq(t, `{"from":"385919998888","to":"1234","integrationType":"WHATSAPP","receivedAt":"2024-03-01T09:00:12.000+0000",
				"messageId":"wamid.unsupported-1","message":{"type":"UNSUPPORTED"}}`, string(m.Raw))
		}},
		{name: "an unknown type is stored as unsupported, raw kept, 2xx", file: "unknown_type.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.poll-1")
			require.Equal(t, store.TypeUnsupported, m.Type)
			var raw map[string]any
			require.NoError(t, json.Unmarshal(m.Raw, &raw))
			require.Equal(t, "POLL_VOTE", raw["message"].(map[string]any)["type"])
			require.Contains(t, raw["message"], "poll")
		}},
		{name: "context.id threads to an inbound message", file: "reply_context.json", before: []string{"seed_text.json"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			quoted := e.byExternalID(t, "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ")
			m := e.byExternalID(t, "wamid.reply-context-1")
			require.Equal(t, &store.ReplyRef{ID: quoted.ID, ExternalID: quoted.ExternalID}, m.ReplyTo)
		}},
		{name: "a reply before the quoted message fills in when it arrives", file: "seed_text.json", before: []string{"reply_context.json"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			quoted := e.byExternalID(t, "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ")
			m := e.byExternalID(t, "wamid.reply-context-1")
			require.Equal(t, quoted.ID, m.ReplyTo.ID)
		}},
		{name: "pairedMessageId threads to an outbound message", file: "reply_paired.json", outbound: []string{"fb469d73-d362-463f-b30f-1e959b53badc"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			out := e.byExternalID(t, "fb469d73-d362-463f-b30f-1e959b53badc")
			m := e.byExternalID(t, "wamid.reply-paired-1")
			require.Equal(t, &store.ReplyRef{ID: out.ID, ExternalID: out.ExternalID}, m.ReplyTo)
			require.Equal(t, out.ConversationID, m.ConversationID)
		}},
		{name: "RFC 3339 receivedAt and a formatted number", file: "text_rfc3339.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.rfc3339-1")
			require.True(t, m.ReceivedAt.Equal(utc("2019-07-19T11:21:27.861Z")), "got %s", m.ReceivedAt)
			require.Equal(t, "385919998888", m.From)
		}},
		{name: "receivedAt without milliseconds", file: "text_no_millis.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "wamid.nomillis-1")
			require.True(t, m.ReceivedAt.Equal(utc("2019-07-19T11:21:27Z")), "got %s", m.ReceivedAt)
		}},
		{name: "a resent messageId is a duplicate", file: "seed_text.json", before: []string{"seed_text.json"}, duplicates: 1, check: func(t *testing.T, e *testEnv) {
			require.EqualValues(t, 1, e.messageCount(t))
		}},
		{name: "an empty results array", file: "empty_results.json"},

		// ---- delivery and seen reports ----
		{name: "PENDING is sent", file: "dlr_pending.json", outbound: []string{"out-dlr-1"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "out-dlr-1")
			require.Equal(t, store.StatusSent, m.Status)
			ev := findEvent(t, m, store.StatusSent)
			require.Equal(t, "PENDING", ev.GroupName)
			require.Equal(t, "PENDING_ENROUTE", ev.Name)
			require.True(t, ev.At.Equal(utc("2024-03-01T10:00:00.100Z")), "no doneAt: sentAt is the time")
			require.Empty(t, ev.Reason, "NO_ERROR is no reason")
		}},
		{name: "DELIVERED_TO_OPERATOR then DELIVERED_TO_HANDSET: delivered, both in the timeline", file: "seed_delivery.json",
			before: []string{"dlr_delivered_operator_seedid.json"}, outbound: []string{"fb469d73-d362-463f-b30f-1e959b53badc"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
				m := e.byExternalID(t, "fb469d73-d362-463f-b30f-1e959b53badc")
				require.Equal(t, store.StatusDelivered, m.Status)
				require.Subset(t, timelineStatuses(m), []string{"delivered/DELIVERED_TO_OPERATOR", "delivered/DELIVERED_TO_HANDSET"})
			}},
		{name: "DELIVERED_TO_OPERATOR is delivered", file: "dlr_delivered_operator.json", outbound: []string{"out-dlr-1"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "out-dlr-1")
			require.Equal(t, store.StatusDelivered, m.Status)
			require.Equal(t, "DELIVERED_TO_OPERATOR", findEvent(t, m, store.StatusDelivered).Name)
		}},
		{name: "UNDELIVERABLE is failed with status and error as the reason", file: "dlr_undeliverable.json", outbound: []string{"out-dlr-1"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "out-dlr-1")
			require.Equal(t, store.StatusFailed, m.Status)
			ev := findEvent(t, m, store.StatusFailed)
			require.Equal(t, "UNDELIVERABLE", ev.GroupName)
			require.Equal(t, "UNDELIVERABLE_NOT_DELIVERED", ev.Name)
			require.Equal(t, "UNDELIVERABLE_NOT_DELIVERED: Message sent not delivered; error EC_INVALID_WHATSAPP_NUMBER: Destination is not a WhatsApp user (permanent)", ev.Reason)
			require.Equal(t, ev.Reason, m.Error)
			c, err := e.Store.Conversation(m.ConversationID)
			require.NoError(t, err)
			require.Equal(t, 1, c.FailedCount)
		}},
		{name: "EXPIRED is failed", file: "dlr_expired.json", outbound: []string{"out-dlr-1"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "out-dlr-1")
			require.Equal(t, store.StatusFailed, m.Status)
			require.Equal(t, "EXPIRED_EXPIRED: Message expired", m.Error)
		}},
		{name: "REJECTED is failed", file: "dlr_rejected.json", outbound: []string{"out-dlr-1"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "out-dlr-1")
			require.Equal(t, store.StatusFailed, m.Status)
			require.Equal(t, "REJECTED_NOT_ENOUGH_CREDITS: Not enough credits; error EC_ACCOUNT_BLOCKED: Account blocked", m.Error)
		}},
		{name: "a failure after delivery does not undo it", file: "dlr_expired.json", before: []string{"dlr_delivered_operator.json"}, outbound: []string{"out-dlr-1"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "out-dlr-1")
			require.Equal(t, store.StatusDelivered, m.Status)
			findEvent(t, m, store.StatusFailed)
		}},
		{name: "an unknown group is kept and changes nothing", file: "dlr_unknown_group.json", outbound: []string{"out-dlr-1"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "out-dlr-1")
			require.Equal(t, store.StatusQueued, m.Status)
			ev := findEvent(t, m, store.StatusUnknown)
			require.Equal(t, "TELEPORTED", ev.GroupName)
			require.Equal(t, "TELEPORTED_AWAY", ev.Name)
		}},
		{name: "groupId alone names the group", file: "dlr_group_id_only.json", outbound: []string{"out-dlr-1"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "out-dlr-1")
			require.Equal(t, store.StatusDelivered, m.Status)
			require.Equal(t, "DELIVERED", findEvent(t, m, store.StatusDelivered).GroupName)
		}},
		{name: "seen report, Infobip's fuller shape", file: "seen_fuller.json", before: []string{"dlr_delivered_operator.json"}, outbound: []string{"out-dlr-1"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "out-dlr-1")
			require.Equal(t, store.StatusSeen, m.Status)
		}},
		{name: "a delivery report after seen does not move the status back", file: "dlr_delivered_operator.json", before: []string{"seen_fuller.json"}, outbound: []string{"out-dlr-1"}, accepted: 1, check: func(t *testing.T, e *testEnv) {
			m := e.byExternalID(t, "out-dlr-1")
			require.Equal(t, store.StatusSeen, m.Status)
		}},
		{name: "a report for an unknown message is parked, 2xx", file: "seed_delivery.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			e.noMessage(t, "fb469d73-d362-463f-b30f-1e959b53badc")
			out := queueOut(t, e, "fb469d73-d362-463f-b30f-1e959b53badc", "41793026731")
			require.Equal(t, store.StatusDelivered, out.Status, "the parked report applies when the message is stored")
		}},
		{name: "a post mixing a message and reports is stored whole", file: "mixed.json", outbound: []string{"out-dlr-1"}, accepted: 3, check: func(t *testing.T, e *testEnv) {
			require.Equal(t, "Got your message", e.byExternalID(t, "wamid.mixed-in-1").Text)
			require.Equal(t, store.StatusSeen, e.byExternalID(t, "out-dlr-1").Status)
		}},

		// ---- bad input: only a body that is not JSON, or has no results
		// array, is refused (4xx naming the problem, nothing stored) ----
		{name: "not JSON", file: "bad_not_json.json", status: 400, errHas: []string{"malformed JSON"}},
		{name: "truncated JSON", file: "bad_truncated.json", status: 400, errHas: []string{"malformed JSON"}},
		{name: "results missing", file: "bad_results_missing.json", status: 400, errHas: []string{"results is missing"}},
		{name: "results null", file: "bad_results_null.json", status: 400, errHas: []string{"results is missing"}},
		{name: "results not an array", file: "bad_results_not_array.json", status: 400, errHas: []string{"results must be an array"}},
		{name: "body is an array", file: "bad_body_array.json", status: 400, errHas: []string{"body must be a JSON object"}},

		// ---- a result that cannot be understood is quarantined; the good
		// ones beside it are stored (issue 12 item 4) ----
		{name: "a result that is not an object", file: "bad_result_not_object.json", accepted: 1, quarantined: 1, errHas: []string{"results[1]: expected an object, got JSON string"},
			check: func(t *testing.T, e *testEnv) { e.byExternalID(t, "wamid.ok-0") }},
		{name: "a result without messageId", file: "bad_no_message_id.json", accepted: 1, quarantined: 1, errHas: []string{"results[1].messageId is required"},
			check: func(t *testing.T, e *testEnv) { e.byExternalID(t, "wamid.ok-1") }},
		{name: "a result without from", file: "bad_no_from.json", quarantined: 1, errHas: []string{"results[0].from is required"}},
		{name: "from of the wrong type", file: "bad_from_number.json", quarantined: 1, errHas: []string{"results[0].from: expected a string, got JSON number"}},
		{name: "latitude out of range", file: "bad_latitude.json", quarantined: 1, errHas: []string{"results[0].message.latitude", "91.5", "out of range"}},
		{name: "longitude out of range", file: "bad_longitude.json", quarantined: 1, errHas: []string{"results[0].message.longitude", "-180.01", "out of range"}},
		{name: "a result that is neither message nor report", file: "bad_unclassifiable.json", quarantined: 1, errHas: []string{"results[0]: cannot tell what it is"}},
		{name: "a report without messageId", file: "bad_report_no_message_id.json", quarantined: 1, errHas: []string{"results[0].messageId is required"}},
		{name: "media without url", file: "bad_media_no_url.json", quarantined: 1, errHas: []string{"results[0].message.url is required for IMAGE"}},
		{name: "message without type", file: "bad_no_type.json", quarantined: 1, errHas: []string{"results[0].message.type is required"}},

		// ---- an unreadable optional time is noted and replaced by the
		// arrival time (issue 12 item 14) ----
		{name: "unparseable receivedAt", file: "bad_received_at.json", accepted: 1, check: func(t *testing.T, e *testEnv) {
			ms, err := e.Store.MessagesByExternalID("wamid.badtime-1")
			require.NoError(t, err)
			require.Len(t, ms, 1)
			require.WithinDuration(t, time.Now(), ms[0].ReceivedAt, time.Minute)
			require.Contains(t, strings.Join(ms[0].Notes, " "), `receivedAt "19/07/2019 11:21" is not a time we can read`)
		}},
		{name: "unparseable seenAt", file: "bad_seen_at.json", accepted: 1, outbound: []string{"out-dlr-1"},
			check: func(t *testing.T, e *testEnv) {
				m := e.byExternalID(t, "out-dlr-1")
				require.Equal(t, store.StatusSeen, m.Status)
				require.Contains(t, findEvent(t, m, store.StatusSeen).Note, "seenAt")
			}},
		{name: "unparseable doneAt", file: "bad_done_at.json", accepted: 1},
		{name: "a bad time in a mixed post loses nothing", file: "bad_mixed_report.json", accepted: 2, outbound: []string{"out-dlr-1"},
			check: func(t *testing.T, e *testEnv) {
				e.byExternalID(t, "wamid.mixed-in-1")
				require.NotEqual(t, store.StatusQueued, e.byExternalID(t, "out-dlr-1").Status)
			}},
	}
	for i, tc := range cases {
		// CTLive's route for the seed cases and alternately for the rest;
		// both routes are the same handler.
		route := ibRoute
		if strings.HasPrefix(tc.file, "seed_") || i%2 == 0 {
			route = seedRoute
		}
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			for _, ext := range tc.outbound {
				queueOut(t, e, ext, "41793026731")
			}
			for _, f := range tc.before {
				a := e.post(t, ibRoute, fixture(t, "infobip", f))
				require.Equal(t, http.StatusOK, a.Status, "before %s: %s", f, a.Body)
			}
			before := e.messageCount(t)
			a := e.post(t, route, fixture(t, "infobip", tc.file))
			want := tc.status
			if want == 0 {
				want = http.StatusOK
			}
			require.Equal(t, want, a.Status, "answer: %s", a.Body)
			require.Contains(t, a.Header.Get("Content-Type"), "application/json")
			if want == http.StatusOK {
				require.JSONEq(t, fmt.Sprintf(`{"accepted":%d,"duplicates":%d,"quarantined":%d}`, tc.accepted, tc.duplicates, tc.quarantined), string(a.Body))
				require.EqualValues(t, 1, counterValue(t, e.Metrics.InboundPosts, "infobip")-float64(len(tc.before)))
				q, _, err := e.Store.Quarantine(50, "")
				require.NoError(t, err)
				require.Len(t, q, tc.quarantined)
				require.EqualValues(t, tc.quarantined, counterValue(t, e.Metrics.Quarantined, "infobip"))
				for _, frag := range tc.errHas {
					require.Contains(t, q[0].Reason, frag)
				}
				if tc.quarantined > 0 {
					require.Equal(t, route, q[0].Route)
					require.True(t, json.Valid(q[0].Raw), "the raw result is kept as JSON")
				}
			} else {
				msg := a.ErrorText(t)
				for _, frag := range tc.errHas {
					require.Contains(t, msg, frag)
				}
				require.Equal(t, before, e.messageCount(t), "a refused post stores nothing")
				require.EqualValues(t, 1, counterValue(t, e.Metrics.Rejections, route, "invalid"))
			}
			if tc.check != nil {
				tc.check(t, e)
			}
			e.requireClean(t)
		})
	}
}

func findEvent(t *testing.T, m *store.Message, status string) store.Event {
	t.Helper()
	for _, e := range m.Timeline {
		if e.Status == status {
			return e
		}
	}
	t.Fatalf("no %s event in timeline %v", status, timelineStatuses(m))
	return store.Event{}
}

func TestInfobipMetrics(t *testing.T) {
	e := newTestEnv(t)
	queueOut(t, e, "out-dlr-1", "41793026731")
	require.Equal(t, http.StatusOK, e.post(t, ibRoute, fixture(t, "infobip", "mixed.json")).Status)
	require.Equal(t, http.StatusOK, e.post(t, ibRoute, fixture(t, "infobip", "seed_text.json")).Status)
	require.Equal(t, http.StatusOK, e.post(t, ibRoute, fixture(t, "infobip", "seed_text.json")).Status)
	m := e.Metrics
	require.EqualValues(t, 3, counterValue(t, m.InboundPosts, "infobip"))
	require.EqualValues(t, 2, counterValue(t, m.InboundMessages, "infobip"))
	require.EqualValues(t, 1, counterValue(t, m.InboundDuplicates, "infobip"))
	require.EqualValues(t, 1, counterValue(t, m.InboundReports, "infobip", store.StatusDelivered))
	require.EqualValues(t, 1, counterValue(t, m.InboundReports, "infobip", store.StatusSeen))
}

func TestInfobipCredentials(t *testing.T) {
	e := newTestEnv(t)
	body := fixture(t, "infobip", "seed_text.json")
	for _, route := range []string{seedRoute, ibRoute} {
		for _, c := range []struct{ name, user, pass string }{
			{"none", "", ""},
			{"wrong password", testUser, "nope"},
			{"wrong user", "someone", testPassword},
		} {
			t.Run(route+" "+c.name, func(t *testing.T) {
				a := e.postAs(t, route, c.user, c.pass, "application/json", body)
				require.Equal(t, http.StatusUnauthorized, a.Status)
				require.Contains(t, a.ErrorText(t), "credentials")
				require.Equal(t, `Basic realm="imchannel"`, a.Header.Get("WWW-Authenticate"))
			})
		}
		require.EqualValues(t, 3, counterValue(t, e.Metrics.Rejections, route, "unauthorized"))
	}
	e.noMessage(t, "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ")
	a := e.post(t, ibRoute, body)
	require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
}

func TestInfobipOpenWithoutCredentials(t *testing.T) {
	e := newTestEnv(t, func(d *webhook.Deps) { d.Creds = nil })
	a := e.postAs(t, ibRoute, "", "", "application/json", fixture(t, "infobip", "seed_text.json"))
	require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
}

func TestInfobipMethodAndRoute(t *testing.T) {
	e := newTestEnv(t)
	req, err := http.NewRequest(http.MethodGet, e.Server.URL+ibRoute, nil)
	require.NoError(t, err)
	req.SetBasicAuth(testUser, testPassword)
	a := e.do(t, req)
	require.Equal(t, http.StatusMethodNotAllowed, a.Status)
	a.ErrorText(t)
}

func TestInfobipBodyLimit(t *testing.T) {
	e := newTestEnv(t)
	// A well-formed post just over 1 MiB: the size alone refuses it.
	var b bytes.Buffer
	b.WriteString(`{"results":[`)
	for i := 0; b.Len() <= 1<<20; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"from":"385919998888","to":"1234","messageId":"wamid.big-%06d","message":{"type":"TEXT","text":"%s"}}`, i, strings.Repeat("x", 200))
	}
	b.WriteString(`]}`)
	a := e.post(t, ibRoute, b.Bytes())
	require.Equal(t, http.StatusRequestEntityTooLarge, a.Status)
	require.Contains(t, a.ErrorText(t), "larger than the limit of 1048576 bytes")
	require.EqualValues(t, 0, e.messageCount(t))
	require.EqualValues(t, 1, counterValue(t, e.Metrics.Rejections, ibRoute, "too_large"))
}

// manyResults builds a post of n text messages; bad, when >= 0, gets an
// out-of-range latitude instead.
func manyResults(n, bad int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"results":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		from := fmt.Sprintf("38591%07d", i%7) // several conversations
		if i == bad {
			fmt.Fprintf(&b, `{"from":%q,"to":"1234","receivedAt":"2024-03-01T09:00:00.000+0000","messageId":"wamid.many-%04d","message":{"type":"LOCATION","latitude":-90.5,"longitude":0}}`, from, i)
			continue
		}
		fmt.Fprintf(&b, `{"from":%q,"to":"1234","receivedAt":"2024-03-01T09:00:00.000+0000","messageId":"wamid.many-%04d","message":{"type":"TEXT","text":"message %d"}}`, from, i, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// One bad result among 300 holds nothing back: the 299 are stored, the bad
// one is quarantined, and a resend of the whole post changes nothing.
func TestInfobipOneBadResultAmongMany(t *testing.T) {
	e := newTestEnv(t)
	a := e.post(t, ibRoute, manyResults(300, 237))
	require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
	require.JSONEq(t, `{"accepted":299,"duplicates":0,"quarantined":1}`, string(a.Body))
	require.EqualValues(t, 299, e.messageCount(t))
	e.noMessage(t, "wamid.many-0237")
	require.Equal(t, "message 236", e.byExternalID(t, "wamid.many-0236").Text)
	q, _, err := e.Store.Quarantine(10, "")
	require.NoError(t, err)
	require.Len(t, q, 1)
	require.Contains(t, q[0].Reason, "results[237].message.latitude")
	require.Contains(t, string(q[0].Raw), "wamid.many-0237")

	// Resent whole: every good one a duplicate, the bad one counted again.
	a = e.post(t, ibRoute, manyResults(300, 237))
	require.JSONEq(t, `{"accepted":0,"duplicates":299,"quarantined":1}`, string(a.Body))
	q, _, err = e.Store.Quarantine(10, "")
	require.NoError(t, err)
	require.Len(t, q, 1)
	require.Equal(t, 2, q[0].Count)

	// Resent whole and well-formed: only the missing one is new.
	a = e.post(t, ibRoute, manyResults(300, -1))
	require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
	require.JSONEq(t, `{"accepted":1,"duplicates":299,"quarantined":0}`, string(a.Body))
	require.EqualValues(t, 300, e.messageCount(t))
	require.Equal(t, "message 237", e.byExternalID(t, "wamid.many-0237").Text)
	e.requireClean(t)
}

func TestInfobipSamePostFiftyTimesAtOnce(t *testing.T) {
	e := newTestEnv(t)
	body := fixture(t, "infobip", "seed_text_contact.json")
	const n = 50
	answers := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, err := http.NewRequest(http.MethodPost, e.Server.URL+seedRoute, bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			req.SetBasicAuth(testUser, testPassword)
			answers[i] = e.do(t, req)
		}()
	}
	close(start)
	wg.Wait()
	accepted, dups := 0, 0
	for _, a := range answers {
		require.Equal(t, http.StatusOK, a.Status, "%s", a.Body)
		var v struct{ Accepted, Duplicates int }
		require.NoError(t, json.Unmarshal(a.Body, &v))
		accepted += v.Accepted
		dups += v.Duplicates
	}
	require.Equal(t, 1, accepted, "exactly one post stored the message")
	require.Equal(t, n-1, dups)
	require.EqualValues(t, 1, e.messageCount(t))
	m := e.byExternalID(t, "ABEGOFl3VCQoAhBalbc6rTQT6mgS29EmGZ7a")
	require.Len(t, e.conversationMessages(t, m.ConversationID), 1)
	require.EqualValues(t, n-1, counterValue(t, e.Metrics.InboundDuplicates, "infobip"))
	e.requireClean(t)
}

func TestInfobipSeenBeforeDeliveryBeforeMessage(t *testing.T) {
	e := newTestEnv(t)
	for _, f := range []string{"seen_then_delivered_seen.json", "seen_then_delivered_dlr.json"} {
		a := e.post(t, ibRoute, fixture(t, "infobip", f))
		require.Equal(t, http.StatusOK, a.Status, "%s: %s", f, a.Body)
		require.JSONEq(t, `{"accepted":1,"duplicates":0,"quarantined":0}`, string(a.Body), "a parked report is accepted")
	}
	e.noMessage(t, "out-race-1")

	out := queueOut(t, e, "out-race-1", "41793026731")
	require.Equal(t, store.StatusSeen, out.Status)
	seen := findEvent(t, out, store.StatusSeen)
	require.True(t, seen.At.Equal(utc("2024-03-01T10:00:09Z")))
	dlr := findEvent(t, out, store.StatusDelivered)
	require.Equal(t, "DELIVERED_TO_HANDSET", dlr.Name)
	require.True(t, dlr.At.Equal(utc("2024-03-01T10:00:02Z")))
	// The timeline is in the reports' own time order, whatever the arrival.
	var idx = map[string]int{}
	for i, ev := range out.Timeline {
		idx[ev.Status] = i
	}
	require.Less(t, idx[store.StatusDelivered], idx[store.StatusSeen])
	e.requireClean(t)
}

func TestInfobipStoreClosedIs503(t *testing.T) {
	e := newTestEnv(t)
	require.NoError(t, e.Store.Close())
	a := e.post(t, ibRoute, fixture(t, "infobip", "seed_text.json"))
	require.Equal(t, http.StatusServiceUnavailable, a.Status, "%s", a.Body)
	require.Equal(t, "5", a.Header.Get("Retry-After"))
	a.ErrorText(t)
}
