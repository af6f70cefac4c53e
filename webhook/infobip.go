package webhook

// CTLive's IM channel protocol (docs/protocols.md#infobip-inbound), which is Infobip's WhatsApp
// webhook format: {"results":[…]} where each result is an inbound message,
// a delivery report or a seen report, told apart by their fields.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"imchannel/httpx"
	"imchannel/store"
)

// infobipRoutes are CTLive's path (with its typo) and the corrected one.
var infobipRoutes = []string{"/imchanne/message", "/imchannel/message"}

func (h *Handler) registerInfobip(r *mux.Router) {
	for _, p := range infobipRoutes {
		route := p
		r.Handle(route, h.protect(route, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			h.infobip(w, req, route)
		}))).Methods(http.MethodPost)
	}
}

// ---- the payload ----

type ibPost struct {
	Results *[]ibResult `json:"results"`
}

// ibResult is the union of the three result shapes; which fields are set
// says which one it is. Every field declared here is mapped onto the
// message or report (bulkId only when empty); a result carrying anything
// else keeps it in providerData (see ibKnown).
type ibResult struct {
	// inbound message
	From            string      `json:"from"`
	To              string      `json:"to"`
	IntegrationType string      `json:"integrationType"`
	ReceivedAt      string      `json:"receivedAt"`
	MessageID       string      `json:"messageId"`
	PairedMessageID string      `json:"pairedMessageId"`
	Message         *ibMessage  `json:"message"`
	Contact         *ibContact  `json:"contact"`
	Identity        *ibIdentity `json:"identity"`

	// delivery report (and seen report: messageId, to, sentAt, seenAt)
	BulkID  string    `json:"bulkId"`
	Status  *ibStatus `json:"status"`
	Error   *ibError  `json:"error"`
	Price   *ibPrice  `json:"price"`
	SentAt  string    `json:"sentAt"`
	DoneAt  string    `json:"doneAt"`
	SeenAt  *string   `json:"seenAt"`
	Channel string    `json:"channel"`
}

type ibContact struct {
	Name string `json:"name"`
}

type ibIdentity struct {
	Acknowledged bool   `json:"acknowledged"`
	Hash         string `json:"hash"`
	CreatedAt    string `json:"createdAt"`
}

type ibPrice struct {
	PricePerMessage float64 `json:"pricePerMessage"`
	Currency        string  `json:"currency"`
}

type ibMessage struct {
	Type    string `json:"type"`
	Text    string `json:"text"`
	Caption string `json:"caption"`
	URL     string `json:"url"`
	// LOCATION
	Latitude  *float64 `json:"latitude"`
	Longitude *float64 `json:"longitude"`
	Name      string   `json:"name"`
	Address   string   `json:"address"`
	// CONTACT
	Contacts json.RawMessage `json:"contacts"`
	// BUTTON
	Payload string `json:"payload"`
	// INTERACTIVE_*_REPLY
	ID          string          `json:"id"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Response    json.RawMessage `json:"response"`
	// ORDER
	CatalogID    string          `json:"catalogId"`
	ProductItems json.RawMessage `json:"productItems"`
	// REACTION: the message reacted to is messageId (or context.id).
	Emoji     string `json:"emoji"`
	Action    string `json:"action"`
	MessageID string `json:"messageId"`
	// Context names the message quoted.
	Context  *ibContext  `json:"context"`
	Referral *ibReferral `json:"referral"`
	// INFECTED_CONTENT
	Malware string `json:"malware"`
	// INTERACTIVE_PAYMENT_CONFIRMATION
	ReferenceID     string          `json:"referenceId"`
	PaymentID       string          `json:"paymentId"`
	Status          string          `json:"status"`
	Currency        string          `json:"currency"`
	TotalAmount     json.RawMessage `json:"totalAmount"`
	TransactionID   string          `json:"transactionId"`
	TransactionType string          `json:"transactionType"`
}

type ibContext struct {
	ID              string `json:"id"`
	From            string `json:"from"`
	ReferredProduct *struct {
		CatalogID         string `json:"catalogId"`
		ProductRetailerID string `json:"productRetailerId"`
	} `json:"referredProduct"`
}

type ibReferral struct {
	SourceType    string `json:"sourceType"`
	SourceID      string `json:"sourceId"`
	SourceURL     string `json:"sourceUrl"`
	Headline      string `json:"headline"`
	Body          string `json:"body"`
	CtwaClickID   string `json:"ctwaClickId"`
	ReferralMedia *struct {
		Type         string `json:"type"`
		URL          string `json:"url"`
		ThumbnailURL string `json:"thumbnailUrl"`
	} `json:"referralMedia"`
}

type ibStatus struct {
	GroupID     int    `json:"groupId"`
	GroupName   string `json:"groupName"`
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Action      string `json:"action"`
}

type ibError struct {
	GroupID     int    `json:"groupId"`
	GroupName   string `json:"groupName"`
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Permanent   bool   `json:"permanent"`
}

// ibKnownMessage, ibKnownDLR and ibKnownSeen are the fields the handler
// maps for each kind of result; whatever else a result carries is kept as
// providerData (on the message, or on the report's timeline event).
// integrationType and channel name WhatsApp, which the route already says;
// a report's to and from name the message's own numbers.
var (
	ibKnownMessage = keys{
		"from": nil, "to": nil, "integrationType": nil, "receivedAt": nil, "messageId": nil,
		"pairedMessageId": nil, "contact": keys{"name": nil},
		"identity": keys{"acknowledged": nil, "hash": nil, "createdAt": nil},
		"message": keys{
			"type": nil, "text": nil, "caption": nil, "url": nil, "latitude": nil, "longitude": nil,
			"name": nil, "address": nil, "contacts": nil, "payload": nil, "id": nil, "title": nil,
			"description": nil, "response": nil, "catalogId": nil, "productItems": nil, "emoji": nil,
			"action": nil, "messageId": nil, "malware": nil,
			"context": keys{"id": nil, "from": nil, "referredProduct": keys{"catalogId": nil, "productRetailerId": nil}},
			"referral": keys{"sourceType": nil, "sourceId": nil, "sourceUrl": nil, "headline": nil, "body": nil,
				"ctwaClickId": nil, "referralMedia": keys{"type": nil, "url": nil, "thumbnailUrl": nil}},
			"referenceId": nil, "paymentId": nil, "status": nil, "currency": nil, "totalAmount": nil,
			"transactionId": nil, "transactionType": nil,
		},
	}
	ibKnownDLR = keys{
		"messageId": nil, "to": nil, "channel": nil, "integrationType": nil, "sentAt": nil, "doneAt": nil,
		"status": keys{"groupId": nil, "groupName": nil, "id": nil, "name": nil, "description": nil, "action": nil},
		"error":  keys{"groupId": nil, "groupName": nil, "id": nil, "name": nil, "description": nil, "permanent": nil},
		"price":  keys{"pricePerMessage": nil, "currency": nil},
	}
	ibKnownSeen = keys{"messageId": nil, "to": nil, "from": nil, "sentAt": nil, "seenAt": nil, "channel": nil, "integrationType": nil}
	// ibKnown is all three: what a result may carry and still take the one
	// typed decode (a field of another kind is caught by misplaced).
	ibKnown = mergeKeys(ibKnownMessage, ibKnownDLR, ibKnownSeen)
)

func mergeKeys(trees ...keys) keys {
	out := keys{}
	for _, t := range trees {
		for k, v := range t {
			if prev, ok := out[k]; ok && prev != nil && v != nil {
				out[k] = mergeKeys(prev, v)
			} else if !ok {
				out[k] = v
			}
		}
	}
	return out
}

// misplaced reports whether a typed result carries a field its kind does
// not map (a price on an inbound message, a contact on a report): such a
// result keeps it through the slow path.
func misplaced(res *ibResult) bool {
	notWA := func(s string) bool { return s != "" && !strings.EqualFold(s, "WHATSAPP") }
	switch {
	case res.Message != nil:
		return res.Status != nil || res.Error != nil || res.Price != nil || res.SentAt != "" || res.DoneAt != "" ||
			res.SeenAt != nil || res.BulkID != "" || notWA(res.Channel) || notWA(res.IntegrationType)
	case res.Status != nil:
		return res.From != "" || res.ReceivedAt != "" || res.PairedMessageID != "" || res.Contact != nil ||
			res.Identity != nil || res.SeenAt != nil || res.BulkID != "" || notWA(res.Channel) || notWA(res.IntegrationType)
	case res.SeenAt != nil:
		return res.Error != nil || res.Price != nil || res.DoneAt != "" || res.BulkID != "" || res.ReceivedAt != "" ||
			res.PairedMessageID != "" || res.Contact != nil || res.Identity != nil || notWA(res.Channel) || notWA(res.IntegrationType)
	}
	return false
}

// knownFor is the key tree of a result's kind.
func knownFor(res *ibResult) keys {
	switch {
	case res.Message != nil:
		return ibKnownMessage
	case res.Status != nil:
		return ibKnownDLR
	}
	return ibKnownSeen
}

// ---- the handler ----

func (h *Handler) infobip(w http.ResponseWriter, r *http.Request, route string) {
	batch, ok := parsePost(h, w, r, route, parseInfobip)
	if !ok {
		return
	}
	res, ok := h.ingestPost(w, r, route, store.ProviderInfobip, store.Post{Messages: batch.msgs, Reports: batch.reports, Quarantine: batch.quarantine})
	if !ok {
		return
	}
	dups := 0
	for _, x := range res.Messages {
		if x.Duplicate {
			dups++
		}
	}
	h.infobipCounts.count(len(res.Messages)-dups, dups)
	h.countQuarantine(store.ProviderInfobip, batch.quarantine)
	if m := h.d.Metrics; m != nil {
		for _, rep := range batch.reports {
			m.InboundReports.WithLabelValues(store.ProviderInfobip, rep.Status).Inc()
		}
	}
	writeAccepted(w, len(res.Messages)-dups+len(batch.reports), dups, len(batch.quarantine))
}

// infobipBatch is a validated post, ready for one store call.
type infobipBatch struct {
	msgs       []*store.Message
	reports    []store.Report
	quarantine []store.Quarantined
}

// parseInfobip decodes a post and validates each result on its own: a
// result that cannot be understood is quarantined (raw, with the reason),
// the others are stored. Only a body that is not JSON, or has no results
// array, is an error (400).
//
// The common post (every field one the handler maps) is decoded in one
// typed pass; anything else takes the slower path result by result.
func parseInfobip(body []byte, arrival time.Time) (*infobipBatch, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, httpx.Errorf(store.ErrInvalid, "body is empty; expected JSON {\"results\": [...]}")
	}
	if !utf8.Valid(body) {
		return nil, httpx.Errorf(store.ErrInvalid, "body is not valid UTF-8")
	}
	var post ibPost
	// CTLive's own protocol examples carry trailing commas (docs/protocols.md#infobip-inbound).
	body, err := httpx.DecodeTolerant(body, func(b []byte) error { return json.Unmarshal(b, &post) })
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return parseInfobipSlow(body, arrival)
		}
		return nil, httpx.JSONError(err)
	}
	if post.Results == nil {
		return nil, httpx.Errorf(store.ErrInvalid, "results is missing: expected {\"results\": [...]}")
	}
	var buf [8]bool // most posts carry one result
	unknown, scanned := scanUnknown(body, ibKnown, buf[:0])
	b := &infobipBatch{}
	var raws []json.RawMessage // split only when a result is kept raw
	rawOf := func(i int) json.RawMessage {
		if raws == nil {
			var p struct{ Results []json.RawMessage }
			_ = json.Unmarshal(body, &p) // it decoded above, so it decodes again
			raws = p.Results
		}
		if i < len(raws) {
			return compactJSON(raws[i])
		}
		return nil
	}
	for i := range *post.Results {
		res := &(*post.Results)[i]
		var data json.RawMessage
		if !scanned || i >= len(unknown) || unknown[i] || misplaced(res) {
			data = unmapped(rawOf(i), knownFor(res))
		}
		b.add(i, res, data, arrival, rawOf)
	}
	return b, nil
}

// parseInfobipSlow handles a post with fields the handler does not map, or
// results of the wrong shape: each result is decoded on its own.
func parseInfobipSlow(body []byte, arrival time.Time) (*infobipBatch, error) {
	var top struct {
		Results *[]json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return nil, httpx.Errorf(store.ErrInvalid, "body must be a JSON object {\"results\": [...]}, got JSON %s", te.Value)
			}
			return nil, httpx.Errorf(store.ErrInvalid, "results must be an array of results, got JSON %s", te.Value)
		}
		return nil, httpx.JSONError(err)
	}
	if top.Results == nil {
		return nil, httpx.Errorf(store.ErrInvalid, "results is missing: expected {\"results\": [...]}")
	}
	b := &infobipBatch{}
	for i, raw := range *top.Results {
		raw = compactJSON(raw)
		var res ibResult
		if err := json.Unmarshal(raw, &res); err != nil {
			b.quarantineRaw(raw, fieldError(fmt.Sprintf("results[%d]", i), err).Error())
			continue
		}
		b.add(i, &res, unmapped(raw, knownFor(&res)), arrival, func(int) json.RawMessage { return raw })
	}
	return b, nil
}

func (b *infobipBatch) quarantineRaw(raw json.RawMessage, reason string) {
	b.quarantine = append(b.quarantine, store.Quarantined{Reason: reason, Raw: raw})
}

// add classifies one decoded result; data is its providerData.
func (b *infobipBatch) add(i int, res *ibResult, data json.RawMessage, arrival time.Time, rawOf func(int) json.RawMessage) {
	switch {
	case res.Message != nil:
		m, err := inboundMessage(i, res, arrival)
		if err != nil {
			b.quarantineRaw(rawOf(i), err.Error())
			return
		}
		if m.Type == store.TypeUnsupported {
			m.Raw = rawOf(i)
		}
		if data != nil {
			m.ProviderData = data
		}
		b.msgs = append(b.msgs, m)
	case res.Status != nil:
		rep, err := deliveryReport(i, res, arrival)
		if err != nil {
			b.quarantineRaw(rawOf(i), err.Error())
			return
		}
		rep.ProviderData = data
		b.reports = append(b.reports, rep)
	case res.SeenAt != nil:
		rep, err := seenReport(i, res, arrival)
		if err != nil {
			b.quarantineRaw(rawOf(i), err.Error())
			return
		}
		rep.ProviderData = data
		b.reports = append(b.reports, rep)
	default:
		b.quarantineRaw(rawOf(i), fmt.Sprintf("results[%d]: cannot tell what it is: an inbound message has \"message\", a delivery report \"status\", a seen report \"seenAt\"", i))
	}
}

// optionalTime reads an optional provider time. An unreadable one is not a
// reason to lose the item: it is replaced by the arrival time and noted.
func optionalTime(field, v string, arrival time.Time) (t time.Time, note string) {
	if v == "" {
		return time.Time{}, ""
	}
	t, err := parseTime(v)
	if err != nil {
		return arrival.UTC(), fmt.Sprintf("%s %q is not a time we can read; the arrival time is used", field, v)
	}
	return t, ""
}

// inboundMessage maps one inbound result to a store message.
func inboundMessage(i int, res *ibResult, arrival time.Time) (*store.Message, error) {
	bad := func(field, format string, args ...any) error {
		return httpx.Errorf(store.ErrInvalid, "results[%d].%s %s", i, field, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(res.MessageID) == "" {
		return nil, bad("messageId", "is required")
	}
	if p := refProblem(res.MessageID); p != "" {
		return nil, bad("messageId", "%s", p)
	}
	for _, f := range []struct{ name, v string }{{"from", res.From}, {"to", res.To}} {
		if f.v == "" {
			return nil, bad(f.name, "is required")
		}
		switch d := store.NormalizeNumber(f.v); {
		case d == "":
			return nil, bad(f.name, "%q holds no digits", f.v)
		case len(d) > maxNumberDigits:
			return nil, bad(f.name, "has %d digits, more than a phone number's %d", len(d), maxNumberDigits)
		}
	}
	m := &store.Message{
		Provider:   store.ProviderInfobip,
		ExternalID: res.MessageID,
		From:       res.From, // the customer
		To:         res.To,   // the business number
	}
	if res.Contact != nil {
		m.ContactName = strings.TrimSpace(res.Contact.Name)
	}
	if t, note := optionalTime("receivedAt", res.ReceivedAt, arrival); note != "" {
		m.ReceivedAt, m.Notes = t, append(m.Notes, note)
	} else {
		m.ReceivedAt = t
	}
	if id := res.Identity; id != nil {
		m.Identity = &store.Identity{Acknowledged: id.Acknowledged, Hash: id.Hash}
		if id.CreatedAt != "" {
			if t, err := parseTime(id.CreatedAt); err == nil {
				m.Identity.CreatedAt = t
			} else {
				m.Notes = append(m.Notes, fmt.Sprintf("identity.createdAt %q is not a time we can read", id.CreatedAt))
			}
		}
	}
	msg := res.Message
	quoted, quotedField := res.PairedMessageID, "pairedMessageId"
	if quoted == "" && msg.Context != nil {
		quoted, quotedField = msg.Context.ID, "message.context.id"
	}
	if quoted != "" {
		if p := refProblem(quoted); p != "" {
			return nil, bad(quotedField, "%s", p)
		}
		m.ReplyTo = &store.ReplyRef{ExternalID: quoted}
	}
	if msg.Context != nil && msg.Context.ReferredProduct != nil {
		rp := msg.Context.ReferredProduct
		m.ReferredProduct = &store.ReferredProduct{CatalogID: rp.CatalogID, ProductRetailerID: rp.ProductRetailerID}
	}
	if rf := msg.Referral; rf != nil {
		m.Referral = &store.Referral{SourceType: rf.SourceType, SourceID: rf.SourceID, SourceURL: rf.SourceURL,
			Headline: rf.Headline, Body: rf.Body, CtwaClickID: rf.CtwaClickID}
		if md := rf.ReferralMedia; md != nil {
			m.Referral.MediaType, m.Referral.MediaURL, m.Referral.ThumbnailURL = strings.ToLower(md.Type), md.URL, md.ThumbnailURL
		}
	}
	media := func(typ string) error {
		if msg.URL == "" {
			return bad("message.url", "is required for %s", msg.Type)
		}
		m.Type = typ
		m.Caption = msg.Caption
		m.Media = &store.Media{SourceURL: msg.URL}
		return nil
	}
	switch strings.ToUpper(msg.Type) {
	case "":
		return nil, bad("message.type", "is required")
	case "TEXT":
		m.Type, m.Text = store.TypeText, msg.Text
	case "IMAGE":
		if err := media(store.TypeImage); err != nil {
			return nil, err
		}
	case "DOCUMENT":
		if err := media(store.TypeDocument); err != nil {
			return nil, err
		}
		// A document's caption is its file name (docs/protocols.md#infobip-inbound).
		m.Media.FileName = msg.Caption
	case "AUDIO":
		if err := media(store.TypeAudio); err != nil {
			return nil, err
		}
	case "VOICE":
		if err := media(store.TypeAudio); err != nil {
			return nil, err
		}
		m.Voice = true
	case "VIDEO":
		if err := media(store.TypeVideo); err != nil {
			return nil, err
		}
	case "STICKER":
		if err := media(store.TypeSticker); err != nil {
			return nil, err
		}
	case "LOCATION":
		loc, err := location(msg, bad)
		if err != nil {
			return nil, err
		}
		m.Type, m.Location = store.TypeLocation, loc
	case "CONTACT", "CONTACTS":
		c := bytes.TrimSpace(msg.Contacts)
		if len(c) == 0 || c[0] != '[' {
			return nil, bad("message.contacts", "must be an array of contacts")
		}
		m.Type, m.Contacts = store.TypeContacts, normalizeContacts(c)
	case "BUTTON":
		m.Type, m.Text = store.TypeButton, msg.Text
		m.Interactive = &store.Interactive{Type: "button", Title: msg.Text, Payload: msg.Payload}
	case "INTERACTIVE_BUTTON_REPLY":
		m.Type = store.TypeInteractive
		m.Interactive = &store.Interactive{Type: "button_reply", ID: msg.ID, Title: msg.Title}
	case "INTERACTIVE_LIST_REPLY":
		m.Type = store.TypeInteractive
		m.Interactive = &store.Interactive{Type: "list_reply", ID: msg.ID, Title: msg.Title, Description: msg.Description}
	case "INTERACTIVE_FLOW_REPLY":
		m.Type, m.Text = store.TypeInteractive, msg.Text
		m.Interactive = &store.Interactive{Type: "nfm_reply", Title: msg.Text, Response: flowResponse(msg.Response)}
	case "INTERACTIVE_PAYMENT_CONFIRMATION":
		m.Type = store.TypeInteractive
		m.Interactive = paymentConfirmation(msg)
	case "INFECTED_CONTENT":
		// WhatsApp withheld the attachment: the customer sent something,
		// and the agent must see that, and why nothing can be shown.
		m.Type, m.Text = store.TypeError, msg.Text
		m.Error = "infected content: WhatsApp withheld the attachment"
		if msg.Malware != "" {
			m.Error += " (malware: " + msg.Malware + ")"
		}
	case "ORDER":
		if msg.CatalogID == "" {
			return nil, bad("message.catalogId", "is required for ORDER")
		}
		items := bytes.TrimSpace(msg.ProductItems)
		if len(items) == 0 || items[0] != '[' {
			return nil, bad("message.productItems", "must be an array of products")
		}
		order, err := normalizeOrder(msg.CatalogID, items, msg.Text)
		if err != nil {
			return nil, bad("message.productItems", "%v", err)
		}
		m.Type, m.Order, m.Text = store.TypeOrder, order, msg.Text
	case "REACTION":
		target, targetField := msg.MessageID, "message.messageId"
		if target == "" && msg.Context != nil {
			target, targetField = msg.Context.ID, "message.context.id"
		}
		if target == "" {
			return nil, bad("message.messageId", "is required for REACTION (the message reacted to)")
		}
		if p := refProblem(target); p != "" {
			return nil, bad(targetField, "%s", p)
		}
		action := strings.ToUpper(msg.Action)
		if action != "" && action != "ADDED" && action != "REMOVED" {
			return nil, bad("message.action", "%q is not ADDED or REMOVED", msg.Action)
		}
		m.Type, m.Target, m.ReplyTo = store.TypeReaction, target, nil
		m.ReactionEmoji = msg.Emoji
		m.ReactionRemoved = action == "REMOVED" || msg.Emoji == ""
	default:
		// UNSUPPORTED and every type we do not know: kept whole (the raw
		// result) and answered 2xx, so the provider does not resend forever.
		m.Type, m.Text = store.TypeUnsupported, msg.Text
	}
	return m, nil
}

// paymentConfirmation maps INTERACTIVE_PAYMENT_CONFIRMATION: the payment's
// fields go whole into the response, the status and amount into the title.
func paymentConfirmation(msg *ibMessage) *store.Interactive {
	p := struct {
		ReferenceID     string          `json:"referenceId,omitempty"`
		PaymentID       string          `json:"paymentId,omitempty"`
		Status          string          `json:"status,omitempty"`
		Currency        string          `json:"currency,omitempty"`
		TotalAmount     json.RawMessage `json:"totalAmount,omitempty"`
		TransactionID   string          `json:"transactionId,omitempty"`
		TransactionType string          `json:"transactionType,omitempty"`
	}{msg.ReferenceID, msg.PaymentID, msg.Status, msg.Currency, nil, msg.TransactionID, msg.TransactionType}
	if !isEmptyJSON(msg.TotalAmount) {
		p.TotalAmount = compactJSON(msg.TotalAmount)
	}
	resp, _ := json.Marshal(p)
	title := "payment " + strings.ToLower(msg.Status)
	// WhatsApp amounts are {value, offset}: value / offset in the currency
	// (2500 with offset 100 is 25.00).
	var amt struct {
		Value  float64 `json:"value"`
		Offset float64 `json:"offset"`
	}
	if json.Unmarshal(msg.TotalAmount, &amt) == nil && amt.Offset >= 1 && amt.Offset <= 1e6 {
		decimals := int(math.Round(math.Log10(amt.Offset)))
		title += fmt.Sprintf(": %.*f %s", decimals, amt.Value/amt.Offset, msg.Currency)
	}
	return &store.Interactive{Type: "payment_confirmation", ID: msg.ReferenceID, Title: strings.TrimSpace(title), Response: resp}
}

func location(msg *ibMessage, bad func(field, format string, args ...any) error) (*store.Location, error) {
	if msg.Latitude == nil {
		return nil, bad("message.latitude", "is required for LOCATION")
	}
	if msg.Longitude == nil {
		return nil, bad("message.longitude", "is required for LOCATION")
	}
	lat, lon := *msg.Latitude, *msg.Longitude
	if math.IsNaN(lat) || lat < -90 || lat > 90 {
		return nil, bad("message.latitude", "%v is out of range [-90, 90]", lat)
	}
	if math.IsNaN(lon) || lon < -180 || lon > 180 {
		return nil, bad("message.longitude", "%v is out of range [-180, 180]", lon)
	}
	return &store.Location{Latitude: lat, Longitude: lon, Name: msg.Name, Address: msg.Address, URL: msg.URL}, nil
}

// ---- reports ----

// Infobip's status groups: groupName, or groupId when the name is missing.
var ibGroupByID = map[int]string{1: "PENDING", 2: "UNDELIVERABLE", 3: "DELIVERED", 4: "EXPIRED", 5: "REJECTED"}

var ibGroupStatus = map[string]string{
	"PENDING":       store.StatusSent,
	"DELIVERED":     store.StatusDelivered,
	"UNDELIVERABLE": store.StatusFailed,
	"EXPIRED":       store.StatusFailed,
	"REJECTED":      store.StatusFailed,
}

func deliveryReport(i int, res *ibResult, arrival time.Time) (store.Report, error) {
	bad := func(field, format string, args ...any) error {
		return httpx.Errorf(store.ErrInvalid, "results[%d].%s %s", i, field, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(res.MessageID) == "" {
		return store.Report{}, bad("messageId", "is required")
	}
	if p := refProblem(res.MessageID); p != "" {
		return store.Report{}, bad("messageId", "%s", p)
	}
	// The event's time is when the report's state was reached: doneAt,
	// else sentAt. An unreadable one is noted and the arrival time used.
	var at time.Time
	var notes []string
	for _, f := range []struct{ name, v string }{{"sentAt", res.SentAt}, {"doneAt", res.DoneAt}} {
		t, note := optionalTime(f.name, f.v, arrival)
		if note != "" {
			notes = append(notes, note)
		}
		if !t.IsZero() {
			at = t
		}
	}
	st := res.Status
	group := strings.ToUpper(strings.TrimSpace(st.GroupName))
	if group == "" {
		group = ibGroupByID[st.GroupID]
	}
	status, ok := ibGroupStatus[group]
	if !ok {
		// Kept in the timeline for the record; changes nothing.
		status = store.StatusUnknown
	}
	rep := store.Report{
		Provider:    store.ProviderInfobip,
		ExternalID:  res.MessageID,
		Status:      status,
		At:          at,
		GroupName:   group,
		Name:        st.Name,
		Description: st.Description,
		Action:      st.Action,
		Note:        strings.Join(notes, "; "),
	}
	if res.Price != nil && (res.Price.PricePerMessage != 0 || res.Price.Currency != "") {
		rep.Price = &store.Price{PricePerMessage: res.Price.PricePerMessage, Currency: res.Price.Currency}
	}
	if status == store.StatusFailed {
		rep.Reason = failureReason(st, res.Error)
	}
	return rep, nil
}

// failureReason says why a message failed: the status, then the error
// unless it is Infobip's "NO_ERROR" placeholder.
func failureReason(st *ibStatus, e *ibError) string {
	join := func(name, desc string) string {
		switch {
		case name == "":
			return desc
		case desc == "":
			return name
		}
		return name + ": " + desc
	}
	reason := join(st.Name, st.Description)
	if e != nil && e.ID != 0 && !strings.EqualFold(e.Name, "NO_ERROR") {
		er := join(e.Name, e.Description)
		if e.Permanent {
			er += " (permanent)"
		}
		if reason == "" {
			reason = er
		} else if er != "" {
			reason += "; error " + er
		}
	}
	if reason == "" {
		reason = "failed"
	}
	return reason
}

func seenReport(i int, res *ibResult, arrival time.Time) (store.Report, error) {
	if strings.TrimSpace(res.MessageID) == "" {
		return store.Report{}, httpx.Errorf(store.ErrInvalid, "results[%d].messageId is required", i)
	}
	if p := refProblem(res.MessageID); p != "" {
		return store.Report{}, httpx.Errorf(store.ErrInvalid, "results[%d].messageId %s", i, p)
	}
	var notes []string
	if _, note := optionalTime("sentAt", res.SentAt, arrival); note != "" {
		notes = append(notes, note)
	}
	seen := *res.SeenAt
	if seen == "" {
		seen = "(empty)"
	}
	at, note := optionalTime("seenAt", seen, arrival)
	if note != "" {
		notes = append(notes, note)
	}
	return store.Report{Provider: store.ProviderInfobip, ExternalID: res.MessageID, Status: store.StatusSeen, At: at,
		Name: "SEEN", Note: strings.Join(notes, "; ")}, nil
}
