package webhook

// CTLive's IM channel protocol (seed 000), which is Infobip's WhatsApp
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

// infobipRoutes are seed 000's path (with its typo) and the corrected one.
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
// says which one it is. Fields Infobip sends that we do not use (price,
// callbackData, messageCount, …) are ignored.
type ibResult struct {
	// inbound message
	From            string     `json:"from"`
	To              string     `json:"to"`
	IntegrationType string     `json:"integrationType"`
	ReceivedAt      string     `json:"receivedAt"`
	MessageID       string     `json:"messageId"`
	PairedMessageID string     `json:"pairedMessageId"`
	Message         *ibMessage `json:"message"`
	Contact         *struct {
		Name string `json:"name"`
	} `json:"contact"`

	// delivery report (and seen report: messageId, to, sentAt, seenAt)
	BulkID  string    `json:"bulkId"`
	Status  *ibStatus `json:"status"`
	Error   *ibError  `json:"error"`
	SentAt  string    `json:"sentAt"`
	DoneAt  string    `json:"doneAt"`
	SeenAt  *string   `json:"seenAt"`
	Channel string    `json:"channel"`
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
	Context *struct {
		ID   string `json:"id"`
		From string `json:"from"`
	} `json:"context"`
}

type ibStatus struct {
	GroupID     int    `json:"groupId"`
	GroupName   string `json:"groupName"`
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

type ibError struct {
	GroupID     int    `json:"groupId"`
	GroupName   string `json:"groupName"`
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Permanent   bool   `json:"permanent"`
}

// ---- the handler ----

func (h *Handler) infobip(w http.ResponseWriter, r *http.Request, route string) {
	body, err := httpx.ReadBody(w, r, h.d.BodyLimit)
	if err != nil {
		h.fail(w, r, route, err)
		return
	}
	batch, err := parseInfobip(body)
	if err != nil {
		h.fail(w, r, route, err)
		return
	}
	results, _, err := h.d.Store.Ingest(r.Context(), batch.msgs, batch.reports)
	if err != nil {
		h.fail(w, r, route, err)
		return
	}
	dups := 0
	for _, res := range results {
		if res.Duplicate {
			dups++
		}
	}
	h.infobipCounts.count(len(results)-dups, dups)
	if m := h.d.Metrics; m != nil {
		for _, rep := range batch.reports {
			m.InboundReports.WithLabelValues(store.ProviderInfobip, rep.Status).Inc()
		}
	}
	writeAccepted(w, len(results)-dups+len(batch.reports), dups)
}

// infobipBatch is a validated post, ready for one store call.
type infobipBatch struct {
	msgs    []*store.Message
	reports []store.Report
}

// parseInfobip decodes and validates a whole post. Any problem is an
// Invalid error naming results[i] and the field; nothing is half-accepted.
func parseInfobip(body []byte) (*infobipBatch, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, httpx.Errorf(store.ErrInvalid, "body is empty; expected JSON {\"results\": [...]}")
	}
	if !utf8.Valid(body) {
		return nil, httpx.Errorf(store.ErrInvalid, "body is not valid UTF-8")
	}
	var post ibPost
	// Seed 000's own examples carry trailing commas.
	body, err := httpx.DecodeTolerant(body, func(b []byte) error { return json.Unmarshal(b, &post) })
	if err != nil {
		return nil, explainDecode(body, err)
	}
	if post.Results == nil {
		return nil, httpx.Errorf(store.ErrInvalid, "results is missing: expected {\"results\": [...]}")
	}
	b := &infobipBatch{}
	var raws []json.RawMessage // decoded only when a result keeps its raw form
	for i := range *post.Results {
		res := &(*post.Results)[i]
		switch {
		case res.Message != nil:
			m, err := inboundMessage(i, res)
			if err != nil {
				return nil, err
			}
			if m.Type == store.TypeUnsupported {
				if raws == nil {
					var p struct{ Results []json.RawMessage }
					_ = json.Unmarshal(body, &p) // it decoded above, so it decodes again
					raws = p.Results
				}
				if i < len(raws) {
					m.Raw = compactJSON(raws[i])
				}
			}
			b.msgs = append(b.msgs, m)
		case res.Status != nil:
			rep, err := deliveryReport(i, res)
			if err != nil {
				return nil, err
			}
			b.reports = append(b.reports, rep)
		case res.SeenAt != nil:
			rep, err := seenReport(i, res)
			if err != nil {
				return nil, err
			}
			b.reports = append(b.reports, rep)
		default:
			return nil, httpx.Errorf(store.ErrInvalid, "results[%d]: cannot tell what it is: an inbound message has \"message\", a delivery report \"status\", a seen report \"seenAt\"", i)
		}
	}
	return b, nil
}

// explainDecode turns a decoding error into one naming the result and
// field, re-decoding result by result to find which one is wrong.
func explainDecode(body []byte, err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return httpx.JSONError(err) // syntax: offset is the useful part
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return httpx.Errorf(store.ErrInvalid, "body must be a JSON object {\"results\": [...]}, got JSON %s", te.Value)
	}
	var raws []json.RawMessage
	if json.Unmarshal(top["results"], &raws) != nil {
		return httpx.Errorf(store.ErrInvalid, "results must be an array of results")
	}
	for i, raw := range raws {
		var res ibResult
		err := json.Unmarshal(raw, &res)
		if err == nil {
			continue
		}
		if errors.As(err, &te) {
			if te.Field == "" {
				return httpx.Errorf(store.ErrInvalid, "results[%d] must be an object, got JSON %s", i, te.Value)
			}
			return httpx.Errorf(store.ErrInvalid, "results[%d].%s: expected %s, got JSON %s", i, te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return httpx.Errorf(store.ErrInvalid, "results[%d]: %v", i, err)
	}
	return httpx.JSONError(err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "float64", "int":
		return "a number"
	case "bool":
		return "true or false"
	case "ptr", "struct", "map":
		return "an object"
	case "slice":
		return "an array"
	}
	return goKind
}

func compactJSON(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return append(json.RawMessage(nil), raw...)
	}
	return buf.Bytes()
}

// inboundMessage maps one inbound result to a store message.
func inboundMessage(i int, res *ibResult) (*store.Message, error) {
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
	if res.ReceivedAt != "" {
		t, err := parseTime(res.ReceivedAt)
		if err != nil {
			return nil, bad("receivedAt", "%v", err)
		}
		m.ReceivedAt = t
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
		// Seed 000: a document's caption is its file name.
		m.Media.FileName = msg.Caption
	case "AUDIO", "VOICE":
		if err := media(store.TypeAudio); err != nil {
			return nil, err
		}
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
		m.Type, m.Contacts = store.TypeContacts, compactJSON(c)
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
	case "ORDER":
		if msg.CatalogID == "" {
			return nil, bad("message.catalogId", "is required for ORDER")
		}
		items := bytes.TrimSpace(msg.ProductItems)
		if len(items) == 0 || items[0] != '[' {
			return nil, bad("message.productItems", "must be an array of products")
		}
		order, err := json.Marshal(struct {
			CatalogID    string          `json:"catalogId"`
			ProductItems json.RawMessage `json:"productItems"`
			Text         string          `json:"text,omitempty"`
		}{msg.CatalogID, compactJSON(items), msg.Text})
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

// flowResponse keeps a flow reply's response whole. Infobip sends an
// object; WhatsApp's own format a string holding JSON, which is unwrapped
// so agents always see the object.
func flowResponse(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		inner := bytes.TrimSpace([]byte(s))
		if len(inner) > 0 && (inner[0] == '{' || inner[0] == '[') && json.Valid(inner) {
			return compactJSON(inner)
		}
	}
	return compactJSON(raw)
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

func deliveryReport(i int, res *ibResult) (store.Report, error) {
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
	// else sentAt. Both are checked so a bad one is never ignored.
	var at time.Time
	for _, f := range []struct{ name, v string }{{"sentAt", res.SentAt}, {"doneAt", res.DoneAt}} {
		if f.v == "" {
			continue
		}
		t, err := parseTime(f.v)
		if err != nil {
			return store.Report{}, bad(f.name, "%v", err)
		}
		at = t
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

func seenReport(i int, res *ibResult) (store.Report, error) {
	if strings.TrimSpace(res.MessageID) == "" {
		return store.Report{}, httpx.Errorf(store.ErrInvalid, "results[%d].messageId is required", i)
	}
	if p := refProblem(res.MessageID); p != "" {
		return store.Report{}, httpx.Errorf(store.ErrInvalid, "results[%d].messageId %s", i, p)
	}
	if res.SentAt != "" {
		if _, err := parseTime(res.SentAt); err != nil {
			return store.Report{}, httpx.Errorf(store.ErrInvalid, "results[%d].sentAt %v", i, err)
		}
	}
	at, err := parseTime(*res.SeenAt)
	if err != nil {
		return store.Report{}, httpx.Errorf(store.ErrInvalid, "results[%d].seenAt %v", i, err)
	}
	return store.Report{Provider: store.ProviderInfobip, ExternalID: res.MessageID, Status: store.StatusSeen, At: at, Name: "SEEN"}, nil
}
