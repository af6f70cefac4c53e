package webhook

import (
	"bytes"
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

// CM.com routes (seed 003).
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
	if cmIsEmpty(raw) {
		return 0, cmInvalid("%s is required", field)
	}
	v := strings.TrimSpace(string(raw))
	if strings.HasPrefix(v, `"`) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, cmFieldErr(field, err)
		}
		v = strings.TrimSpace(str)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, cmInvalid("%s %s is not a number", field, raw)
	}
	return f, nil
}

// cmCustomKnown are the custom keys we understand; anything else is
// content we do not model (stored as unsupported).
var cmCustomKnown = map[string]bool{
	"location": true, "contacts": true, "button": true, "interactive": true,
	"order": true, "deletedMessage": true, "message_type": true, "meta_received_time": true,
}

// cmMessageTypes are the custom.message_type values that say nothing more
// than the rest of the payload does.
var cmMessageTypes = map[string]bool{
	"": true, "text": true, "image": true, "video": true, "audio": true, "voice": true,
	"document": true, "sticker": true, "media": true, "location": true, "contacts": true,
	"interactive": true, "button": true, "order": true, "request_welcome": true,
}

func (h *Handler) cmMO(w http.ResponseWriter, r *http.Request) {
	body, err := httpx.ReadBody(w, r, h.d.BodyLimit)
	if err != nil {
		h.fail(w, r, cmRoute, err)
		return
	}
	m, err := parseCMMO(body)
	if err != nil {
		h.fail(w, r, cmRoute, err)
		return
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
	} else {
		h.cmCounts.count(1, 0)
	}
	dups := 0
	if dup {
		dups = 1
	}
	writeAccepted(w, 1, dups)
}

// cmQueueWelcome queues the configured welcome text as the answer to a
// request_welcome. m has been through SaveInbound, so its numbers are digits.
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

// parseCMMO validates one MO post and turns it into a store message (or a
// deletion action). Nothing is stored when it returns an error.
func parseCMMO(body []byte) (*store.Message, error) {
	if err := cmRequireObject(body, "one CM MO message"); err != nil {
		return nil, err
	}
	var p cmMOPayload
	if err := cmDecode(body, &p); err != nil {
		return nil, err
	}
	ref, err := cmRef(p.Reference, "reference", true)
	if err != nil {
		return nil, err
	}
	if p.From == nil || strings.TrimSpace(p.From.Number) == "" {
		return nil, cmInvalid("from.number is required (the sender's phone number)")
	}
	if err := cmCheckNumber(p.From.Number, "from.number"); err != nil {
		return nil, err
	}
	if p.To == nil || strings.TrimSpace(p.To.Number) == "" {
		return nil, cmInvalid("to.number is required (the business number)")
	}
	if err := cmCheckNumber(p.To.Number, "to.number"); err != nil {
		return nil, err
	}
	if p.Message == nil {
		return nil, cmInvalid("message is required")
	}
	m := &store.Message{
		Provider:    store.ProviderCM,
		ExternalID:  ref,
		From:        p.From.Number,
		To:          p.To.Number,
		ContactName: strings.TrimSpace(p.From.Name),
	}
	if m.ContactName == "" {
		m.ContactName = strings.TrimSpace(p.Name)
	}
	if m.ReceivedAt, err = cmMOTime(p); err != nil {
		return nil, err
	}
	ctxRef, err := cmRef(p.MessageContext, "messageContext", false)
	if err != nil {
		return nil, err
	}
	if ctxRef != "" {
		m.ReplyTo = &store.ReplyRef{ExternalID: ctxRef}
	}
	if err := cmContent(m, p.Message, body); err != nil {
		return nil, err
	}
	return m, nil
}

// cmContent sets the message's type and content from message{text, media,
// custom, error}.
func cmContent(m *store.Message, msg *cmMessage, body []byte) error {
	custom := map[string]json.RawMessage{}
	if c := bytes.TrimSpace(msg.Custom); len(c) > 0 && string(c) != "null" {
		if c[0] != '{' {
			return cmInvalid("message.custom must be a JSON object")
		}
		if err := json.Unmarshal(c, &custom); err != nil {
			return cmFieldErr("message.custom", err)
		}
	}
	for k, v := range custom {
		if cmIsEmpty(v) {
			delete(custom, k)
		}
	}
	text := msg.Text
	var msgType string
	if raw, ok := custom["message_type"]; ok {
		if err := json.Unmarshal(raw, &msgType); err != nil {
			return cmFieldErr("message.custom.message_type", err)
		}
	}

	// A deletion names an earlier MO and carries nothing else.
	if raw, ok := custom["deletedMessage"]; ok {
		var target string
		if err := json.Unmarshal(raw, &target); err != nil {
			return cmFieldErr("message.custom.deletedMessage", err)
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
	if raw, ok := custom["location"]; ok {
		var l cmLocation
		if err := json.Unmarshal(raw, &l); err != nil {
			return cmFieldErr("message.custom.location", err)
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
		m.Type, m.Text, m.Contacts = store.TypeContacts, text, cmCompact(raw)
		return nil
	}
	if raw, ok := custom["order"]; ok {
		if bytes.TrimSpace(raw)[0] != '{' {
			return cmInvalid("message.custom.order must be an object")
		}
		m.Type, m.Text, m.Order = store.TypeOrder, text, cmCompact(raw)
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
		m.Type, m.Text, m.Raw = store.TypeUnsupported, text, cmCompact(body)
		return nil
	}
	if raw, ok := custom["button"]; ok {
		var b cmButton
		if err := json.Unmarshal(raw, &b); err != nil {
			return cmFieldErr("message.custom.button", err)
		}
		m.Type, m.Text = store.TypeButton, text
		m.Interactive = &store.Interactive{Type: "button", Title: b.Label, Payload: b.Payload}
		return nil
	}
	unknown := !cmMessageTypes[msgType]
	for k := range custom {
		if !cmCustomKnown[k] {
			unknown = true
		}
	}
	if unknown {
		m.Type, m.Text, m.Raw = store.TypeUnsupported, text, cmCompact(body)
		return nil
	}
	if msg.Media != nil && strings.TrimSpace(msg.Media.MediaURI) != "" {
		src := strings.TrimSpace(msg.Media.MediaURI)
		if u, err := url.Parse(src); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cmInvalid("message.media.mediaUri %q is not an absolute http(s) URL", src)
		}
		ct := strings.TrimSpace(msg.Media.ContentType)
		m.Type, m.Caption = cmMediaType(ct, src, msgType), text
		m.Media = &store.Media{SourceURL: src, ContentType: ct, FileName: strings.TrimSpace(msg.Media.Title)}
		return nil
	}
	if text != "" {
		m.Type, m.Text = store.TypeText, text
		return nil
	}
	// Nothing we recognise: keep it so an agent can see something came.
	m.Type, m.Raw = store.TypeUnsupported, cmCompact(body)
	return nil
}

// cmInteractiveReply reads custom.interactive. supported is false for an
// interactive type we do not model.
func cmInteractiveReply(raw json.RawMessage) (it *store.Interactive, supported bool, err error) {
	var in cmInteractive
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, false, cmFieldErr("message.custom.interactive", err)
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
			Response: cmFlowResponse(in.NfmReply.ResponseJSON)}, true, nil
	}
	return nil, false, nil
}

// cmFlowResponse keeps a flow's response_json whole. Meta sends it as a
// string holding JSON; CM's example shows the object itself. Either way the
// object is stored.
func cmFlowResponse(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if cmIsEmpty(raw) {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil && json.Valid([]byte(s)) {
			return cmCompact([]byte(s))
		}
	}
	return cmCompact(raw)
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
// local time, which carries no zone: read as UTC).
func cmMOTime(p cmMOPayload) (time.Time, error) {
	for _, f := range []struct{ name, v string }{{"timeUtc", p.TimeUTC}, {"time", p.Time}} {
		v := strings.TrimSpace(f.v)
		if v == "" {
			continue
		}
		t, ok := parseCMTime(v)
		if !ok {
			return time.Time{}, cmInvalid("%s %q is not a time (expected e.g. 2019-11-05T08:32:33)", f.name, v)
		}
		return t, nil
	}
	return time.Time{}, nil
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
	body, err := httpx.ReadBody(w, r, h.d.BodyLimit)
	if err != nil {
		h.fail(w, r, cmStatusRoute, err)
		return
	}
	reps, err := parseCMStatus(body)
	if err != nil {
		h.fail(w, r, cmStatusRoute, err)
		return
	}
	res, err := h.d.Store.ApplyReports(r.Context(), reps)
	if err != nil {
		h.fail(w, r, cmStatusRoute, err)
		return
	}
	parked := 0
	for _, x := range res {
		if x.Parked {
			parked++
		}
	}
	h.cmCounts.count(0, 0)
	if mt := h.d.Metrics; mt != nil {
		for _, rep := range reps {
			mt.InboundReports.WithLabelValues(store.ProviderCM, rep.Status).Inc()
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]int{"accepted": len(reps), "parked": parked})
}

// parseCMStatus validates a status post: msg is one report or an array.
func parseCMStatus(body []byte) ([]store.Report, error) {
	if err := cmRequireObject(body, `{"messages":{"msg":…}}`); err != nil {
		return nil, err
	}
	var p cmStatusPayload
	if err := cmDecode(body, &p); err != nil {
		return nil, err
	}
	if p.Messages == nil {
		return nil, cmInvalid("messages is required")
	}
	raw := bytes.TrimSpace(p.Messages.Msg)
	var msgs []cmStatusMsg
	switch {
	case string(raw) != "[]" && cmIsEmpty(raw):
		return nil, cmInvalid("messages.msg is required")
	case raw[0] == '{':
		var one cmStatusMsg
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, cmFieldErr("messages.msg", err)
		}
		msgs = []cmStatusMsg{one}
	case raw[0] == '[':
		if err := json.Unmarshal(raw, &msgs); err != nil {
			return nil, cmFieldErr("messages.msg", err)
		}
		if len(msgs) == 0 {
			return nil, cmInvalid("messages.msg is an empty array")
		}
	default:
		return nil, cmInvalid("messages.msg must be an object or an array of objects")
	}
	reps := make([]store.Report, len(msgs))
	for i, x := range msgs {
		f := func(name string) string {
			if len(msgs) == 1 && raw[0] == '{' {
				return "messages.msg." + name
			}
			return fmt.Sprintf("messages.msg[%d].%s", i, name)
		}
		ref, err := cmRef(x.Reference, f("reference"), true)
		if err != nil {
			return nil, err
		}
		if x.Status == nil {
			return nil, cmInvalid("%s is required", f("status"))
		}
		code := cmScalar(x.Status.Code)
		if code == "" {
			return nil, cmInvalid("%s is required", f("status.code"))
		}
		rep := store.Report{Provider: store.ProviderCM, ExternalID: ref, Status: store.StatusUnknown, Name: code}
		if st, ok := cmStatuses[strings.ToLower(code)]; ok {
			rep.Status, rep.Name = st.status, st.name
		}
		if v := strings.TrimSpace(x.Received); v != "" {
			t, ok := parseCMTime(v)
			if !ok {
				return nil, cmInvalid("%s %q is not a time (expected e.g. 2019-11-05T08:32:33)", f("received"), v)
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
		reps[i] = rep
	}
	return reps, nil
}

// ---- shared helpers ----

func cmInvalid(format string, args ...any) error {
	return httpx.Errorf(store.ErrInvalid, format, args...)
}

// cmFieldErr names the field a nested decode failed in.
func cmFieldErr(field string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return cmTypeError(field, te)
	}
	return cmInvalid("%s: %v", field, strings.TrimPrefix(httpx.JSONError(err).Error(), "malformed JSON: "))
}

// cmTypeError says which field (below prefix) holds the wrong kind of JSON
// value, in JSON's words: encoding/json's own error names Go types and,
// for a nested decode, calls the field "body".
func cmTypeError(prefix string, te *json.UnmarshalTypeError) error {
	field := prefix
	if te.Field != "" {
		if field != "" {
			field += "."
		}
		field += te.Field
	}
	if field == "" {
		field = "body"
	}
	return cmInvalid("%s: expected %s, got JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)
}

// cmDecode is httpx.Unmarshal with type mismatches described by cmTypeError.
func cmDecode(body []byte, v any) error {
	err := httpx.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(json.Unmarshal(body, v), &te) {
		return cmTypeError("", te)
	}
	return err
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
	if cmIsEmpty(raw) {
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
	return string(cmCompact(raw))
}

// cmScalar is a JSON string's or number's text.
func cmScalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if cmIsEmpty(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	return string(raw)
}

// cmIsEmpty reports whether a value carries nothing: absent, null, "",
// {} or [].
func cmIsEmpty(raw json.RawMessage) bool {
	switch string(bytes.TrimSpace(raw)) {
	case "", "null", `""`, "{}", "[]":
		return true
	}
	return false
}

func cmCompact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return append(json.RawMessage(nil), b...)
	}
	return buf.Bytes()
}
