package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"imchannel/httpx"
	"imchannel/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

const (
	shownImage     = 320 // images show in a shownImage px square at most
	pageConvs      = 50  // conversations per list page
	pageThread     = 200 // messages per thread page
	maxThreadLimit = 1000
)

// staticFile is one embedded asset, served under its content hash.
type staticFile struct {
	hash  string
	body  []byte
	ctype string
}

type pages struct {
	tmpl   *template.Template
	static map[string]staticFile // by name
}

// newPages parses every template once and hashes the static files.
func newPages() (*pages, error) {
	p := &pages{static: map[string]staticFile{}}
	err := fs.WalkDir(staticFS, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		p.static[path.Base(name)] = staticFile{hash: hex.EncodeToString(sum[:])[:16], body: b, ctype: ct}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	funcs := template.FuncMap{
		"static": func(name string) (string, error) {
			f, ok := p.static[name]
			if !ok {
				return "", fmt.Errorf("no static file %q", name)
			}
			return "/static/" + f.hash + "/" + name, nil
		},
		"fmtTime":   fmtTime,
		"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"bytes":     fmtBytes,
		"osm":       osmURL,
		"tick":      tickFor,
		"threadURL": threadURL,
		"listLink":  listLink,
		"spans":     spans,
		"plural":    plural,
		"hitURL":    hitURL,
		"coord":     func(f float64) string { return strconv.FormatFloat(f, 'f', 6, 64) },
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	for _, name := range []string{"index", "thread", "messages", "fragment", "msg", "list", "error", "transcript"} {
		if t.Lookup(name) == nil {
			return nil, fmt.Errorf("web: template %q is missing", name)
		}
	}
	p.tmpl = t
	return p, nil
}

// render executes a template into a buffer first, so a failure is a clean
// 500 and never half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("render failed", "template", name, "route", httpx.RouteOf(r), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// pageError renders the error page with the status of err's kind.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := httpx.Masked(r, s.log, err)
	s.render(w, r, status, "error", struct {
		Title   string
		Status  int
		Message string
	}{http.StatusText(status), status, msg})
}

// NotFound answers an unknown address: the HTML error page when a
// browser asks for a page (Accept names text/html), else JSON as every
// other route's errors.
func (s *Server) NotFound(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead || !strings.Contains(r.Header.Get("Accept"), "text/html") {
		httpx.NotFound(w, r)
		return
	}
	secure(func(w http.ResponseWriter, r *http.Request) {
		s.pageError(w, r, httpx.Errorf(store.ErrNotFound, "there is no page at %s", clip(r.URL.Path)))
	})(w, r)
}

// GET /static/{hash}/{name}: content-addressed, so cached for a year.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	f, ok := s.pages.static[v["name"]]
	if !ok || f.hash != v["hash"] {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	w.Header().Set("Content-Length", strconv.Itoa(len(f.body)))
	if r.Method != http.MethodHead {
		_, _ = w.Write(f.body)
	}
}

// ---- overview and conversation list ----

type overview struct {
	Stats      store.Stats
	Unanswered int
	FileSize   int64
	BackupAt   time.Time
	BackupSize int64
	// Quarantined counts provider items that could not be understood;
	// Quarantine holds the newest few, shown raw.
	Quarantined int
	Quarantine  []quarantineView
	Relays      []store.RelayStatus
	// DownloadAt is the last whole /admin/backup stream, checked or not.
	DownloadAt   time.Time
	DownloadSize int64
}

// quarantineView is one quarantined item as the status page lists it.
type quarantineView struct {
	*store.Quarantined
	RawText string // clipped
}

// pageQuarantine is how many quarantined items the status page lists.
const pageQuarantine = 5

func (s *Server) overview() (overview, error) {
	st, err := s.d.Store.StatsIn(s.d.Location)
	if err != nil {
		return overview{}, err
	}
	o := overview{Stats: st, FileSize: st.FileSize}
	un, err := s.d.Store.FindConversations(store.ConvQuery{Filter: store.FilterUnanswered}, 1, "")
	if err != nil {
		return overview{}, err
	}
	o.Unanswered = un.Total
	if fi, err := os.Stat(s.d.Store.Path()); err == nil {
		o.FileSize = fi.Size()
	}
	if s.d.LastBackup != nil {
		o.BackupAt, o.BackupSize = s.d.LastBackup()
	}
	o.Quarantined = s.d.Store.QuarantineCount()
	if o.Quarantined > 0 {
		items, _, err := s.d.Store.Quarantine(pageQuarantine, "")
		if err != nil {
			return overview{}, err
		}
		for _, q := range items {
			raw := string(q.Raw)
			if len(raw) > 600 {
				raw = raw[:600] + "…"
			}
			o.Quarantine = append(o.Quarantine, quarantineView{Quarantined: q, RawText: raw})
		}
	}
	if s.d.Relays != nil {
		o.Relays = s.d.Relays()
	}
	if s.d.LastDownload != nil {
		o.DownloadAt, o.DownloadSize = s.d.LastDownload()
	}
	return o, nil
}

// ---- thread ----

type threadData struct {
	Title  string
	Page   string
	Conv   *store.Conversation
	Msgs   []template.HTML // rendered by renderMessages
	Older  string          // before= for the page of older messages
	Newer  string          // after= for the page of newer messages (when not Latest)
	Latest bool            // this page ends with the newest message
}

// GET /conversations/{id}?before=|at=&limit=  (fragment=thread renders the
// message list only)
func (s *Server) threadPage(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !validID(id) {
		s.pageError(w, r, httpx.Errorf(store.ErrNotFound, "conversation %q not found", clip(id)))
		return
	}
	limit, err := intParam(r, "limit", pageThread, maxThreadLimit)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	qv := r.URL.Query()
	before := qv.Get("before")
	if at := qv.Get("at"); at != "" && before == "" {
		if !validID(at) {
			s.pageError(w, r, httpx.Errorf(store.ErrInvalid, "at %q is not a message id", clip(at)))
			return
		}
		// A key just past at: the page then ends with that message.
		before = at + "~"
	} else if before != "" && !validID(before) {
		s.pageError(w, r, httpx.Errorf(store.ErrInvalid, "before %q is not a message id", clip(before)))
		return
	}
	conv, err := s.d.Store.Conversation(id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	var msgs []*store.Message
	var older string
	latest := before == ""
	if after := qv.Get("after"); after != "" && before == "" {
		// Forwards from an older page ("newer →").
		if !validID(after) {
			s.pageError(w, r, httpx.Errorf(store.ErrInvalid, "after %q is not a message id", clip(after)))
			return
		}
		var more bool
		if msgs, more, err = s.d.Store.ConversationMessagesAfter(id, limit, after); err != nil {
			s.pageError(w, r, err)
			return
		}
		latest = !more
		if len(msgs) > 0 {
			older = msgs[0].ID
		}
	} else if msgs, older, err = s.d.Store.ConversationMessages(id, limit, before); err != nil {
		s.pageError(w, r, err)
		return
	}
	d := threadData{
		Title: displayName(conv), Page: "thread", Conv: conv, Older: older,
		Latest: latest || (len(msgs) > 0 && msgs[len(msgs)-1].ID == conv.LastMessageID),
	}
	if !d.Latest && len(msgs) > 0 {
		d.Newer = msgs[len(msgs)-1].ID
	}
	if d.Msgs, err = s.renderMessages(s.messageViews(msgs, true)); err != nil {
		s.pageError(w, r, err)
		return
	}
	name := "thread"
	if qv.Get("fragment") == "thread" {
		name = "messages"
		// The page's script reads where the next older page starts.
		if older != "" {
			w.Header().Set("X-Older", older)
		}
	}
	s.render(w, r, http.StatusOK, name, d)
}

// GET /fragments/messages/{id}: one message rendered as in the thread, for
// the live updates.
func (s *Server) messageFragment(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !validID(id) {
		s.pageError(w, r, httpx.Errorf(store.ErrNotFound, "message %q not found", clip(id)))
		return
	}
	m, err := s.d.Store.Message(id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	html, err := s.renderMessages(s.messageViews([]*store.Message{m}, false))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "fragment", html[0])
}

func displayName(c *store.Conversation) string {
	if c.Name != "" {
		return c.Name + " (+" + c.Customer + ")"
	}
	return "+" + c.Customer
}

// msgView is a message with what its template needs worked out in Go:
// flat fields (text/template resolves fields of embedded structs slowly)
// and the strings the template would otherwise compute through function
// calls, which cost a reflect call each, 200 times per thread page.
type msgView struct {
	ID, Direction, Type, Status, Error string
	Text, Caption, Sender              string
	Class                              string // CSS classes of the <li>
	Outbound, Deleted, ErrorMO         bool
	ShownISO, ShownText                string
	Tick                               tick
	Timeline                           []eventView
	Reactions                          []reactionView
	Media                              *store.Media
	Location                           *store.Location
	Interactive                        *store.Interactive
	Quote                              *quoteView
	MediaKind                          string // image video audio document ("" without media)
	Contacts                           []contactCard
	ContactsJS                         string // contacts we could not read, as indented JSON
	Order                              *orderView
	FlowJSON                           string
	Template                           string
	Note                               string    // what a system-type message is
	Sent                               *sentView // what an outbound message carried (sent.go)
	NextStep                           string    // what an agent can do about a failure
	ImgW, ImgH                         int       // an image's shown size (0: unknown)
	ImgAlt                             string    // its alt text: the caption, else the file name
	Retry                              *retryView
	SendAtISO, SendAtText              string // a scheduled message's send time
	// Facts are provider facts shown under the message: a voice note, the
	// ad the customer came from, the product asked about, a changed
	// security code, what was repaired on the way in.
	Facts []string
	// ProviderData is every provider field not mapped, as indented JSON.
	ProviderData string
}

// retryView is an outbound message the outbox is retrying.
type retryView struct {
	Attempts          int
	LastError         string
	NextISO, NextText string
}

type eventView struct {
	Status, ISO, Time, GroupName, Name, Description, Reason string
	Extra                                                   string // action, price, note
}

type reactionView struct{ Emoji, Title string }

func newMsgView(m *store.Message) *msgView {
	v := &msgView{
		ID: m.ID, Direction: m.Direction, Type: m.Type, Status: m.Status, Error: m.Error, Text: m.Text, Caption: m.Caption,
		Outbound: m.Direction == store.Outbound, Deleted: m.Deleted, ErrorMO: m.Type == store.TypeError,
		Media: m.Media, Location: m.Location, Interactive: m.Interactive, MediaKind: mediaKind(m), Tick: tickFor(m.Status),
	}
	shown := m.CreatedAt
	if !m.ReceivedAt.IsZero() {
		shown = m.ReceivedAt
	}
	v.ShownISO, v.ShownText = shown.UTC().Format(time.RFC3339Nano), fmtTime(shown)
	switch {
	case v.Outbound:
		v.Sender = "" // the side says it is ours; the number is the conversation's
	case m.ContactName != "":
		v.Sender = m.ContactName
	default:
		v.Sender = "+" + m.From
	}
	cls := "msg " + m.Direction + " type-" + m.Type
	if m.Deleted {
		cls += " deleted"
	}
	if v.ErrorMO {
		cls += " error-mo"
	}
	if m.Status == store.StatusFailed {
		cls += " failed"
	}
	v.Class = cls
	switch m.Type {
	case store.TypeWelcomeRequest:
		v.Note = "The customer opened the chat for the first time (welcome request)."
	case store.TypeUnsupported:
		v.Note = "A message of a type imchannel does not show"
		if t := rawType(m.Raw); t != "" {
			v.Note += ": " + t
		}
		v.Note += "."
	}
	if d := m.Delivery; d != nil && d.Attempts > 0 && m.Status != store.StatusFailed {
		v.Retry = &retryView{Attempts: d.Attempts, LastError: d.LastError,
			NextISO: d.NextAttemptAt.UTC().Format(time.RFC3339Nano), NextText: fmtTime(d.NextAttemptAt)}
	}
	if m.Status == store.StatusScheduled && m.Outbound != nil && !m.Outbound.SendAt.IsZero() {
		v.SendAtISO, v.SendAtText = m.Outbound.SendAt.UTC().Format(time.RFC3339Nano), fmtTime(m.Outbound.SendAt)
	}
	if md := m.Media; md != nil && md.Width > 0 && md.Height > 0 {
		v.ImgW, v.ImgH = md.Width, md.Height
		if v.ImgW > shownImage || v.ImgH > shownImage {
			if v.ImgW >= v.ImgH {
				v.ImgW, v.ImgH = shownImage, max(1, md.Height*shownImage/md.Width)
			} else {
				v.ImgW, v.ImgH = max(1, md.Width*shownImage/md.Height), shownImage
			}
		}
	}
	switch {
	case m.Caption != "":
		v.ImgAlt = m.Caption
	case m.Media != nil && m.Media.FileName != "":
		v.ImgAlt = m.Media.FileName
	default:
		v.ImgAlt = "image"
	}
	if v.Outbound && m.Status == store.StatusFailed {
		v.NextStep = nextStep(m.Error)
	}
	for _, e := range m.Timeline {
		v.Timeline = append(v.Timeline, eventView{Status: e.Status, ISO: e.At.UTC().Format(time.RFC3339Nano), Time: fmtTime(e.At),
			GroupName: e.GroupName, Name: e.Name, Description: e.Description, Reason: e.Reason, Extra: eventExtra(e)})
	}
	v.Facts = providerFacts(m)
	if len(m.ProviderData) > 0 {
		v.ProviderData = readableJSON(m.ProviderData)
	}
	for _, r := range m.Reactions {
		v.Reactions = append(v.Reactions, reactionView{Emoji: r.Emoji, Title: "+" + r.From + ", " + fmtTime(r.At)})
	}
	return v
}

type quoteView struct {
	Href    string
	Who     string
	Preview string
	Missing bool
}

// messageViews prepares a page of messages. With onPage, quotes of
// messages on the same page link to their anchor.
func (s *Server) messageViews(msgs []*store.Message, onPage bool) []*msgView {
	byID := make(map[string]*store.Message, len(msgs))
	if onPage {
		for _, m := range msgs {
			byID[m.ID] = m
		}
	}
	out := make([]*msgView, len(msgs))
	for i, m := range msgs {
		v := newMsgView(m)
		if m.ReplyTo != nil {
			v.Quote = s.quote(m, byID)
		}
		if len(m.Contacts) > 0 {
			v.Contacts, v.ContactsJS = contactCards(m.Contacts)
		}
		if len(m.Order) > 0 {
			v.Order = orderOf(m.Order)
		}
		if m.Interactive != nil && len(m.Interactive.Response) > 0 {
			v.FlowJSON = indentJSON(m.Interactive.Response)
		}
		if m.Outbound != nil {
			v.Template = m.Outbound.TemplateName
		}
		applySent(v, m)
		if v.Sent != nil && v.Sent.HasTemplate {
			v.Text = "" // the template's own view shows its name and values
		}
		if v.MediaKind == "document" && m.Media != nil && v.Caption == m.Media.FileName {
			v.Caption = "" // the download link already says the name
		}
		out[i] = v
	}
	return out
}

func (s *Server) quote(m *store.Message, byID map[string]*store.Message) *quoteView {
	if m.ReplyTo.ID == "" {
		return &quoteView{Missing: true}
	}
	q, ok := byID[m.ReplyTo.ID]
	href := "#msg-" + m.ReplyTo.ID
	if !ok {
		var err error
		if q, err = s.d.Store.Message(m.ReplyTo.ID); err != nil {
			return &quoteView{Missing: true}
		}
		href = "/conversations/" + url.PathEscape(q.ConversationID) + "?at=" + url.QueryEscape(q.ID) + "#msg-" + q.ID
	}
	who := "agent"
	if q.Direction == store.Inbound {
		who = "customer"
		if q.ContactName != "" {
			who = q.ContactName
		}
	}
	return &quoteView{Href: href, Who: who, Preview: store.Preview(q)}
}

func mediaKind(m *store.Message) string {
	if m.Media == nil {
		return ""
	}
	switch m.Type {
	case store.TypeImage, store.TypeSticker:
		if notAnImage(m.Media) {
			// An <img> of these bytes would be a broken image (a provider's
			// "link expired" page answered with 200, say): the fetch failed
			// in all but name. Say so, and offer what came as a download.
			return "notimage"
		}
		return "image"
	case store.TypeVideo, store.TypeAudio, store.TypeDocument:
		return m.Type
	}
	ct := m.Media.ContentType
	switch {
	case strings.HasPrefix(ct, "image/"):
		return "image"
	case strings.HasPrefix(ct, "video/"):
		return "video"
	case strings.HasPrefix(ct, "audio/"):
		return "audio"
	}
	return "document"
}

// notAnImage reports cached bytes that are known not to be an image: the
// served type is neither an image nor unknown, and the bytes did not sniff
// as one either.
func notAnImage(md *store.Media) bool {
	if md.State != store.MediaCached || md.ContentType == "" {
		return false
	}
	isImage := func(ct string) bool {
		mt, _, _ := mime.ParseMediaType(ct)
		return strings.HasPrefix(mt, "image/")
	}
	mt, _, _ := mime.ParseMediaType(md.ContentType)
	return mt != "application/octet-stream" && !isImage(md.ContentType) && !isImage(md.SniffedType)
}

// contactCard is one shared contact, read from WhatsApp's contact format.
type contactCard struct {
	Name   string
	Org    string
	Phones []string
	Emails []string
	Lines  []string // addresses and URLs
}

func contactCards(raw json.RawMessage) ([]contactCard, string) {
	var list []map[string]any
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, indentJSON(raw)
	}
	var out []contactCard
	for _, c := range list {
		var cc contactCard
		if n, ok := c["name"].(map[string]any); ok {
			cc.Name = firstString(n, "formatted_name", "formattedName")
			if cc.Name == "" {
				cc.Name = strings.TrimSpace(firstString(n, "first_name", "firstName") + " " + firstString(n, "last_name", "lastName"))
			}
		} else if n, ok := c["name"].(string); ok {
			cc.Name = n
		}
		if o, ok := c["org"].(map[string]any); ok {
			cc.Org = strings.TrimSpace(firstString(o, "company") + " " + firstString(o, "title"))
		}
		cc.Phones = listOf(c["phones"], "phone")
		cc.Emails = listOf(c["emails"], "email")
		cc.Lines = append(listOf(c["urls"], "url"), addresses(c["addresses"])...)
		out = append(out, cc)
	}
	if len(out) == 0 {
		return nil, indentJSON(raw)
	}
	return out, ""
}

func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

func listOf(v any, key string) []string {
	items, _ := v.([]any)
	var out []string
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			if s := firstString(m, key); s != "" {
				if t := firstString(m, "type"); t != "" {
					s += " (" + strings.ToLower(t) + ")"
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func addresses(v any) []string {
	items, _ := v.([]any)
	var out []string
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		var parts []string
		for _, k := range []string{"street", "zip", "city", "state", "country"} {
			if s := firstString(m, k); s != "" {
				parts = append(parts, s)
			}
		}
		if len(parts) > 0 {
			out = append(out, strings.Join(parts, ", "))
		}
	}
	return out
}

// orderView is a product order.
type orderView struct {
	Catalog string
	Text    string
	Items   []orderItem
	Raw     string // shown when the order is in a shape we do not know
}

type orderItem struct{ Product, Quantity, Price, Currency string }

func orderOf(raw json.RawMessage) *orderView {
	var o struct {
		CatalogID string           `json:"catalog_id"`
		Text      *string          `json:"text"`
		Items     []map[string]any `json:"product_items"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || len(o.Items) == 0 {
		return &orderView{Raw: indentJSON(raw)}
	}
	v := &orderView{Catalog: o.CatalogID}
	if o.Text != nil {
		v.Text = *o.Text
	}
	for _, it := range o.Items {
		v.Items = append(v.Items, orderItem{Product: scalar(it["product_retailer_id"]), Quantity: scalar(it["quantity"]),
			Price: scalar(it["item_price"]), Currency: scalar(it["currency"])})
	}
	return v
}

func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func indentJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		return string(raw)
	}
	return buf.String()
}

// ---- template helpers ----

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func osmURL(l *store.Location) string {
	lat := strconv.FormatFloat(l.Latitude, 'f', 6, 64)
	lon := strconv.FormatFloat(l.Longitude, 'f', 6, 64)
	return "https://www.openstreetmap.org/?mlat=" + lat + "&mlon=" + lon + "#map=16/" + lat + "/" + lon
}

// tick is how an outbound status looks.
type tick struct{ Symbol, Label, Class string }

var ticks = map[string]tick{
	store.StatusScheduled: {"🕓", "scheduled", "pending"},
	store.StatusQueued:    {"🕓", "queued", "pending"},
	store.StatusSent:      {"✓", "sent", "sent"},
	store.StatusDelivered: {"✓✓", "delivered", "delivered"},
	store.StatusSeen:      {"✓✓", "seen", "seen"},
	store.StatusFailed:    {"✗", "failed", "failed"},
	store.StatusDeleted:   {"", "deleted", "deleted"},
}

func tickFor(status string) tick {
	if t, ok := ticks[status]; ok {
		return t
	}
	return tick{"", status, "other"}
}

func threadURL(convID, before string) string {
	u := "/conversations/" + url.PathEscape(convID)
	if before != "" {
		u += "?before=" + url.QueryEscape(before)
	}
	return u
}

// hitURL opens a message in its thread: the page ending with it.
func hitURL(convID, msgID string) string {
	return "/conversations/" + url.PathEscape(convID) + "?at=" + url.QueryEscape(msgID) + "#msg-" + msgID
}

// sortedStatic lists the static file names (for tests).
func (p *pages) sortedStatic() []string {
	var out []string
	for n := range p.static {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// providerFacts says in words what the provider told us beyond the content.
func providerFacts(m *store.Message) []string {
	var out []string
	if m.Voice {
		out = append(out, "🎤 voice note")
	}
	if r := m.Referral; r != nil {
		f := "📣 came from " + strings.ToLower(r.SourceType) + " "
		if r.SourceType == "" {
			f = "📣 came from an ad or post "
		}
		if r.Headline != "" {
			f += "“" + r.Headline + "”"
		}
		if r.Body != "" {
			f += " — " + r.Body
		}
		if r.SourceURL != "" {
			f += " (" + r.SourceURL + ")"
		}
		if r.CtwaClickID != "" {
			f += " · click id " + r.CtwaClickID
		}
		out = append(out, strings.TrimSpace(f))
	}
	if p := m.ReferredProduct; p != nil {
		out = append(out, "🛍 asks about product "+p.ProductRetailerID+" of catalog "+p.CatalogID)
	}
	if id := m.Identity; id != nil {
		f := "🔐 the customer's security code changed"
		if !id.CreatedAt.IsZero() {
			f += " at " + fmtTime(id.CreatedAt)
		}
		if !id.Acknowledged {
			f += " (not acknowledged)"
		}
		out = append(out, f)
	}
	for _, n := range m.Notes {
		out = append(out, "ℹ "+n)
	}
	return out
}

// eventExtra is what a report adds beyond its status: the provider's
// advice, the price, and what was repaired.
func eventExtra(e store.Event) string {
	var parts []string
	if e.Action != "" {
		parts = append(parts, "action: "+e.Action)
	}
	if p := e.Price; p != nil {
		parts = append(parts, "price "+strconv.FormatFloat(p.PricePerMessage, 'f', -1, 64)+" "+p.Currency)
	}
	if e.Note != "" {
		parts = append(parts, e.Note)
	}
	return strings.Join(parts, " · ")
}

// readableJSON pretty-prints raw JSON as people read it (no \u003c
// escapes: the template escapes for HTML).
func readableJSON(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if enc.Encode(v) != nil {
		return string(raw)
	}
	return strings.TrimSpace(buf.String())
}

// rawType is the provider's own name for a message type, read from the
// raw payload kept for types we do not model ("type" at its top, or in
// its "message" object).
func rawType(raw json.RawMessage) string {
	var p struct {
		Type    string `json:"type"`
		Message struct {
			Type string `json:"type"`
		} `json:"message"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &p) != nil {
		return ""
	}
	t := p.Type
	if t == "" {
		t = p.Message.Type
	}
	if len(t) > 40 {
		t = t[:40]
	}
	return t
}
