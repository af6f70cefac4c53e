package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"imchannel/httpx"
	"imchannel/store"
)

// changeJSON is one event on the stream.
type changeJSON struct {
	Kind           string `json:"kind"` // message status media outbox conversation
	ConversationID string `json:"conversationId,omitempty"`
	MessageID      string `json:"messageId,omitempty"`
}

// GET /events?conversation=ID streams store changes as Server-Sent Events:
// every change, or only one conversation's. Each event's data is
// changeJSON; a comment line every Heartbeat keeps proxies from closing an
// idle stream. Changes a slow client cannot take are dropped (the page
// re-reads on reconnect), never queued without bound.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	conv := r.URL.Query().Get("conversation")
	if conv != "" && !validID(conv) {
		httpx.WriteError(w, r, s.log, httpx.Errorf(store.ErrInvalid, "conversation %q is not a conversation id", clip(conv)))
		return
	}
	if conv != "" {
		if _, err := s.d.Store.Conversation(conv); err != nil {
			httpx.WriteError(w, r, s.log, err)
			return
		}
	}
	if n := s.streams.Add(1); n > int64(s.d.MaxStreams) {
		s.streams.Add(-1)
		httpx.WriteError(w, r, s.log, httpx.Errorf(store.ErrUnavailable, "too many open event streams (%d)", s.d.MaxStreams))
		return
	}
	defer s.streams.Add(-1)
	s.hookShutdown(r)

	rc := http.NewResponseController(w)
	// The server's write timeout is meant for ordinary answers; a stream
	// lives until the client or the server goes away. Each write instead
	// gets its own deadline, so a client that stops reading (its socket
	// still open) fails the write and frees the stream, rather than
	// blocking this goroutine forever. The deadline also covers the idle
	// time until the next heartbeat (HTTP/2 resets a stream whose deadline
	// passes even between writes). A writer without deadlines (none of
	// ours) keeps the old behaviour.
	deadline := func() {
		_ = rc.SetWriteDeadline(time.Now().Add(s.d.Heartbeat + s.d.StreamWriteTimeout))
	}
	deadline()

	changes, stop := s.d.Store.Subscribe(256)
	defer stop()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n: connected\n\n"); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}

	beat := time.NewTicker(s.d.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.stopping:
			return // the server is shutting down; the page reconnects
		case <-beat.C:
			deadline()
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case c, ok := <-changes:
			if !ok {
				return // the store is closing
			}
			if conv != "" && !s.concerns(c, conv) {
				continue
			}
			b, err := json.Marshal(changeJSON{Kind: c.Kind, ConversationID: c.ConversationID, MessageID: c.MessageID})
			if err != nil {
				continue
			}
			deadline()
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// concerns reports whether a change belongs to conversation conv. Media
// changes name only their message, so that message is looked up.
func (s *Server) concerns(c store.Change, conv string) bool {
	if c.ConversationID != "" {
		return c.ConversationID == conv
	}
	if c.MessageID == "" {
		return false
	}
	m, err := s.d.Store.Message(c.MessageID)
	return err == nil && m.ConversationID == conv
}

// hookShutdown makes the http.Server serving r end every event stream when
// it shuts down. Shutdown waits for connections to go idle, which a stream
// never does: without this, one open status page held a graceful shutdown
// up until its deadline, and serve then exited with an error.
func (s *Server) hookShutdown(r *http.Request) {
	hs, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return
	}
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	if s.hooked[hs] {
		return
	}
	s.hooked[hs] = true
	hs.RegisterOnShutdown(func() { s.stopOnce.Do(func() { close(s.stopping) }) })
}
