package web

import (
	"encoding/json"
	"time"

	"imchannel/store"
)

// MessageJSON is a message as the agents' API shows it (docs/agents.md#message-json).
// store.Message carries internal fields (raw payloads, outbound specs,
// aliases, action targets) that must never leave through the API, so the
// API answers with this view instead. Fields that do not apply are left out.
type MessageJSON struct {
	ID             string           `json:"id"`
	ConversationID string           `json:"conversationId"`
	Direction      string           `json:"direction"`
	Provider       string           `json:"provider"`
	ExternalID     string           `json:"externalId,omitempty"`
	From           string           `json:"from"`
	To             string           `json:"to"`
	ContactName    string           `json:"contactName,omitempty"`
	Type           string           `json:"type"`
	Text           string           `json:"text,omitempty"`
	Caption        string           `json:"caption,omitempty"`
	Media          *MediaJSON       `json:"media,omitempty"`
	Location       *store.Location  `json:"location,omitempty"`
	Contacts       json.RawMessage  `json:"contacts,omitempty"`
	Interactive    *InteractiveJSON `json:"interactive,omitempty"`
	Order          json.RawMessage  `json:"order,omitempty"`
	ReplyTo        *ReplyJSON       `json:"replyTo,omitempty"`
	Reactions      []ReactionJSON   `json:"reactions,omitempty"`
	ReceivedAt     time.Time        `json:"receivedAt,omitzero"`
	CreatedAt      time.Time        `json:"createdAt"`
	Status         string           `json:"status"`
	Timeline       []TimelineJSON   `json:"timeline,omitempty"`
	Deleted        bool             `json:"deleted,omitempty"`
	Error          string           `json:"error,omitempty"`
	// Template is an outbound template's name, language and values.
	Template *store.Template `json:"template,omitempty"`
	SendAt   time.Time       `json:"sendAt,omitzero"`
	Delivery *DeliveryJSON   `json:"delivery,omitempty"`
	// Additions to the original message JSON (all provider facts we map):
	// voice marks a voice note among audio; identity a changed security
	// code; notes what was repaired on the way in.
	Voice           bool                   `json:"voice,omitempty"`
	Referral        *store.Referral        `json:"referral,omitempty"`
	ReferredProduct *store.ReferredProduct `json:"referredProduct,omitempty"`
	Identity        *store.Identity        `json:"identity,omitempty"`
	Notes           []string               `json:"notes,omitempty"`
	ProviderData    json.RawMessage        `json:"providerData,omitempty"`
}

// DeliveryJSON is where the outbox stands with an outbound message, while
// it holds it: failed attempts so far, the last one's error, the next try.
type DeliveryJSON struct {
	Attempts      int       `json:"attempts"`
	LastError     string    `json:"lastError,omitempty"`
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
}

// MediaJSON is an attachment: where to get the bytes and in which state
// the cached copy is. fileName and error are additions to the original
// example: the document's name and why a fetch failed. Media we sent by
// URL has no copy here: only sourceUrl (and type, name), no id or state.
type MediaJSON struct {
	ID          string `json:"id,omitempty"`
	URL         string `json:"url,omitempty"`
	SourceURL   string `json:"sourceUrl,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	FileName    string `json:"fileName,omitempty"`
	Size        int64  `json:"size,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	State       string `json:"state,omitempty"`
	Error       string `json:"error,omitempty"`
}

// InteractiveJSON is a button, list or flow reply.
type InteractiveJSON struct {
	Type        string          `json:"type"`
	ID          string          `json:"id,omitempty"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description,omitempty"`
	Payload     string          `json:"payload,omitempty"`
	Response    json.RawMessage `json:"response,omitempty"`
}

// ReplyJSON names the quoted message; id is empty until it is stored.
type ReplyJSON struct {
	ID         string `json:"id,omitempty"`
	ExternalID string `json:"externalId"`
}

// ReactionJSON is an emoji put on the message.
type ReactionJSON struct {
	Emoji string    `json:"emoji"`
	From  string    `json:"from"`
	At    time.Time `json:"at,omitzero"`
}

// TimelineJSON is one status report. reason is an addition: the provider's
// error text on a failure.
type TimelineJSON struct {
	Status      string       `json:"status"`
	At          time.Time    `json:"at"`
	GroupName   string       `json:"groupName,omitempty"`
	Name        string       `json:"name,omitempty"`
	Description string       `json:"description,omitempty"`
	Reason      string       `json:"reason,omitempty"`
	Action      string       `json:"action,omitempty"`
	Price       *store.Price `json:"price,omitempty"`
	Note        string       `json:"note,omitempty"`
	// ProviderData: the report's provider fields not mapped, raw.
	ProviderData json.RawMessage `json:"providerData,omitempty"`
}

// messageJSON maps a stored message (media already joined by the store) to
// the API view.
func messageJSON(m *store.Message) MessageJSON {
	v := MessageJSON{
		ID: m.ID, ConversationID: m.ConversationID, Direction: m.Direction, Provider: m.Provider,
		ExternalID: m.ExternalID, From: m.From, To: m.To, ContactName: m.ContactName, Type: m.Type,
		Text: m.Text, Caption: m.Caption, Location: m.Location, Contacts: m.Contacts, Order: m.Order,
		ReceivedAt: utcOrZero(m.ReceivedAt), CreatedAt: m.CreatedAt.UTC(), Status: m.Status,
		Deleted: m.Deleted, Error: m.Error, Template: m.Template, Voice: m.Voice, Referral: m.Referral,
		ReferredProduct: m.ReferredProduct, Identity: m.Identity, Notes: m.Notes, ProviderData: m.ProviderData,
	}
	if m.Type == store.TypeUnsupported && len(m.ProviderData) == 0 {
		// Nothing of it is mapped: the whole provider item is the data.
		v.ProviderData = m.Raw
	}
	if md := m.Media; md != nil {
		v.Media = &MediaJSON{ID: md.ID, URL: md.URL, SourceURL: md.SourceURL, ContentType: md.ContentType,
			FileName: md.FileName, Size: md.Size, SHA256: md.SHA256, State: md.State, Error: md.Error}
	}
	if it := m.Interactive; it != nil {
		v.Interactive = &InteractiveJSON{Type: it.Type, ID: it.ID, Title: it.Title, Description: it.Description,
			Payload: it.Payload, Response: it.Response}
	}
	if m.ReplyTo != nil {
		v.ReplyTo = &ReplyJSON{ID: m.ReplyTo.ID, ExternalID: m.ReplyTo.ExternalID}
	}
	if m.Direction == store.Outbound && m.Outbound != nil {
		v.SendAt = utcOrZero(m.Outbound.SendAt)
	}
	if d := m.Delivery; d != nil {
		v.Delivery = &DeliveryJSON{Attempts: d.Attempts, LastError: d.LastError, NextAttemptAt: utcOrZero(d.NextAttemptAt)}
	}
	for _, r := range m.Reactions {
		v.Reactions = append(v.Reactions, ReactionJSON{Emoji: r.Emoji, From: r.From, At: r.At.UTC()})
	}
	for _, e := range m.Timeline {
		v.Timeline = append(v.Timeline, TimelineJSON{Status: e.Status, At: e.At.UTC(), GroupName: e.GroupName,
			Name: e.Name, Description: e.Description, Reason: e.Reason, Action: e.Action, Price: e.Price, Note: e.Note,
			ProviderData: e.ProviderData})
	}
	return v
}

// ConversationJSON is a conversation as the API lists it.
type ConversationJSON struct {
	ID             string    `json:"id"`
	Business       string    `json:"business"`
	Customer       string    `json:"customer"`
	Name           string    `json:"name,omitempty"`
	Domain         string    `json:"domain"`
	CreatedAt      time.Time `json:"createdAt"`
	LastActivity   time.Time `json:"lastActivity"`
	LastMessageID  string    `json:"lastMessageId,omitempty"`
	LastMessage    string    `json:"lastMessage,omitempty"`
	LastDirection  string    `json:"lastDirection,omitempty"`
	LastInboundAt  time.Time `json:"lastInboundAt,omitzero"`
	LastOutboundAt time.Time `json:"lastOutboundAt,omitzero"`
	Unanswered     bool      `json:"unanswered"`
	FailedCount    int       `json:"failedCount"`
	MessageCount   int       `json:"messageCount"`
}

func conversationJSON(c *store.Conversation) ConversationJSON {
	return ConversationJSON{
		ID: c.ID, Business: c.Business, Customer: c.Customer, Name: c.Name, Domain: c.Domain,
		CreatedAt: c.CreatedAt.UTC(), LastActivity: c.LastActivity.UTC(), LastMessageID: c.LastMessageID,
		LastMessage: c.LastPreview, LastDirection: c.LastDirection,
		LastInboundAt: utcOrZero(c.LastInboundAt), LastOutboundAt: utcOrZero(c.LastOutboundAt),
		Unanswered: c.Unanswered(), FailedCount: c.FailedCount, MessageCount: c.MessageCount,
	}
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
