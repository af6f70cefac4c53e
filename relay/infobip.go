package relay

// The infobip format: CTLive's own IM channel protocol, which follows
// Infobip's WhatsApp webhook (docs/protocols.md#infobip-inbound, docs/protocols.md#infobip-reports). A body is {"results":[…]}; each result is an
// inbound message, a delivery report or a seen report, the three shapes
// webhook/infobip.go reads. Messages from CM.com are translated into the
// same shapes, every field that has a place filled in.

import (
	"cmp"
	"encoding/json"
	"strings"
	"time"

	"imchannel/store"
)

// seedTime is the IM channel protocol's timestamp layout ("2019-07-19T11:21:27.861+0000").
const seedTime = "2006-01-02T15:04:05.000-0700"

func fmtSeed(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(seedTime)
}

// ibInbound is the protocol's inbound message result (docs/protocols.md#infobip-inbound).
type ibInbound struct {
	From            string    `json:"from"`
	To              string    `json:"to"`
	IntegrationType string    `json:"integrationType"`
	ReceivedAt      string    `json:"receivedAt"`
	MessageID       string    `json:"messageId"`
	PairedMessageID *string   `json:"pairedMessageId"` // null when it quotes nothing, as in the seed
	Message         ibMessage `json:"message"`
	Contact         *ibName   `json:"contact,omitempty"`
}

type ibName struct {
	Name string `json:"name"`
}

// ibMessage is the union of the message shapes webhook/infobip.go reads.
type ibMessage struct {
	Type         string          `json:"type"`
	Text         string          `json:"text,omitempty"`
	Caption      string          `json:"caption,omitempty"`
	URL          string          `json:"url,omitempty"`
	Latitude     *float64        `json:"latitude,omitempty"`
	Longitude    *float64        `json:"longitude,omitempty"`
	Name         string          `json:"name,omitempty"`
	Address      string          `json:"address,omitempty"`
	Contacts     json.RawMessage `json:"contacts,omitempty"`
	Payload      string          `json:"payload,omitempty"`
	ID           string          `json:"id,omitempty"`
	Title        string          `json:"title,omitempty"`
	Description  string          `json:"description,omitempty"`
	Response     json.RawMessage `json:"response,omitempty"`
	CatalogID    string          `json:"catalogId,omitempty"`
	ProductItems json.RawMessage `json:"productItems,omitempty"`
}

// ibReport is the protocol's delivery report (status set) or seen report
// (seenAt set, no status): the receiver tells them apart by those fields
// (docs/protocols.md#infobip-reports).
type ibReport struct {
	BulkID    string    `json:"bulkId,omitempty"`
	Status    *ibStatus `json:"status,omitempty"`
	MessageID string    `json:"messageId"`
	DoneAt    string    `json:"doneAt,omitempty"`
	SentAt    string    `json:"sentAt,omitempty"`
	SeenAt    string    `json:"seenAt,omitempty"`
	To        string    `json:"to"`
	Channel   string    `json:"channel,omitempty"`
}

type ibStatus struct {
	ID          int    `json:"id,omitempty"`
	GroupID     int    `json:"groupId"`
	GroupName   string `json:"groupName"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// Infobip's status groups and the status we print for each of our states
// when the report carried none of its own (the dispatcher's "sent", CM's
// reports).
var (
	ibGroupIDs = map[string]int{"PENDING": 1, "UNDELIVERABLE": 2, "DELIVERED": 3, "EXPIRED": 4, "REJECTED": 5}
	ibDefaults = map[string]ibStatus{
		store.StatusSent:      {ID: 7, GroupID: 1, GroupName: "PENDING", Name: "PENDING_ENROUTE", Description: "Message sent to next instance"},
		store.StatusDelivered: {ID: 5, GroupID: 3, GroupName: "DELIVERED", Name: "DELIVERED_TO_HANDSET", Description: "Message delivered to handset"},
		store.StatusFailed:    {ID: 9, GroupID: 2, GroupName: "UNDELIVERABLE", Name: "UNDELIVERABLE_NOT_DELIVERED", Description: "Message sent not delivered"},
	}
	ibStatusIDs = map[string]int{"PENDING_ENROUTE": 7, "DELIVERED_TO_HANDSET": 5, "UNDELIVERABLE_NOT_DELIVERED": 9}
)

// ibTypes maps our message types to the protocol's; a type missing here has
// no place in the protocol and goes as UNSUPPORTED with its text.
var ibTypes = map[string]string{
	store.TypeText: "TEXT", store.TypeImage: "IMAGE", store.TypeDocument: "DOCUMENT", store.TypeAudio: "AUDIO",
	store.TypeVideo: "VIDEO", store.TypeSticker: "STICKER", store.TypeLocation: "LOCATION",
	store.TypeContacts: "CONTACT", store.TypeButton: "BUTTON", store.TypeOrder: "ORDER",
}

var ibInteractive = map[string]string{
	"button_reply": "INTERACTIVE_BUTTON_REPLY", "list_reply": "INTERACTIVE_LIST_REPLY", "nfm_reply": "INTERACTIVE_FLOW_REPLY",
}

// inboundResult translates an inbound message. mediaURL is where CTLive
// fetches the bytes; paired is the messageId of the quoted message as
// CTLive knows it ("" when none).
func inboundResult(m *store.Message, mediaURL, paired string) ibInbound {
	r := ibInbound{
		From: m.From, To: m.To, IntegrationType: "WHATSAPP", MessageID: m.ExternalID,
		ReceivedAt: fmtSeed(m.ReceivedAt),
	}
	if r.ReceivedAt == "" {
		r.ReceivedAt = fmtSeed(m.CreatedAt)
	}
	if paired != "" {
		r.PairedMessageID = &paired
	}
	if m.ContactName != "" {
		r.Contact = &ibName{Name: m.ContactName}
	}
	msg := ibMessage{Type: ibTypes[m.Type], Text: m.Text, Caption: m.Caption}
	switch m.Type {
	case store.TypeImage, store.TypeAudio, store.TypeVideo, store.TypeSticker:
		msg.URL = mediaURL
		if m.Type == store.TypeAudio && m.Voice {
			msg.Type = "VOICE" // Infobip's type for a voice note
		}
	case store.TypeDocument:
		msg.URL = mediaURL
		// A document's caption is its file name (docs/protocols.md#infobip-inbound).
		if m.Media != nil && m.Media.FileName != "" {
			msg.Caption = m.Media.FileName
		}
	case store.TypeLocation:
		if l := m.Location; l != nil {
			lat, lon := l.Latitude, l.Longitude
			msg.Latitude, msg.Longitude = &lat, &lon
			msg.Name, msg.Address, msg.URL = l.Name, l.Address, l.URL
		}
	case store.TypeContacts:
		msg.Contacts = m.Contacts
	case store.TypeButton:
		if it := m.Interactive; it != nil {
			msg.Payload = it.Payload
			if msg.Text == "" {
				msg.Text = it.Title
			}
		}
	case store.TypeInteractive:
		if it := m.Interactive; it != nil {
			msg.Type = ibInteractive[it.Type]
			msg.ID, msg.Title, msg.Description, msg.Response = it.ID, it.Title, it.Description, it.Response
			if it.Type == "button" { // a template button press stored as interactive
				msg.Type, msg.Payload, msg.Text = "BUTTON", it.Payload, cmp.Or(m.Text, it.Title)
			}
		}
	case store.TypeOrder:
		// Infobip's order is camelCase; CM passes WhatsApp's snake_case on.
		var o struct {
			CatalogID     string          `json:"catalogId"`
			CatalogIDWA   string          `json:"catalog_id"`
			ProductItems  json.RawMessage `json:"productItems"`
			ProductItemsW json.RawMessage `json:"product_items"`
			Text          string          `json:"text"`
		}
		if json.Unmarshal(m.Order, &o) == nil {
			msg.CatalogID = cmp.Or(o.CatalogID, o.CatalogIDWA)
			msg.ProductItems = o.ProductItems
			if len(msg.ProductItems) == 0 {
				msg.ProductItems = o.ProductItemsW
			}
			msg.Text = cmp.Or(msg.Text, o.Text)
		}
	}
	if msg.Type == "" {
		msg.Type = "UNSUPPORTED"
	}
	r.Message = msg
	return r
}

// reportResult translates one timeline entry of an outbound message into
// a delivery or seen report; ok is false for entries the protocol has no shape
// for (queued, scheduled, unknown).
func reportResult(m *store.Message, e *store.Event) (ibReport, bool) {
	r := ibReport{MessageID: m.ExternalID, To: m.To, SentAt: fmtSeed(sentAt(m))}
	if e.Status == store.StatusSeen {
		r.SeenAt = fmtSeed(e.At)
		return r, true
	}
	def, ok := ibDefaults[e.Status]
	if !ok {
		return ibReport{}, false
	}
	st := def
	if g := strings.ToUpper(e.GroupName); g != "" && ibGroupIDs[g] != 0 {
		st.GroupName, st.GroupID = g, ibGroupIDs[g]
		if e.Name != "" {
			st.Name, st.ID = e.Name, ibStatusIDs[e.Name]
		}
		if e.Description != "" {
			st.Description = e.Description
		}
	}
	if e.Status == store.StatusFailed && e.Reason != "" && e.Description == "" {
		st.Description = e.Reason
	}
	if m.Outbound != nil {
		r.BulkID = m.Outbound.BulkID
	}
	r.Status, r.DoneAt, r.Channel = &st, fmtSeed(e.At), "WHATSAPP"
	return r, true
}

// sentAt is when the message left: its first "sent" entry, else its
// creation.
func sentAt(m *store.Message) time.Time {
	for _, e := range m.Timeline {
		if e.Status == store.StatusSent {
			return e.At
		}
	}
	return m.CreatedAt
}
