package store

import (
	"encoding/json"
	"time"
)

// Directions.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Providers. A provider name is also the namespace of external ids.
const (
	ProviderInfobip = "infobip"
	ProviderCM      = "cm"
)

// Message statuses (docs/agents.md#message-json).
const (
	StatusReceived  = "received"
	StatusScheduled = "scheduled"
	StatusQueued    = "queued"
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusSeen      = "seen"
	StatusFailed    = "failed"
	StatusDeleted   = "deleted"
	// StatusUnknown marks a timeline event whose provider status we cannot
	// map; it is kept for the record and changes nothing.
	StatusUnknown = "unknown"
)

// Message types (docs/agents.md#message-json).
const (
	TypeText           = "text"
	TypeImage          = "image"
	TypeDocument       = "document"
	TypeAudio          = "audio"
	TypeVideo          = "video"
	TypeSticker        = "sticker"
	TypeLocation       = "location"
	TypeContacts       = "contacts"
	TypeInteractive    = "interactive"
	TypeButton         = "button"
	TypeOrder          = "order"
	TypeTemplate       = "template"
	TypeError          = "error"
	TypeWelcomeRequest = "welcome_request"
	TypeUnsupported    = "unsupported"

	// Action types are never stored as messages of their own: SaveInbound
	// applies them to the message named by Target (now, or when it arrives).
	TypeReaction = "reaction"
	TypeDelete   = "delete"
)

// Media states.
const (
	MediaPending  = "pending"
	MediaCached   = "cached"
	MediaFailed   = "failed"
	MediaTooLarge = "too_large"
	MediaDeleted  = "deleted"
)

// DefaultDomain is the tenant of a conversation nobody named.
const DefaultDomain = "default"

// Conversation is one customer talking to one business number.
type Conversation struct {
	ID       string `json:"id"`
	Business string `json:"business"` // digits only
	Customer string `json:"customer"` // digits only
	Name     string `json:"name,omitempty"`
	Domain   string `json:"domain"`

	CreatedAt    time.Time `json:"createdAt"`
	LastActivity time.Time `json:"lastActivity"`

	LastMessageID  string    `json:"lastMessageId,omitempty"`
	LastPreview    string    `json:"lastPreview,omitempty"`
	LastDirection  string    `json:"lastDirection,omitempty"`
	LastInboundAt  time.Time `json:"lastInboundAt,omitzero"`
	LastOutboundAt time.Time `json:"lastOutboundAt,omitzero"`

	MessageCount int `json:"messageCount"`
	FailedCount  int `json:"failedCount"` // outbound messages whose status is failed
	// WelcomeSent records that the configured welcome text went out once.
	WelcomeSent bool `json:"welcomeSent,omitempty"`
}

// Unanswered reports whether the customer spoke last.
func (c *Conversation) Unanswered() bool {
	return !c.LastInboundAt.IsZero() && c.LastInboundAt.After(c.LastOutboundAt)
}

// Media is a message's attachment. The record in the media bucket is the
// source of truth; a message carries only its id (MediaID) and readers join.
type Media struct {
	ID          string `json:"id"`
	URL         string `json:"url,omitempty"` // where agents get the bytes: /media/{id}
	SourceURL   string `json:"sourceUrl,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	// SniffedType is what the bytes look like, kept when it disagrees
	// with ContentType.
	SniffedType string `json:"sniffedType,omitempty"`
	FileName    string `json:"fileName,omitempty"`
	Size        int64  `json:"size,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	State       string `json:"state"`
	Error       string `json:"error,omitempty"`
	// Width and Height are a cached image's size in pixels; Thumb is the
	// type of the preview kept beside it (media_thumbs), "" when there is
	// none (not an image, or small enough to be its own preview).
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Thumb  string `json:"thumb,omitempty"`

	// Fetch bookkeeping (not part of the agents' JSON).
	MessageID string    `json:"messageId,omitempty"`
	Provider  string    `json:"provider,omitempty"`
	Attempts  int       `json:"attempts,omitempty"`
	NextAt    time.Time `json:"nextAt,omitzero"`
	FirstTry  time.Time `json:"firstTry,omitzero"`
	// Token, when set, makes the bytes public at /media/public/{token}:
	// headers we host for outbound templates.
	Token     string    `json:"token,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Location is a shared place.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name,omitempty"`
	Address   string  `json:"address,omitempty"`
	URL       string  `json:"url,omitempty"`
}

// Interactive is a button, list or flow reply, or a template button press.
type Interactive struct {
	Type        string          `json:"type"` // button_reply list_reply nfm_reply button
	ID          string          `json:"id,omitempty"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description,omitempty"`
	Payload     string          `json:"payload,omitempty"`
	Response    json.RawMessage `json:"response,omitempty"`
}

// ReplyRef points at the message quoted. ID is empty until that message is
// in the store.
type ReplyRef struct {
	ID         string `json:"id,omitempty"`
	ExternalID string `json:"externalId"`
}

// Reaction is an emoji one side put on a message.
type Reaction struct {
	Emoji      string    `json:"emoji"`
	From       string    `json:"from"`
	ExternalID string    `json:"externalId,omitempty"`
	At         time.Time `json:"at"`
}

// Referral is where a customer clicked through to WhatsApp from.
type Referral struct {
	SourceType   string `json:"sourceType,omitempty"` // AD POST UNKNOWN
	SourceID     string `json:"sourceId,omitempty"`
	SourceURL    string `json:"sourceUrl,omitempty"`
	Headline     string `json:"headline,omitempty"`
	Body         string `json:"body,omitempty"`
	MediaType    string `json:"mediaType,omitempty"` // image video
	MediaURL     string `json:"mediaUrl,omitempty"`
	ThumbnailURL string `json:"thumbnailUrl,omitempty"`
	CtwaClickID  string `json:"ctwaClickId,omitempty"`
}

// ReferredProduct is a catalogue product a message was sent about.
type ReferredProduct struct {
	CatalogID         string `json:"catalogId,omitempty"`
	ProductRetailerID string `json:"productRetailerId,omitempty"`
}

// Identity is WhatsApp's notice that a customer's identity key changed.
type Identity struct {
	Acknowledged bool      `json:"acknowledged"`
	Hash         string    `json:"hash,omitempty"`
	CreatedAt    time.Time `json:"createdAt,omitzero"`
}

// Price is what the provider charged for a message.
type Price struct {
	PricePerMessage float64 `json:"pricePerMessage"`
	Currency        string  `json:"currency,omitempty"`
}

// Event is one entry of an outbound message's timeline.
type Event struct {
	Status      string    `json:"status"`
	At          time.Time `json:"at"`
	GroupName   string    `json:"groupName,omitempty"`
	Name        string    `json:"name,omitempty"`
	Description string    `json:"description,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	// Action is the provider's advice with the status (Infobip status.action).
	Action string `json:"action,omitempty"`
	Price  *Price `json:"price,omitempty"`
	// Note says what was repaired (an unreadable time replaced).
	Note string `json:"note,omitempty"`
	// ProviderData keeps the report's fields not mapped above, raw.
	ProviderData json.RawMessage `json:"providerData,omitempty"`
}

// Message is one message of a conversation, in either direction. The JSON
// tags follow docs/agents.md#message-json; fields after the marked line are internal.
type Message struct {
	ID             string          `json:"id"`
	ConversationID string          `json:"conversationId"`
	Direction      string          `json:"direction"`
	Provider       string          `json:"provider"`
	ExternalID     string          `json:"externalId,omitempty"`
	From           string          `json:"from"`
	To             string          `json:"to"`
	ContactName    string          `json:"contactName,omitempty"`
	Type           string          `json:"type"`
	Text           string          `json:"text,omitempty"`
	Caption        string          `json:"caption,omitempty"`
	Media          *Media          `json:"media,omitempty"`
	Location       *Location       `json:"location,omitempty"`
	Contacts       json.RawMessage `json:"contacts,omitempty"`
	Interactive    *Interactive    `json:"interactive,omitempty"`
	Order          json.RawMessage `json:"order,omitempty"`
	ReplyTo        *ReplyRef       `json:"replyTo,omitempty"`
	Reactions      []Reaction      `json:"reactions,omitempty"`
	ReceivedAt     time.Time       `json:"receivedAt,omitzero"`
	CreatedAt      time.Time       `json:"createdAt"`
	Status         string          `json:"status"`
	Timeline       []Event         `json:"timeline,omitempty"`
	Deleted        bool            `json:"deleted,omitempty"`
	Error          string          `json:"error,omitempty"`
	// Template is what an outbound template carried, for agents to see.
	Template *Template `json:"template,omitempty"`
	// Voice marks a voice note (Infobip VOICE, CM voice): still TypeAudio.
	Voice bool `json:"voice,omitempty"`
	// Referral is the ad or post a customer came from (click to WhatsApp).
	Referral *Referral `json:"referral,omitempty"`
	// ReferredProduct is the catalogue product a customer asked about.
	ReferredProduct *ReferredProduct `json:"referredProduct,omitempty"`
	// Identity says the customer's security code changed.
	Identity *Identity `json:"identity,omitempty"`
	// ProviderData keeps every provider field not mapped above, raw.
	ProviderData json.RawMessage `json:"providerData,omitempty"`
	// Notes say what was repaired on the way in (an unreadable time
	// replaced by the arrival time, …).
	Notes []string `json:"notes,omitempty"`

	// ---- internal ----

	// Raw keeps the provider's payload for types we do not model.
	Raw json.RawMessage `json:"raw,omitempty"`
	// Domain is the tenant; it is recorded on the conversation.
	Domain string `json:"domain,omitempty"`
	// Target names the message an action (reaction, delete) applies to.
	Target string `json:"target,omitempty"`
	// ReactionEmoji and ReactionRemoved describe a TypeReaction action.
	ReactionEmoji   string `json:"reactionEmoji,omitempty"`
	ReactionRemoved bool   `json:"reactionRemoved,omitempty"`
	// Outbound holds what the dispatcher needs to build the provider
	// request (template fields, media URLs, scenarioKey, bulkId, sendAt).
	Outbound *OutboundSpec `json:"outbound,omitempty"`
	// Aliases are further external ids (provider message ids) that
	// reports may use for this message.
	Aliases []string `json:"aliases,omitempty"`
	// Delivery is the outbox's state of an outbound message still in it,
	// joined by readers; it is never stored with the message.
	Delivery *Delivery `json:"-"`
	// DedupeID, when set, is the idempotency key instead of ExternalID:
	// CM's reference alone does not name one MO (replies to one message
	// share it), so CM MOs are keyed on reference + content hash. The
	// plain ExternalID then names the first message stored with it, for
	// threading.
	DedupeID string `json:"dedupeId,omitempty"`
}

// ownIDs are the external ids whose ext entries belong to m (ExternalID
// only if no earlier message took it first, see DedupeID).
func (m *Message) ownIDs() []string {
	ids := make([]string, 0, 2+len(m.Aliases))
	if m.DedupeID != "" {
		ids = append(ids, m.DedupeID)
	}
	ids = append(ids, m.ExternalID)
	return append(ids, m.Aliases...)
}

// dedupeKey is the external id a resend of m is recognised by.
func (m *Message) dedupeKey() string {
	if m.DedupeID != "" {
		return m.DedupeID
	}
	return m.ExternalID
}

// Delivery is where the outbox stands with a message: how many attempts
// failed, why the last one did, and when the next one is due.
type Delivery struct {
	Attempts      int
	LastError     string
	NextAttemptAt time.Time
}

// OutboundSpec is an outbound message as CTLive asked for it.
type OutboundSpec struct {
	BulkID      string          `json:"bulkId,omitempty"`
	ScenarioKey string          `json:"scenarioKey,omitempty"`
	SendAt      time.Time       `json:"sendAt,omitzero"`
	WhatsApp    json.RawMessage `json:"whatsApp,omitempty"` // the validated whatsApp object, verbatim
	// Template endpoint fields (docs/protocols.md#template-endpoint).
	TemplateName string   `json:"templateName,omitempty"`
	Language     string   `json:"language,omitempty"`
	HeaderData   []string `json:"headerData,omitempty"`
	BodyData     []string `json:"bodyData,omitempty"`
	DynamicURL   []string `json:"dynamicUrl,omitempty"`
	HeaderType   string   `json:"headerType,omitempty"`
	HeaderMedia  string   `json:"headerMedia,omitempty"` // media id hosted for the provider
	// ReplyToExternal is the inbound message this answers (CM context).
	ReplyToExternal string `json:"replyToExternal,omitempty"`
}

// Template is an outbound WhatsApp template as it was sent: its name and
// language and the values filled into it.
type Template struct {
	Name     string          `json:"name"`
	Language string          `json:"language,omitempty"`
	Header   *TemplateHeader `json:"header,omitempty"`
	// BodyParameters fill the body's {{1}}, {{2}}, … in order.
	BodyParameters []string         `json:"bodyParameters,omitempty"`
	Buttons        []TemplateButton `json:"buttons,omitempty"`
}

// TemplateHeader is a template's header: a text parameter, a media file or
// a location.
type TemplateHeader struct {
	Type       string   `json:"type"` // text image video document location
	Parameters []string `json:"parameters,omitempty"`
	// MediaURL is the file the provider was given; for a header imchannel
	// hosts (the template endpoint's base64 header) it is the agents' /media/{id}.
	MediaURL  string   `json:"mediaUrl,omitempty"`
	MediaID   string   `json:"mediaId,omitempty"`
	FileName  string   `json:"fileName,omitempty"`
	Latitude  *float64 `json:"latitude,omitempty"`
	Longitude *float64 `json:"longitude,omitempty"`
}

// TemplateButton is the value one button was sent with.
type TemplateButton struct {
	Index     int    `json:"index"`
	Type      string `json:"type"` // url quick_reply
	Parameter string `json:"parameter"`
}

// Report is a delivery or seen report for an outbound message, named by an
// external id (ours or the provider's alias).
type Report struct {
	Provider    string    `json:"provider"`
	ExternalID  string    `json:"externalId"`
	Status      string    `json:"status"` // sent delivered seen failed unknown
	At          time.Time `json:"at"`
	GroupName   string    `json:"groupName,omitempty"`
	Name        string    `json:"name,omitempty"`
	Description string    `json:"description,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Action      string    `json:"action,omitempty"`
	Price       *Price    `json:"price,omitempty"`
	Note        string    `json:"note,omitempty"`
	// ProviderData: the report's fields not mapped, raw.
	ProviderData json.RawMessage `json:"providerData,omitempty"`
	// Untimed marks a report that carried no time of its own.
	Untimed bool `json:"untimed,omitempty"`
	// IgnoreUnknown: a report naming no stored message is dropped, not
	// parked. CM names our own reference, so an unknown one can only be
	// another sender's on the same account (or an erased message).
	IgnoreUnknown bool `json:"-"`
}

// Event returns the timeline entry the report becomes.
func (r Report) Event() Event {
	return Event{Status: r.Status, At: r.At.UTC(), GroupName: r.GroupName, Name: r.Name,
		Description: r.Description, Reason: r.Reason, Action: r.Action, Price: r.Price, Note: r.Note,
		ProviderData: r.ProviderData}
}
