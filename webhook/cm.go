package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"imchannel/httpx"
	"imchannel/store"
)

// CM.com routes (docs/protocols.md#cm-inbound).
const (
	cmRoute       = "/webhooks/cm"
	cmStatusRoute = "/webhooks/cm/status"
)

func (h *Handler) registerCM(r *mux.Router) {
	r.Handle(cmRoute, h.protect(cmRoute, http.HandlerFunc(h.cmMO))).Methods(http.MethodPost)
	r.Handle(cmStatusRoute, h.protect(cmStatusRoute, http.HandlerFunc(h.cmStatus))).Methods(http.MethodPost)
}

// ---- MO messages ----

// cmMOPayload is one CM MO webhook. Fields we do not use (groupings,
// channel) are ignored; custom is kept raw and read key by key.
type cmMOPayload struct {
	Reference      string     `json:"reference"`
	MessageContext string     `json:"messageContext"`
	Name           string     `json:"name"`
	From           *cmParty   `json:"from"`
	To             *cmParty   `json:"to"`
	Message        *cmMessage `json:"message"`
	Time           string     `json:"time"`
	TimeUTC        string     `json:"timeUtc"`
}

type cmParty struct {
	Number string `json:"number"`
	Name   string `json:"name"`
}

// UnmarshalJSON also takes a bare number string, the shape CM's MT side uses.
func (p *cmParty) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '"' {
		return json.Unmarshal(t, &p.Number)
	}
	type plain cmParty
	return json.Unmarshal(b, (*plain)(p))
}

type cmMessage struct {
	Text   string          `json:"text"`
	Media  *cmMedia        `json:"media"`
	Custom json.RawMessage `json:"custom"`
	// Error is Meta's text for a failed incoming message; a string in
	// every example, read leniently in case it is an object.
	Error json.RawMessage `json:"error"`
}

type cmMedia struct {
	MediaURI    string `json:"mediaUri"`
	ContentType string `json:"contentType"`
	Title       string `json:"title"`
}

type cmLocation struct {
	Latitude    json.RawMessage `json:"latitude"`
	Longitude   json.RawMessage `json:"longitude"`
	Label       string          `json:"label"`
	SearchQuery string          `json:"searchQuery"`
}

type cmButton struct {
	Label   string `json:"label"`
	Payload string `json:"payload"`
}

type cmInteractive struct {
	Type        string       `json:"type"`
	ListReply   *cmReplyRow  `json:"list_reply"`
	ButtonReply *cmReplyRow  `json:"button_reply"`
	NfmReply    *cmFlowReply `json:"nfm_reply"`
}

type cmReplyRow struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description"`
}

type cmFlowReply struct {
	Name         string          `json:"name"`
	Body         string          `json:"body"`
	ResponseJSON json.RawMessage `json:"response_json"`
}

// cmCoord reads a coordinate: a JSON number or a numeric string.
func cmCoord(raw json.RawMessage, field string) (float64, error) {
	if isEmptyJSON(raw) {
		return 0, cmInvalid("%s is required", field)
	}
	v := strings.TrimSpace(string(raw))
	if strings.HasPrefix(v, `"`) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, fieldError(field, err)
		}
		v = strings.TrimSpace(str)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, cmInvalid("%s %s is not a number", field, raw)
	}
	return f, nil
}

func (h *Handler) cmMO(w http.ResponseWriter, r *http.Request) {
	body, err := httpx.ReadBody(w, r, h.d.BodyLimit)
	if err != nil {
		h.fail(w, r, cmRoute, err)
		return
	}
	m, err := parseCMMO(body, h.d.Store.Now())
	if err != nil {
		var q *cmQuarantine
		if !errors.As(err, &q) {
			h.fail(w, r, cmRoute, err)
			return
		}
		h.cmStoreQuarantine(w, r, body, q.reason)
		return
	}
	if m.From == "" {
		// No sender: the message it answers names the customer.
		if !h.cmSenderFromContext(m) {
			h.cmStoreQuarantine(w, r, body, "from.number is missing and messageContext names no stored message: the customer is unknown")
			return
		}
	}
	res, _, err := h.d.Store.Ingest(r.Context(), []*store.Message{m}, nil)
	if err != nil {
		h.fail(w, r, cmRoute, err)
		return
	}
	dup := res[0].Duplicate
	// A resent welcome request asks again: QueueWelcome is at most once per
	// customer, so this also completes a first attempt whose queueing failed.
	if m.Type == store.TypeWelcomeRequest && h.d.WelcomeText != "" {
		if err := h.cmQueueWelcome(r, m); err != nil {
			h.fail(w, r, cmRoute, err)
			return
		}
	}
	if dup {
		h.cmCounts.count(0, 1)
		writeAccepted(w, 0, 1, 0)
		return
	}
	h.cmCounts.count(1, 0)
	writeAccepted(w, 1, 0, 0)
}

// cmQuarantine is a CM MO that cannot be understood: it is quarantined and
// answered 2xx (CM retries a refused MO for a month).
type cmQuarantine struct{ reason string }

func (q *cmQuarantine) Error() string { return q.reason }

func cmQuarantined(format string, args ...any) error {
	return &cmQuarantine{reason: fmt.Sprintf(format, args...)}
}

// cmStoreQuarantine keeps a whole MO body raw in the quarantine.
func (h *Handler) cmStoreQuarantine(w http.ResponseWriter, r *http.Request, body []byte, reason string) {
	q := []store.Quarantined{{Provider: store.ProviderCM, Route: cmRoute, Reason: reason, Raw: compactJSON(body)}}
	if _, err := h.d.Store.IngestPost(r.Context(), store.Post{Quarantine: q}); err != nil {
		h.fail(w, r, cmRoute, err)
		return
	}
	h.countQuarantine(store.ProviderCM, q)
	h.cmCounts.count(0, 0)
	writeAccepted(w, 0, 0, 1)
}

// cmSenderFromContext fills in a sender-less MO's customer (and business
// number, when missing too) from the stored message its messageContext
// names: our outbound message (customer = its to) or an earlier MO.
func (h *Handler) cmSenderFromContext(m *store.Message) bool {
	if m.ReplyTo == nil || m.ReplyTo.ExternalID == "" {
		return false
	}
	ref := m.ReplyTo.ExternalID
	var found *store.Message
	if ms, err := h.d.Store.MessagesByExternalID(ref); err == nil {
		for _, x := range ms {
			if x.Provider == store.ProviderCM {
				found = x
				break
			}
		}
	}
	if found == nil && len(ref) == 26 {
		// Our own id, sent as the reference of an outbound message.
		if x, err := h.d.Store.Message(ref); err == nil && x.Direction == store.Outbound {
			found = x
		}
	}
	if found == nil {
		return false
	}
	business, customer := found.To, found.From
	if found.Direction == store.Outbound {
		business, customer = found.From, found.To
	}
	if store.NormalizeNumber(m.To) != "" && store.NormalizeNumber(m.To) != store.NormalizeNumber(business) {
		return false // it names another business number's conversation
	}
	m.From, m.To = customer, business
	m.Notes = append(m.Notes, "from.number was missing: the customer is taken from the message in messageContext")
	return true
}

// cmQueueWelcome queues the configured welcome text as the answer to a
// request_welcome. m has been through Store.Ingest, so its numbers are digits.
func (h *Handler) cmQueueWelcome(r *http.Request, m *store.Message) error {
	prov := h.d.OutboundProvider
	if prov == "" {
		prov = store.ProviderCM
	}
	out := &store.Message{
		Provider:   prov,
		ExternalID: h.d.Store.NewID(),
		From:       m.To,
		To:         m.From,
		Type:       store.TypeText,
		Text:       h.d.WelcomeText,
		Outbound:   &store.OutboundSpec{ReplyToExternal: m.ExternalID},
	}
	queued, err := h.d.Store.QueueWelcome(r.Context(), out)
	if err != nil {
		return fmt.Errorf("queue welcome: %w", err)
	}
	if queued {
		h.log.Info("welcome queued", "provider", prov, "request", m.ExternalID)
	}
	return nil
}

// cmKnown is every CM MO field the handler maps (see unmapped).
var cmKnown = keys{
	"reference": nil, "messageContext": nil, "name": nil, "channel": nil, "time": nil, "timeUtc": nil,
	"from": keys{"number": nil, "name": nil}, "to": keys{"number": nil},
	"message": keys{
		"text": nil, "error": nil,
		"media": keys{"mediaUri": nil, "contentType": nil, "title": nil},
		"custom": keys{
			"location": keys{"latitude": nil, "longitude": nil, "label": nil, "searchQuery": nil},
			"contacts": nil, "order": keys{"catalog_id": nil, "product_items": nil, "text": nil},
			"button": keys{"label": nil, "payload": nil}, "deletedMessage": nil, "message_type": nil,
			"interactive": keys{"type": nil, "list_reply": keys{"id": nil, "title": nil, "description": nil},
				"button_reply": keys{"id": nil, "title": nil}, "nfm_reply": keys{"name": nil, "body": nil, "response_json": nil}},
		},
	},
}

// parseCMMO turns one MO post into a store message (or a deletion
// action). It returns a plain error (400) only for a body that is not a
// JSON object; a post that cannot be understood gives a *cmQuarantine.
// A message without a sender comes back with an empty From.
func parseCMMO(body []byte, arrival time.Time) (*store.Message, error) {
	if err := cmRequireObject(body, "one CM MO message"); err != nil {
		return nil, err
	}
	var p cmMOPayload
	if err := decodeObject(body, &p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(json.Unmarshal(body, &p), &te) {
			return nil, cmQuarantined("%s", err.Error())
		}
		return nil, err
	}
	ref, err := cmRef(p.Reference, "reference", true)
	if err != nil {
		return nil, cmQuarantined("%s", err.Error())
	}
	from := ""
	if p.From != nil && strings.TrimSpace(p.From.Number) != "" {
		if err := cmCheckNumber(p.From.Number, "from.number"); err != nil {
			return nil, cmQuarantined("%s", err.Error())
		}
		from = p.From.Number
	}
	to := ""
	if p.To != nil && strings.TrimSpace(p.To.Number) != "" {
		if err := cmCheckNumber(p.To.Number, "to.number"); err != nil {
			return nil, cmQuarantined("%s", err.Error())
		}
		to = p.To.Number
	}
	if p.Message == nil {
		return nil, cmQuarantined("message is required")
	}
	m := &store.Message{
		Provider:   store.ProviderCM,
		ExternalID: ref,
		From:       from,
		To:         to,
	}
	if p.From != nil {
		m.ContactName = strings.TrimSpace(p.From.Name)
	}
	if m.ContactName == "" {
		m.ContactName = strings.TrimSpace(p.Name)
	}
	var note string
	m.ReceivedAt, note = cmMOTime(p, arrival)
	if note != "" {
		m.Notes = append(m.Notes, note)
	}
	ctxRef, err := cmRef(p.MessageContext, "messageContext", false)
	if err != nil {
		return nil, cmQuarantined("%s", err.Error())
	}
	if ctxRef != "" {
		m.ReplyTo = &store.ReplyRef{ExternalID: ctxRef}
	}
	if err := cmContent(m, p.Message, body); err != nil {
		return nil, cmQuarantined("%s", err.Error())
	}
	if to == "" && from != "" && m.Type != store.TypeDelete {
		// With a sender, the business number cannot come from elsewhere.
		return nil, cmQuarantined("to.number is required (the business number)")
	}
	m.ProviderData = unmapped(body, cmKnown)
	// Replies to one message share its reference: the content tells them
	// apart, and a byte-identical retry is still the same message.
	m.DedupeID = ref + "\x1f" + cmContentHash(body)
	return m, nil
}

// cmContentHash is a hash of the post's canonical JSON (keys sorted, no
// white space), so a retry hashes the same however it is formatted.
func cmContentHash(body []byte) string {
	canon := compactJSON(body)
	if v, err := decodeAny(body); err == nil {
		if b, err := json.Marshal(v); err == nil {
			canon = b
		}
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:16])
}

// cmContent sets the message's type and content from message{text, media,
// custom, error}. Content comes first: media by its content type, then the
// custom kinds we know, then text. A custom key we do not know never
// demotes a message with media or text (it stays in providerData); only a
// post with nothing we recognise is stored as unsupported, raw.
func cmContent(m *store.Message, msg *cmMessage, body []byte) error {
	custom := map[string]json.RawMessage{}
	if c := bytes.TrimSpace(msg.Custom); len(c) > 0 && string(c) != "null" {
		if c[0] != '{' {
			return cmInvalid("message.custom must be a JSON object")
		}
		if err := json.Unmarshal(c, &custom); err != nil {
			return fieldError("message.custom", err)
		}
	}
	for k, v := range custom {
		if isEmptyJSON(v) {
			delete(custom, k)
		}
	}
	text := msg.Text
	var msgType string
	if raw, ok := custom["message_type"]; ok {
		if err := json.Unmarshal(raw, &msgType); err != nil {
			return fieldError("message.custom.message_type", err)
		}
	}

	// A deletion names an earlier MO and carries nothing else.
	if raw, ok := custom["deletedMessage"]; ok {
		var target string
		if err := json.Unmarshal(raw, &target); err != nil {
			return fieldError("message.custom.deletedMessage", err)
		}
		t, err := cmRef(target, "message.custom.deletedMessage", true)
		if err != nil {
			return err
		}
		m.Type, m.Target, m.ReplyTo = store.TypeDelete, t, nil
		return nil
	}
	if e := cmErrorText(msg.Error); e != "" {
		m.Type, m.Error, m.Text = store.TypeError, e, text
		return nil
	}
	if msgType == "request_welcome" {
		m.Type, m.Text = store.TypeWelcomeRequest, text
		return nil
	}
	if msg.Media != nil && strings.TrimSpace(msg.Media.MediaURI) != "" {
		src := strings.TrimSpace(msg.Media.MediaURI)
		if u, err := url.Parse(src); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cmInvalid("message.media.mediaUri %q is not an absolute http(s) URL", src)
		}
		ct := strings.TrimSpace(msg.Media.ContentType)
		m.Type, m.Caption = cmMediaType(ct, src, msgType), text
		m.Voice = msgType == "voice"
		m.Media = &store.Media{SourceURL: src, ContentType: ct, FileName: strings.TrimSpace(msg.Media.Title)}
		return nil
	}
	if raw, ok := custom["location"]; ok {
		var l cmLocation
		if err := json.Unmarshal(raw, &l); err != nil {
			return fieldError("message.custom.location", err)
		}
		lat, err := cmCoord(l.Latitude, "message.custom.location.latitude")
		if err != nil {
			return err
		}
		lon, err := cmCoord(l.Longitude, "message.custom.location.longitude")
		if err != nil {
			return err
		}
		if lat < -90 || lat > 90 {
			return cmInvalid("message.custom.location.latitude %v is out of range (-90 to 90)", lat)
		}
		if lon < -180 || lon > 180 {
			return cmInvalid("message.custom.location.longitude %v is out of range (-180 to 180)", lon)
		}
		m.Type, m.Text = store.TypeLocation, text
		m.Location = &store.Location{Latitude: lat, Longitude: lon, Name: l.Label, Address: l.SearchQuery}
		return nil
	}
	if raw, ok := custom["contacts"]; ok {
		if bytes.TrimSpace(raw)[0] != '[' {
			return cmInvalid("message.custom.contacts must be an array of contact cards")
		}
		m.Type, m.Text, m.Contacts = store.TypeContacts, text, normalizeContacts(raw)
		return nil
	}
	if raw, ok := custom["order"]; ok {
		var o struct {
			CatalogID    string          `json:"catalog_id"`
			ProductItems json.RawMessage `json:"product_items"`
			Text         string          `json:"text"`
		}
		if bytes.TrimSpace(raw)[0] != '{' || json.Unmarshal(raw, &o) != nil {
			return cmInvalid("message.custom.order must be an object")
		}
		items := bytes.TrimSpace(o.ProductItems)
		if len(items) == 0 || string(items) == "null" {
			items = []byte("[]")
		}
		order, err := normalizeOrder(o.CatalogID, items, o.Text)
		if err != nil {
			return cmInvalid("message.custom.order.product_items %v", err)
		}
		m.Type, m.Text, m.Order = store.TypeOrder, text, order
		return nil
	}
	if raw, ok := custom["interactive"]; ok {
		it, supported, err := cmInteractiveReply(raw)
		if err != nil {
			return err
		}
		if supported {
			m.Type, m.Text, m.Interactive = store.TypeInteractive, text, it
			return nil
		}
	}
	if raw, ok := custom["button"]; ok {
		var b cmButton
		if err := json.Unmarshal(raw, &b); err != nil {
			return fieldError("message.custom.button", err)
		}
		m.Type, m.Text = store.TypeButton, text
		m.Interactive = &store.Interactive{Type: "button", Title: b.Label, Payload: b.Payload}
		return nil
	}
	if text != "" {
		m.Type, m.Text = store.TypeText, text
		return nil
	}
	// Nothing we recognise: keep it so an agent can see something came.
	m.Type, m.Raw = store.TypeUnsupported, compactJSON(body)
	return nil
}

// cmInteractiveReply reads custom.interactive. supported is false for an
// interactive type we do not model.
func cmInteractiveReply(raw json.RawMessage) (it *store.Interactive, supported bool, err error) {
	var in cmInteractive
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, false, fieldError("message.custom.interactive", err)
	}
	typ := in.Type
	if typ == "" {
		switch {
		case in.ListReply != nil:
			typ = "list_reply"
		case in.ButtonReply != nil:
			typ = "button_reply"
		case in.NfmReply != nil:
			typ = "nfm_reply"
		}
	}
	row := func(r *cmReplyRow) (*store.Interactive, bool, error) {
		if r == nil {
			return nil, false, cmInvalid("message.custom.interactive.%s is required for type %s", typ, typ)
		}
		return &store.Interactive{Type: typ, ID: r.ID, Title: r.Title, Description: r.Description}, true, nil
	}
	switch typ {
	case "list_reply":
		return row(in.ListReply)
	case "button_reply":
		return row(in.ButtonReply)
	case "nfm_reply":
		if in.NfmReply == nil {
			return nil, false, cmInvalid("message.custom.interactive.nfm_reply is required for type nfm_reply")
		}
		return &store.Interactive{Type: typ, Title: in.NfmReply.Name, Description: in.NfmReply.Body,
			Response: flowResponse(in.NfmReply.ResponseJSON)}, true, nil
	}
	return nil, false, nil
}

// cmMediaType maps a content type to a message type: WhatsApp stickers
// arrive as image/webp and GIFs as video/mp4.
func cmMediaType(ct, src, msgType string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt == "" {
		mt = mime.TypeByExtension(strings.ToLower(path.Ext(strings.SplitN(src, "?", 2)[0])))
		mt, _, _ = mime.ParseMediaType(mt)
	}
	switch {
	case mt == "image/webp" || msgType == "sticker":
		return store.TypeSticker
	case strings.HasPrefix(mt, "image/"):
		return store.TypeImage
	case strings.HasPrefix(mt, "video/"):
		return store.TypeVideo
	case strings.HasPrefix(mt, "audio/"):
		return store.TypeAudio
	}
	switch msgType {
	case "image", "video", "audio":
		return msgType
	case "voice":
		return store.TypeAudio
	}
	return store.TypeDocument
}

// cmMOTime reads timeUtc (UTC whether or not it says so), else time (CM's
// local time, which carries no zone: read as UTC). An unreadable time is
// replaced by the arrival time, with a note.
func cmMOTime(p cmMOPayload, arrival time.Time) (time.Time, string) {
	for _, f := range []struct{ name, v string }{{"timeUtc", p.TimeUTC}, {"time", p.Time}} {
		v := strings.TrimSpace(f.v)
		if v == "" {
			continue
		}
		t, ok := parseCMTime(v)
		if !ok {
			return arrival.UTC(), fmt.Sprintf("%s %q is not a time we can read; the arrival time is used", f.name, v)
		}
		return t, ""
	}
	return time.Time{}, ""
}

var cmTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02T15:04",
}

// parseCMTime reads the time formats CM uses; a time without a zone is UTC.
// All digits are Unix seconds (10) or milliseconds (13).
func parseCMTime(s string) (time.Time, bool) {
	for _, l := range cmTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), storableTime(t.UTC())
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		switch len(s) {
		case 10:
			return time.Unix(n, 0).UTC(), true
		case 13:
			return time.UnixMilli(n).UTC(), true
		}
	}
	return time.Time{}, false
}

// ---- status reports ----

type cmStatusPayload struct {
	Messages *struct {
		Msg json.RawMessage `json:"msg"`
	} `json:"messages"`
}

type cmStatusMsg struct {
	Received  string          `json:"received"`
	To        string          `json:"to"`
	Reference string          `json:"reference"`
	Status    *cmStatusDetail `json:"status"`
	Operator  string          `json:"operator"`
}

// cmStatusKnown is what a report maps; the rest (operator, to, anything
// new) is kept as the timeline entry's providerData.
var cmStatusKnown = keys{
	"received":  nil,
	"reference": nil,
	"status":    keys{"code": nil, "errorCode": nil, "errorDescription": nil},
}

type cmStatusDetail struct {
	Code             json.RawMessage `json:"code"`
	ErrorCode        json.RawMessage `json:"errorCode"`
	ErrorDescription string          `json:"errorDescription"`
}

// cmStatuses maps CM's status (numeric code or name, lower case) to ours
// and the name shown on the timeline.
var cmStatuses = map[string]struct{ status, name string }{
	"0":         {store.StatusSent, "Accepted"},
	"accepted":  {store.StatusSent, "Accepted"},
	"sent":      {store.StatusSent, "Sent"},
	"1":         {store.StatusFailed, "Rejected"},
	"rejected":  {store.StatusFailed, "Rejected"},
	"2":         {store.StatusDelivered, "Delivered"},
	"delivered": {store.StatusDelivered, "Delivered"},
	"3":         {store.StatusFailed, "Failed"},
	"failed":    {store.StatusFailed, "Failed"},
	"4":         {store.StatusSeen, "Read"},
	"read":      {store.StatusSeen, "Read"},
	"cancelled": {store.StatusFailed, "Cancelled"},
	"canceled":  {store.StatusFailed, "Cancelled"},
}

func (h *Handler) cmStatus(w http.ResponseWriter, r *http.Request) {
	sp, ok := parsePost(h, w, r, cmStatusRoute, parseCMStatus)
	if !ok {
		return
	}
	res, ok := h.ingestPost(w, r, cmStatusRoute, store.ProviderCM, store.Post{Reports: sp.reports, Quarantine: sp.quarantine})
	if !ok {
		return
	}
	// accepted: reports applied; ignored: those without a reference plus
	// those naming no message of ours.
	accepted, parked, ignored := 0, 0, sp.ignored
	for _, x := range res.Reports {
		switch {
		case x.Parked:
			parked++
			accepted++
		case x.Ignored:
			ignored++
		default:
			accepted++
		}
	}
	h.cmCounts.count(0, 0)
	h.countQuarantine(store.ProviderCM, sp.quarantine)
	if mt := h.d.Metrics; mt != nil {
		for i, rep := range sp.reports {
			st := rep.Status
			if res.Reports[i].Ignored {
				st = "ignored"
			}
			mt.InboundReports.WithLabelValues(store.ProviderCM, st).Inc()
		}
		if sp.ignored > 0 {
			mt.InboundReports.WithLabelValues(store.ProviderCM, "ignored").Add(float64(sp.ignored))
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]int{"accepted": accepted, "duplicates": 0,
		"quarantined": len(sp.quarantine), "ignored": ignored, "parked": parked})
}

// cmStatusPost is a status post split by what becomes of each report.
type cmStatusPost struct {
	reports    []store.Report
	quarantine []store.Quarantined
	// ignored counts reports without a reference: nothing to apply them to.
	ignored int
}

// parseCMStatus reads a status post: msg is one report or an array, each
// validated on its own. Only a body that is not JSON, or has no
// messages.msg, is an error (400).
func parseCMStatus(body []byte, arrival time.Time) (*cmStatusPost, error) {
	if err := cmRequireObject(body, `{"messages":{"msg":…}}`); err != nil {
		return nil, err
	}
	var p cmStatusPayload
	if err := decodeObject(body, &p); err != nil {
		return nil, err
	}
	if p.Messages == nil {
		return nil, cmInvalid("messages is required")
	}
	raw := bytes.TrimSpace(p.Messages.Msg)
	var raws []json.RawMessage
	single := false
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, cmInvalid("messages.msg is required")
	case raw[0] == '{':
		raws, single = []json.RawMessage{raw}, true
	case raw[0] == '[':
		if err := json.Unmarshal(raw, &raws); err != nil {
			return nil, fieldError("messages.msg", err)
		}
	default:
		return nil, cmInvalid("messages.msg must be an object or an array of objects")
	}
	sp := &cmStatusPost{}
	for i, one := range raws {
		f := func(name string) string {
			if single {
				return "messages.msg." + name
			}
			return fmt.Sprintf("messages.msg[%d].%s", i, name)
		}
		rep, ok, err := cmStatusReport(one, f, arrival)
		switch {
		case err != nil:
			sp.quarantine = append(sp.quarantine, store.Quarantined{Reason: err.Error(), Raw: compactJSON(one)})
		case !ok:
			sp.ignored++
		default:
			sp.reports = append(sp.reports, rep)
		}
	}
	return sp, nil
}

// cmStatusReport reads one report; ok is false for one without a
// reference (counted and ignored: nothing names the message).
func cmStatusReport(raw json.RawMessage, f func(string) string, arrival time.Time) (store.Report, bool, error) {
	var x cmStatusMsg
	if err := json.Unmarshal(raw, &x); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return store.Report{}, false, fieldError(strings.TrimSuffix(f(""), "."), te)
		}
		return store.Report{}, false, fieldError(strings.TrimSuffix(f(""), "."), err)
	}
	if strings.TrimSpace(x.Reference) == "" {
		return store.Report{}, false, nil
	}
	ref, err := cmRef(x.Reference, f("reference"), true)
	if err != nil {
		return store.Report{}, false, err
	}
	if x.Status == nil {
		return store.Report{}, false, cmInvalid("%s is required", f("status"))
	}
	code := cmScalar(x.Status.Code)
	if code == "" {
		return store.Report{}, false, cmInvalid("%s is required", f("status.code"))
	}
	rep := store.Report{Provider: store.ProviderCM, ExternalID: ref, Status: store.StatusUnknown, Name: code, IgnoreUnknown: true,
		ProviderData: unmapped(raw, cmStatusKnown)}
	if st, ok := cmStatuses[strings.ToLower(code)]; ok {
		rep.Status, rep.Name = st.status, st.name
	}
	if v := strings.TrimSpace(x.Received); v != "" {
		t, ok := parseCMTime(v)
		if !ok {
			t = arrival.UTC()
			rep.Note = fmt.Sprintf("%s %q is not a time we can read; the arrival time is used", f("received"), v)
		}
		rep.At = t
	}
	desc := strings.TrimSpace(x.Status.ErrorDescription)
	ecode := cmScalar(x.Status.ErrorCode)
	rep.Description = desc
	if ecode != "" && ecode != "0" {
		rep.GroupName = "error " + ecode
	}
	if rep.Status == store.StatusFailed {
		rep.Reason = desc
		if rep.Reason == "" {
			rep.Reason = rep.Name
			if ecode != "" {
				rep.Reason += " (error code " + ecode + ")"
			}
		}
	}
	return rep, true, nil
}

// ---- shared helpers ----

func cmInvalid(format string, args ...any) error {
	return httpx.Errorf(store.ErrInvalid, format, args...)
}

// cmRequireObject refuses bodies that are JSON but not an object, before the
// decoder would describe them in Go type names.
func cmRequireObject(body []byte, what string) error {
	b := bytes.TrimSpace(body)
	if len(b) > 0 && b[0] != '{' && json.Valid(b) {
		return cmInvalid("body must be a JSON object: %s", what)
	}
	return nil
}

// cmRef trims a reference (CM sends " wamid…" with a leading space) and
// checks it can be a key.
func cmRef(s, field string, required bool) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		if required {
			return "", cmInvalid("%s is required", field)
		}
		return "", nil
	}
	if p := refProblem(s); p != "" {
		return "", cmInvalid("%s %s", field, p)
	}
	return s, nil
}

func cmCheckNumber(s, field string) error {
	d := store.NormalizeNumber(s)
	switch {
	case d == "":
		return cmInvalid("%s %q has no digits", field, s)
	case len(d) > maxNumberDigits:
		return cmInvalid("%s %q is too long for a phone number", field, s)
	}
	return nil
}

// cmErrorText reads message.error: a string, or an object with a message.
func cmErrorText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if isEmptyJSON(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var o struct{ Message, Title, Details, Description string }
	if json.Unmarshal(raw, &o) == nil {
		for _, v := range []string{o.Message, o.Title, o.Details, o.Description} {
			if strings.TrimSpace(v) != "" {
				return strings.TrimSpace(v)
			}
		}
	}
	return string(compactJSON(raw))
}

// cmScalar is a JSON string's or number's text.
func cmScalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if isEmptyJSON(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	return string(raw)
}
