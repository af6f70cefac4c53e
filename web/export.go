package web

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"imchannel/httpx"
	"imchannel/store"
)

// allMessages reads every message of a conversation, oldest first.
func (s *Server) allMessages(id string) (*store.Conversation, []*store.Message, error) {
	conv, err := s.d.Store.Conversation(id)
	if err != nil {
		return nil, nil, err
	}
	var pages [][]*store.Message
	before := ""
	for {
		msgs, next, err := s.d.Store.ConversationMessages(id, maxThreadLimit, before)
		if err != nil {
			return nil, nil, err
		}
		pages = append(pages, msgs)
		if next == "" {
			break
		}
		before = next
	}
	var all []*store.Message
	for i := len(pages) - 1; i >= 0; i-- {
		all = append(all, pages[i]...)
	}
	return conv, all, nil
}

// exportJSON is a conversation for disputes and audits: everything the
// API shows of it, every message with its whole timeline.
type exportJSON struct {
	ExportedAt   time.Time        `json:"exportedAt"`
	Conversation ConversationJSON `json:"conversation"`
	Messages     []MessageJSON    `json:"messages"`
}

// GET /api/v1/conversations/{id}/export
func (s *Server) apiExport(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !validID(id) {
		s.apiError(w, r, httpx.Errorf(store.ErrNotFound, "conversation %q not found", clip(id)))
		return
	}
	conv, msgs, err := s.allMessages(id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := exportJSON{ExportedAt: s.d.Store.Now().UTC(), Conversation: conversationJSON(conv), Messages: make([]MessageJSON, 0, len(msgs))}
	for _, m := range msgs {
		out.Messages = append(out.Messages, messageJSON(m))
	}
	w.Header().Set("Content-Disposition", `attachment; filename="conversation-`+conv.ID+`.json"`)
	httpx.WriteJSON(w, http.StatusOK, out)
}

// transcriptLine is one message as the printable transcript shows it.
type transcriptLine struct {
	ID, ISO, Time, Who, Direction, Type, Status string
	Text, Caption, Media, Error                 string
	Deleted                                     bool
	Timeline                                    []eventView
}

type transcriptData struct {
	Title      string
	Page       string
	Conv       *store.Conversation
	Lines      []transcriptLine
	Printed    string
	FirstTime  string
	LastTime   string
	Messages   string
	ExportLink string
}

// GET /conversations/{id}/transcript: the whole conversation as a
// printable page (print CSS, no live updates, times in UTC).
func (s *Server) transcriptPage(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !validID(id) {
		s.pageError(w, r, httpx.Errorf(store.ErrNotFound, "conversation %q not found", clip(id)))
		return
	}
	conv, msgs, err := s.allMessages(id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	d := transcriptData{Title: "Transcript: " + displayName(conv), Page: "transcript", Conv: conv,
		Printed: fmtTime(s.d.Store.Now()), Messages: plural(len(msgs), "message", "messages"),
		ExportLink: "/api/v1/conversations/" + conv.ID + "/export"}
	for _, m := range msgs {
		v := newMsgView(m)
		l := transcriptLine{ID: m.ID, ISO: v.ShownISO, Time: v.ShownText, Direction: m.Direction, Type: m.Type,
			Status: m.Status, Text: m.Text, Caption: m.Caption, Error: m.Error, Deleted: m.Deleted, Timeline: v.Timeline}
		if m.Direction == store.Outbound {
			l.Who = "Agent (business +" + m.From + ")"
		} else {
			l.Who = v.Sender
		}
		if md := m.Media; md != nil {
			l.Media = md.FileName
			if l.Media == "" {
				l.Media = md.ContentType
			}
			l.Media += " (" + md.State + ")"
		}
		d.Lines = append(d.Lines, l)
	}
	if len(d.Lines) > 0 {
		d.FirstTime, d.LastTime = d.Lines[0].Time, d.Lines[len(d.Lines)-1].Time
	}
	s.render(w, r, http.StatusOK, "transcript", d)
}
