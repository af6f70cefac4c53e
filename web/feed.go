package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"imchannel/httpx"
	"imchannel/store"
)

// Bounds of the events feed.
const (
	defaultFeedLimit = 100
	maxFeedLimit     = 1000
	maxFeedWait      = 60 * time.Second
)

// MessageView is a message as the agents' API shows it; the relay's json
// format uses it too (main hands it over, so relay need not import web).
func MessageView(m *store.Message) any { return messageJSON(m) }

// GET /api/v1/events?after=CURSOR&limit=&wait=
//
// Every change in commit order after the cursor, each with its cursor,
// type, time, conversation and message as it is now. "next" is the cursor
// to ask after next time (the last event's, or after itself when there
// was none). wait (seconds, at most 60) long-polls when nothing is new. A
// cursor from before the retention window gets 410 with the oldest valid
// cursor in "oldest".
func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := store.ParseCursor(q.Get("after"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	limit, err := intParam(r, "limit", defaultFeedLimit, maxFeedLimit)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	wait, err := waitParam(q.Get("wait"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if wait > 0 {
		s.hookShutdown(r) // a shutdown answers waiting polls instead of waiting for them
		// The server's write timeout is meant for ordinary answers; a long
		// poll gets the wait on top.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 30*time.Second))
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		changed := s.d.Store.EventsChanged()
		page, err := s.d.Store.EventsAfter(after, limit)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		if page.Purged > after {
			httpx.WriteJSON(w, http.StatusGone, map[string]string{
				"error":  "cursor " + store.FormatCursor(after) + " is older than the events kept (events.retention); start again from oldest",
				"oldest": store.FormatCursor(page.Purged),
			})
			return
		}
		if after > page.Last {
			// Only a database put back from a backup has a log that ends
			// before a cursor it handed out: what came after is gone.
			httpx.WriteJSON(w, http.StatusGone, map[string]string{
				"error":  "cursor " + store.FormatCursor(after) + " is ahead of the events log, which ends at " + store.FormatCursor(page.Last) + " (was the database restored from a backup?); start again from oldest",
				"oldest": store.FormatCursor(page.Purged),
			})
			return
		}
		if len(page.Events) > 0 || wait == 0 {
			s.writeEvents(w, page, after)
			return
		}
		s.polls.Add(1)
		select {
		case <-changed:
		case <-deadline.C:
			wait = 0 // one last read, then answer whatever there is
		case <-r.Context().Done():
			s.polls.Add(-1)
			return
		case <-s.stopping:
			wait = 0
		}
		s.polls.Add(-1)
	}
}

func (s *Server) writeEvents(w http.ResponseWriter, page store.EventPage, after uint64) {
	out := struct {
		Events []store.EventEnvelope `json:"events"`
		Next   string                `json:"next"`
	}{Events: make([]store.EventEnvelope, 0, len(page.Events)), Next: store.FormatCursor(after)}
	for _, ev := range page.Events {
		var msg any
		if ev.Message != nil {
			msg = messageJSON(ev.Message)
		}
		out.Events = append(out.Events, ev.Envelope(msg))
		out.Next = ev.Cursor()
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// waitParam reads wait: whole seconds ("30") or a Go duration ("30s"),
// from 0 to 60 s.
func waitParam(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(strings.TrimSpace(v)); err != nil {
		return 0, httpx.Errorf(store.ErrInvalid, "wait must be seconds (0 to 60) or a duration like 30s, got %q", clip(v))
	}
	if d < 0 || d > maxFeedWait {
		return 0, httpx.Errorf(store.ErrInvalid, "wait must be between 0 and 60 seconds, got %q", clip(v))
	}
	return d, nil
}
