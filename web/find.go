package web

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"imchannel/httpx"
	"imchannel/store"
	"imchannel/words"
)

// pageMsgHits is how many message matches the list page shows per page.
const pageMsgHits = 20

// listParams are what a conversation list asks for: the search, the
// filter, the business number and the page.
type listParams struct {
	Q, Filter, Business, Cursor string
	MCursor                     string // page of message matches
}

func readListParams(r *http.Request) (listParams, error) {
	q, err := searchQuery(r)
	if err != nil {
		return listParams{}, err
	}
	v := r.URL.Query()
	p := listParams{Q: q, Filter: v.Get("filter"), Business: v.Get("business"), Cursor: v.Get("cursor"), MCursor: v.Get("mcursor")}
	switch p.Filter {
	case "", store.FilterUnanswered, store.FilterFailed:
	default:
		return p, httpx.Errorf(store.ErrInvalid, "filter %q: must be %q or %q", clip(p.Filter), store.FilterUnanswered, store.FilterFailed)
	}
	if p.Business != "" && store.NormalizeNumber(p.Business) == "" {
		return p, httpx.Errorf(store.ErrInvalid, "business %q is not a number", clip(p.Business))
	}
	return p, nil
}

// query is the store's view of the list parameters, with the national
// reading of a number typed the way the region writes it.
func (s *Server) query(p listParams) store.ConvQuery {
	return store.ConvQuery{Q: p.Q, Numbers: s.numberForms(p.Q), Filter: p.Filter, Business: p.Business}
}

// numberForms reads q as a phone number of the configured region
// ([numbers] default_region): "0170 1234567" in DE is 491701234567. Text
// with letters, or no region, gives nothing.
func (s *Server) numberForms(q string) []string {
	if s.d.DefaultRegion == "" || q == "" {
		return nil
	}
	for _, r := range q {
		if r > 127 || (r|0x20 >= 'a' && r|0x20 <= 'z') {
			return nil
		}
	}
	n, err := phonenumbers.Parse(q, s.d.DefaultRegion)
	if err != nil || n.GetCountryCode() == 0 {
		return nil
	}
	d := strconv.Itoa(int(n.GetCountryCode())) + phonenumbers.GetNationalSignificantNumber(n)
	if d == store.NormalizeNumber(q) {
		return nil
	}
	return []string{d}
}

// convRow is a conversation as the list shows it, worked out in Go: flat
// fields and ready markup, so the template makes no calls per row (each
// costs a reflect call; 50 rows per page).
type convRow struct {
	ID, Href, Class string
	HasName         bool
	Title, Number   template.HTML // highlighted; Number only beside a name
	Business        string
	ISO, LastShown  string // the last activity (the script makes it local)
	Outbound        bool   // the last message is ours ("You:")
	Tick            tick   // its status
	Preview         string
	Waiting         string // "waiting 3 h" on an unanswered row
	Failed          int
	Messages        string // "12 messages"
}

type msgHit struct {
	Href, Who, ISO, Time string
	Outbound             bool
	Snippet              template.HTML // highlighted
}

type indexData struct {
	Title      string
	Page       string
	Overview   overview
	P          listParams
	Convs      []convRow
	Total      int
	Next       string
	Businesses []store.BusinessCount
	MultiBiz   bool
	// Message matches, with a search.
	Hits        []msgHit
	HitsTotal   int
	HitsCapped  bool
	HitsNext    string
	HitsInvalid string // why the text could not be searched (too short)
}

// GET /?q=&filter=&business=&cursor=&mcursor=  (fragment=list renders only
// the live section)
func (s *Server) indexPage(w http.ResponseWriter, r *http.Request) {
	p, err := readListParams(r)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", pageConvs, maxConvLimit)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	page, err := s.d.Store.FindConversations(s.query(p), limit, p.Cursor)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	ov, err := s.overview()
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	biz, err := s.d.Store.Businesses()
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	d := indexData{Title: "Conversations", Page: "list", Overview: ov, P: p, Total: page.Total, Next: page.Next,
		Businesses: biz, MultiBiz: len(biz) > 1}
	d.Convs = s.rows(page.Conversations, p.Q)
	if p.Q != "" {
		hits, err := s.d.Store.SearchMessages(p.Q, pageMsgHits, p.MCursor)
		switch {
		case err == nil:
			d.Hits, d.HitsTotal, d.HitsCapped, d.HitsNext = s.hits(hits), hits.Total, hits.TotalCapped, hits.Next
		case httpx.Status(err) == http.StatusBadRequest && p.MCursor == "":
			d.HitsInvalid = "Message text is searched for whole words of at least 2 letters or digits."
		default:
			s.pageError(w, r, err)
			return
		}
	}
	name := "index"
	if r.URL.Query().Get("fragment") == "list" {
		name = "list"
	}
	s.render(w, r, http.StatusOK, name, d)
}

// rows prepares list rows; q marks what it matched.
func (s *Server) rows(convs []*store.Conversation, q string) []convRow {
	now := s.d.Store.Now()
	qf := words.Fold(strings.TrimSpace(q))
	digits := ""
	if qf != "" && !strings.ContainsFunc(qf, func(r rune) bool { return r > 127 || (r >= 'a' && r <= 'z') }) {
		digits = store.NormalizeNumber(qf)
	}
	var nameToks []string
	if qf != "" && digits == "" {
		nameToks = []string{qf}
	}
	out := make([]convRow, len(convs))
	for i, c := range convs {
		row := convRow{ID: c.ID, Href: threadURL(c.ID, ""), HasName: c.Name != "", Business: c.Business,
			ISO: c.LastActivity.UTC().Format(time.RFC3339Nano), LastShown: fmtTime(c.LastActivity),
			Outbound: c.LastDirection == store.Outbound, Preview: c.LastPreview, Failed: c.FailedCount,
			Messages: plural(c.MessageCount, "message", "messages"), Class: "conv"}
		num := numberSpans("+"+c.Customer, digits)
		if c.Name != "" {
			row.Title = spans(words.Highlight(c.Name, nameToks, true))
			row.Number = spans(num)
		} else {
			row.Title = spans(num)
		}
		if c.Unanswered() {
			row.Waiting = "waiting " + since(now.Sub(c.LastInboundAt))
			row.Class += " unanswered"
		}
		if c.FailedCount > 0 {
			row.Class += " has-failed"
		}
		if row.Outbound && c.LastMessageID != "" {
			if m, err := s.d.Store.Message(c.LastMessageID); err == nil {
				row.Tick = tickFor(m.Status)
			}
		}
		out[i] = row
	}
	return out
}

// hits prepares message matches: a snippet around the first match.
func (s *Server) hits(p store.MessagePage) []msgHit {
	out := make([]msgHit, 0, len(p.Messages))
	names := map[string]string{}
	for _, m := range p.Messages {
		text := m.Text
		if text == "" {
			text = m.Caption
		}
		who, ok := names[m.ConversationID]
		if !ok {
			who = "conversation"
			if c, err := s.d.Store.Conversation(m.ConversationID); err == nil {
				who = displayName(c)
			}
			names[m.ConversationID] = who
		}
		shown := m.CreatedAt
		if !m.ReceivedAt.IsZero() {
			shown = m.ReceivedAt
		}
		out = append(out, msgHit{Href: hitURL(m.ConversationID, m.ID), Who: who, Outbound: m.Direction == store.Outbound,
			ISO: shown.UTC().Format(time.RFC3339Nano), Time: fmtTime(shown),
			Snippet: spans(words.Highlight(snippet(text, p.Tokens), p.Tokens, false))})
	}
	return out
}

// snippet shortens text to about 160 characters around its first match.
func snippet(text string, toks []string) string {
	text = strings.Join(strings.Fields(text), " ")
	r := []rune(text)
	const long = 160
	if len(r) <= long {
		return text
	}
	first := 0
	for _, sp := range words.Highlight(text, toks, false) {
		if sp.Hit {
			break
		}
		first += len([]rune(sp.Text))
	}
	start := max(first-40, 0)
	end := min(len(r), start+long)
	out := string(r[start:end])
	if start > 0 {
		out = "…" + out
	}
	if end < len(r) {
		out += "…"
	}
	return out
}

// numberSpans marks the digits q matched in a shown number.
func numberSpans(shown, digits string) []words.Span {
	if digits == "" || digits == "\x00" {
		return []words.Span{{Text: shown}}
	}
	i := strings.Index(shown, digits)
	if i < 0 {
		return []words.Span{{Text: shown}}
	}
	out := []words.Span{{Text: shown[:i]}, {Text: digits, Hit: true}, {Text: shown[i+len(digits):]}}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// since says how long ago, coarsely: "4 min", "3 h", "2 d".
func since(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "1 min"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d d", int(d.Hours()/24))
}

// spans renders highlighted text: matches in <mark>, everything escaped.
func spans(ss []words.Span) template.HTML {
	var b strings.Builder
	for _, s := range ss {
		if s.Hit {
			b.WriteString("<mark>" + template.HTMLEscapeString(s.Text) + "</mark>")
		} else {
			b.WriteString(template.HTMLEscapeString(s.Text))
		}
	}
	return template.HTML(b.String())
}

// listLink is the list with p's search, filter and business, changed by
// the key/value pairs kv (an empty value drops the key); paging restarts
// unless a cursor is given.
func listLink(p listParams, kv ...string) string {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		} else {
			v.Del(k)
		}
	}
	set("q", p.Q)
	set("filter", p.Filter)
	set("business", p.Business)
	for i := 0; i+1 < len(kv); i += 2 {
		set(kv[i], kv[i+1])
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}
