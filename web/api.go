package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"imchannel/httpx"
	"imchannel/store"
)

// Paging bounds of the API.
const (
	defaultConvLimit = 50
	maxConvLimit     = 500
	defaultMsgLimit  = 100
	maxMsgLimit      = 1000
	maxQueryLen      = 100
)

// intParam reads an optional positive integer query parameter.
func intParam(r *http.Request, name string, def, max int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, httpx.Errorf(store.ErrInvalid, "%s must be an integer between 1 and %d, got %q", name, max, clip(v))
	}
	return n, nil
}

// pageArgs reads a paged route's limit and its cursor parameter (name),
// which when given must be an id a previous page handed out; bad says how
// a wrong one is wrong.
func pageArgs(r *http.Request, def, max int, name, bad string) (int, string, error) {
	limit, err := intParam(r, "limit", def, max)
	if err != nil {
		return 0, "", err
	}
	cur := r.URL.Query().Get(name)
	if cur != "" && !validID(cur) {
		return 0, "", httpx.Errorf(store.ErrInvalid, "%s %q is %s", name, clip(cur), bad)
	}
	return limit, cur, nil
}

// clip keeps echoed input short in error messages.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// validID reports whether s looks like one of our ULIDs (26 characters of
// Crockford base32), so malformed ids get a clear 400 or 404 before any
// store lookup.
func validID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

// searchQuery reads q: trimmed, bounded.
func searchQuery(r *http.Request) (string, error) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > maxQueryLen {
		return "", httpx.Errorf(store.ErrInvalid, "q is longer than %d bytes", maxQueryLen)
	}
	return q, nil
}

func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	httpx.WriteError(w, r, s.log, err)
}

// GET /api/v1/conversations?q=&filter=&business=&limit=&cursor=
func (s *Server) apiConversations(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", defaultConvLimit, maxConvLimit)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	p, err := readListParams(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	page, err := s.d.Store.FindConversations(s.query(p), limit, p.Cursor)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := struct {
		Conversations []ConversationJSON `json:"conversations"`
		Next          string             `json:"next,omitempty"`
		Total         int                `json:"total"`
	}{Conversations: make([]ConversationJSON, 0, len(page.Conversations)), Next: page.Next, Total: page.Total}
	for _, c := range page.Conversations {
		out.Conversations = append(out.Conversations, conversationJSON(c))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// GET /api/v1/conversations/{id}
func (s *Server) apiConversation(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !validID(id) {
		s.apiError(w, r, httpx.Errorf(store.ErrNotFound, "conversation %q not found", clip(id)))
		return
	}
	c, err := s.d.Store.Conversation(id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, conversationJSON(c))
}

// GET /api/v1/conversations/{id}/messages?limit=&before=
func (s *Server) apiConversationMessages(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	limit, before, err := pageArgs(r, defaultMsgLimit, maxMsgLimit, "before", "not a message id (a previous page's next)")
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if !validID(id) {
		s.apiError(w, r, httpx.Errorf(store.ErrNotFound, "conversation %q not found", clip(id)))
		return
	}
	msgs, next, err := s.d.Store.ConversationMessages(id, limit, before)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := struct {
		Messages []MessageJSON `json:"messages"`
		Next     string        `json:"next,omitempty"`
	}{Messages: make([]MessageJSON, 0, len(msgs)), Next: next}
	for _, m := range msgs {
		out.Messages = append(out.Messages, messageJSON(m))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// GET /api/v1/messages/{id}
func (s *Server) apiMessage(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !validID(id) {
		s.apiError(w, r, httpx.Errorf(store.ErrNotFound, "message %q not found", clip(id)))
		return
	}
	m, err := s.d.Store.Message(id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, messageJSON(m))
}

// GET /api/v1/messages?externalId=ID: every message known under that
// provider id (ours, or an alias the provider gave); an empty list when none.
// GET /api/v1/messages?q=…&limit=&cursor=: message text search.
func (s *Server) apiMessages(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	ext := v.Get("externalId")
	switch {
	case ext == "" && v.Has("q"):
		s.apiSearchMessages(w, r)
		return
	case ext == "":
		s.apiError(w, r, httpx.Errorf(store.ErrInvalid, "externalId or q is required"))
		return
	case len(ext) > 512:
		s.apiError(w, r, httpx.Errorf(store.ErrInvalid, "externalId is longer than 512 bytes"))
		return
	}
	msgs, err := s.d.Store.MessagesByExternalID(ext)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := struct {
		Messages []MessageJSON `json:"messages"`
	}{Messages: make([]MessageJSON, 0, len(msgs))}
	for _, m := range msgs {
		out.Messages = append(out.Messages, messageJSON(m))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// apiSearchMessages answers GET /api/v1/messages?q=: messages whose text or
// caption holds every word of q, newest first, paged; total counts up to
// store.MessageSearchCap (totalCapped: there are more).
func (s *Server) apiSearchMessages(w http.ResponseWriter, r *http.Request) {
	q, err := searchQuery(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", defaultConvLimit, maxConvLimit)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	page, err := s.d.Store.SearchMessages(q, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := struct {
		Messages    []MessageJSON `json:"messages"`
		Next        string        `json:"next,omitempty"`
		Total       int           `json:"total"`
		TotalCapped bool          `json:"totalCapped,omitempty"`
	}{Messages: make([]MessageJSON, 0, len(page.Messages)), Next: page.Next, Total: page.Total, TotalCapped: page.TotalCapped}
	for _, m := range page.Messages {
		out.Messages = append(out.Messages, messageJSON(m))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// GET /api/v1/quarantine?limit=&cursor= → {"items":[…], "next":"…",
// "total": N}, newest first.
func (s *Server) apiQuarantine(w http.ResponseWriter, r *http.Request) {
	limit, cursor, err := pageArgs(r, defaultConvLimit, maxConvLimit, "cursor", "not one this server issued")
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	items, next, err := s.d.Store.Quarantine(limit, cursor)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := struct {
		Items []store.Quarantined `json:"items"`
		Next  string              `json:"next,omitempty"`
		Total int                 `json:"total"`
	}{Items: make([]store.Quarantined, 0, len(items)), Next: next, Total: s.d.Store.QuarantineCount()}
	// The store's record is the JSON shape already; only its times are
	// shown in UTC.
	for _, q := range items {
		it := *q
		it.At, it.LastAt = q.At.UTC(), q.LastAt.UTC()
		out.Items = append(out.Items, it)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
