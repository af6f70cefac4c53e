package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"imchannel/config"
	"imchannel/retry"
	"imchannel/store"
)

// worker delivers one target's events.
type worker struct {
	r      *Relay
	cfg    config.Relay
	client *http.Client
	log    *slog.Logger

	state store.RelayState
	// done holds events past the cursor already handled (sent while an
	// earlier conversation waited for its media). It is not kept across
	// restarts: those events are sent again, which at-least-once allows.
	done map[uint64]bool
}

// item is one event ready to post.
type item struct {
	ev   *store.EventRecord
	body json.RawMessage // one result (infobip) or one envelope (json)
}

// postError is a failed post; retry says whether trying again can help.
type postError struct {
	status int // 0: no answer (connection refused, timeout)
	retry  bool
	reason string
}

func (e *postError) Error() string { return e.reason }

func (w *worker) run(ctx context.Context) {
	for {
		st, err := w.r.d.Store.RelayState(w.cfg.Name)
		if err == nil {
			w.state = st
			break
		}
		w.log.Error("read relay state", "err", err)
		if !retry.Sleep(ctx, w.r.d.MinBackoff) {
			return
		}
	}
	w.log.Info("relay target started", "format", w.cfg.Format, "cursor", w.state.Cursor,
		"delivered", w.state.Delivered, "quarantined", w.state.Quarantined)
	// A restart resumes the backoff where it was, so a restart loop cannot
	// hammer a target that is down.
	if wait := w.state.NextAttempt.Sub(w.r.d.Store.Now()); wait > 0 {
		if !retry.Sleep(ctx, min(wait, w.cfg.MaxBackoff.Duration)) {
			return
		}
	}
	for ctx.Err() == nil {
		changed := w.r.d.Store.EventsChanged()
		progressed, holding, sent, retryIn := w.round(ctx)
		if retryIn > 0 {
			if !retry.Sleep(ctx, retryIn) {
				return
			}
			continue
		}
		if progressed {
			if sent > 0 && sent < maxBatch {
				// A short batch means the log is being written right now:
				// a moment's wait lets the next post carry more, which
				// costs ingest far less CPU than many small posts.
				if !retry.Sleep(ctx, linger) {
					return
				}
			}
			continue
		}
		idle := 30 * time.Second
		if holding {
			idle = 250 * time.Millisecond // media is being fetched: look again soon
		}
		t := time.NewTimer(idle)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// round reads the log after the cursor, posts what is ready and moves the
// cursor. It answers whether anything moved, whether a conversation waits
// for media, and how long to wait before retrying a failed post.
func (w *worker) round(ctx context.Context) (progressed, holding bool, sent int, retryIn time.Duration) {
	st := w.r.d.Store
	prev := w.state
	held := map[string]bool{}
	var batch []item
	var scanned []uint64 // in log order, for moving the cursor
	after := w.state.Cursor
scan:
	for len(scanned) < window {
		// Read about what the batch still has room for: every event read
		// costs a decode, and a full batch ends the round.
		limit := max(min(pageSize, maxBatch-len(batch)+8), 16)
		page, err := st.EventsAfter(after, limit)
		if err != nil {
			w.log.Error("read events", "err", err)
			return false, false, 0, w.r.d.MinBackoff
		}
		if page.Purged > w.state.Cursor {
			// Retention removed events this target never got: say so and go on.
			w.log.Error("events expired before this target got them", "skipped", page.Purged-w.state.Cursor)
			w.state.Skipped += page.Purged - w.state.Cursor
			w.state.Cursor = page.Purged
			clear(w.done)
			after = page.Purged
			continue
		}
		for _, ev := range page.Events {
			scanned = append(scanned, ev.Seq)
			after = ev.Seq
			if w.done[ev.Seq] {
				continue
			}
			if ev.ConversationID != "" && held[ev.ConversationID] {
				continue
			}
			body, ready, err := w.build(ctx, ev)
			if err != nil {
				w.log.Error("prepare event", "seq", ev.Seq, "err", err)
				return false, false, 0, w.r.d.MinBackoff
			}
			if !ready {
				held[ev.ConversationID], holding = true, true
				continue
			}
			if body == nil {
				w.done[ev.Seq] = true
				continue
			}
			batch = append(batch, item{ev: ev, body: body})
			if len(batch) == maxBatch {
				break scan
			}
		}
		if len(page.Events) < limit {
			break
		}
	}
	var quarantined []store.RelayQuarantined
	if len(batch) > 0 {
		var perr *postError
		quarantined, perr = w.deliver(ctx, batch)
		if perr != nil {
			if ctx.Err() != nil {
				return false, false, 0, 0
			}
			w.fail(perr)
			retryIn = w.backoff()
			w.state.NextAttempt = st.Now().Add(retryIn)
		}
	}
	for _, seq := range scanned {
		if !w.done[seq] {
			break
		}
		delete(w.done, seq)
		w.state.Cursor = seq
	}
	if w.state != prev || len(quarantined) > 0 {
		// Saved even while the context ends: what was delivered is
		// recorded, so a restart resends as little as possible.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := st.SaveRelayState(sctx, w.cfg.Name, w.state, quarantined...)
		cancel()
		if err != nil {
			w.log.Error("save relay state", "err", err)
			return false, holding, 0, max(retryIn, w.r.d.MinBackoff)
		}
	}
	return w.state.Cursor != prev.Cursor || len(batch) > 0, holding, len(batch), retryIn
}

// deliver posts a batch. On a refusal (4xx) of a batch of several it posts
// them one by one, so only the event refused is quarantined. It stops at
// the first retryable failure; what got through is marked done.
func (w *worker) deliver(ctx context.Context, batch []item) ([]store.RelayQuarantined, *postError) {
	err := w.post(ctx, batch)
	if err == nil {
		w.succeeded(batch)
		return nil, nil
	}
	if err.retry {
		return nil, err
	}
	var q []store.RelayQuarantined
	if len(batch) == 1 {
		return append(q, w.quarantine(batch[0], err)), nil
	}
	for _, it := range batch {
		one := []item{it}
		if err := w.post(ctx, one); err == nil {
			w.succeeded(one)
		} else if err.retry {
			return q, err
		} else {
			q = append(q, w.quarantine(it, err))
		}
	}
	return q, nil
}

func (w *worker) succeeded(batch []item) {
	for _, it := range batch {
		w.done[it.ev.Seq] = true
	}
	w.state.Delivered += uint64(len(batch))
	w.state.Consecutive = 0
	w.state.NextAttempt = time.Time{}
	w.state.LastSuccess = w.r.d.Store.Now().UTC()
	if m := w.r.d.Metrics; m != nil {
		m.RelayDelivered.WithLabelValues(w.cfg.Name).Add(float64(len(batch)))
	}
}

func (w *worker) quarantine(it item, err *postError) store.RelayQuarantined {
	w.done[it.ev.Seq] = true
	w.state.Quarantined++
	w.log.Warn("event refused by the target, quarantined", "seq", it.ev.Seq, "type", it.ev.Type, "status", err.status)
	if m := w.r.d.Metrics; m != nil {
		m.RelayFailures.WithLabelValues(w.cfg.Name, "quarantined").Inc()
	}
	q := store.RelayQuarantined{Seq: it.ev.Seq, Type: it.ev.Type, ConversationID: it.ev.ConversationID,
		MessageID: it.ev.MessageID, HTTPStatus: err.status, Reason: err.reason, At: w.r.d.Store.Now().UTC()}
	if it.ev.Message != nil {
		q.ExternalID = it.ev.Message.ExternalID
	}
	return q
}

func (w *worker) fail(err *postError) {
	w.state.Failures++
	w.state.Consecutive++
	w.state.LastError = err.reason
	w.state.LastErrorAt = w.r.d.Store.Now().UTC()
	w.log.Warn("relay post failed, will retry", "err", err.reason, "attempt", w.state.Consecutive)
	if m := w.r.d.Metrics; m != nil {
		m.RelayFailures.WithLabelValues(w.cfg.Name, "retry").Inc()
	}
}

// backoff doubles from MinBackoff up to max_backoff with the number of
// consecutive failures (retry.Backoff).
func (w *worker) backoff() time.Duration {
	return retry.Backoff{Min: w.r.d.MinBackoff, Max: w.cfg.MaxBackoff.Duration}.Wait(w.state.Consecutive)
}

// post sends one body and classifies the answer: 2xx is done; 401, 403,
// 404, 408, 429 and 5xx (the target, not the event, is wrong) and no answer
// are retried; any other 4xx refuses the event.
func (w *worker) post(ctx context.Context, batch []item) *postError {
	body, err := w.encode(batch)
	if err != nil {
		return &postError{reason: fmt.Sprintf("encode: %v", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return &postError{reason: fmt.Sprintf("request: %v", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "imchannel-relay")
	if w.cfg.BasicUser != "" {
		req.SetBasicAuth(w.cfg.BasicUser, w.cfg.BasicPassword)
	}
	if w.cfg.HMACSecret != "" {
		now := time.Now()
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(HeaderSignature, Sign(w.cfg.HMACSecret, now, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		reason := "no answer: " + err.Error()
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			reason = fmt.Sprintf("no answer within %s", w.cfg.Timeout.Duration)
		}
		return &postError{retry: true, reason: reason}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	reason := fmt.Sprintf("HTTP %d", resp.StatusCode)
	if s := bytes.TrimSpace(snippet); len(s) > 0 {
		reason += ": " + string(s)
	}
	switch c := resp.StatusCode; {
	case c == 401, c == 403, c == 404, c == 408, c == 429, c >= 500, c < 200, c >= 300 && c < 400:
		return &postError{status: c, retry: true, reason: reason}
	}
	return &postError{status: resp.StatusCode, reason: reason}
}

// encode wraps the batch in the format's body. The parts are json.Marshal's
// own output, so they are joined as they are: marshalling them again would
// validate and compact every byte a second time.
func (w *worker) encode(batch []item) ([]byte, error) {
	key := `{"results":[`
	if w.cfg.Format == "json" {
		key = `{"events":[`
	}
	n := len(key) + 2 + len(batch)
	for _, it := range batch {
		n += len(it.body)
	}
	out := make([]byte, 0, n)
	out = append(out, key...)
	for i, it := range batch {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, it.body...)
	}
	return append(out, "]}"...), nil
}

// build turns an event into what the target gets: nil for an event the
// format has no place for (then it is only passed over), not ready while an
// inbound message's media is still being fetched (infobip format, which
// CTLive fetches once).
func (w *worker) build(ctx context.Context, ev *store.EventRecord) (json.RawMessage, bool, error) {
	if w.cfg.Format == "json" {
		return w.buildJSON(ctx, ev)
	}
	m := ev.Message
	if m == nil {
		return nil, true, nil // erased or purged since
	}
	switch ev.Type {
	case store.EventMessageReceived:
		if m.Direction != store.Inbound || m.Deleted || m.Type == store.TypeWelcomeRequest {
			return nil, true, nil
		}
		url, ready, err := w.mediaURL(ctx, ev, m)
		if err != nil || !ready {
			return nil, ready, err
		}
		paired, err := w.paired(m)
		if err != nil {
			return nil, false, err
		}
		b, err := json.Marshal(inboundResult(m, url, paired))
		return b, true, err
	case store.EventMessageStatus:
		if m.Direction != store.Outbound || ev.Status == nil {
			return nil, true, nil
		}
		r, ok := reportResult(m, ev.Status)
		if !ok {
			return nil, true, nil
		}
		b, err := json.Marshal(r)
		return b, true, err
	}
	return nil, true, nil
}

// mediaURL is where the target fetches an inbound message's media: our own
// capability URL once the bytes are cached; the provider's URL when the
// fetch was given up (too large, failed) or has not finished within
// MediaWait; not ready before that.
func (w *worker) mediaURL(ctx context.Context, ev *store.EventRecord, m *store.Message) (string, bool, error) {
	md := m.Media
	if md == nil || md.ID == "" {
		return "", true, nil
	}
	switch md.State {
	case store.MediaCached:
		tok, err := w.r.d.Store.PublishMedia(ctx, md.ID)
		if err != nil {
			return "", false, err
		}
		return w.r.d.PublicURL + "/media/public/" + tok, true, nil
	case store.MediaPending:
		if w.r.d.Store.Now().Sub(ev.At) < w.r.d.MediaWait {
			return "", false, nil
		}
	}
	return md.SourceURL, true, nil
}

// paired is the messageId, as CTLive knows it, of the message m quotes:
// the stored message's external id when it is in the store (for a reply to
// an agent's message, the id CTLive sent it under), else the provider's.
func (w *worker) paired(m *store.Message) (string, error) {
	if m.ReplyTo == nil {
		return "", nil
	}
	if m.ReplyTo.ID != "" {
		q, err := w.r.d.Store.Message(m.ReplyTo.ID)
		if err == nil {
			return q.ExternalID, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	return m.ReplyTo.ExternalID, nil
}

// buildJSON is the json format: every event, in the feed's envelope, with
// the message as the agents' API shows it and media at its public URL.
func (w *worker) buildJSON(ctx context.Context, ev *store.EventRecord) (json.RawMessage, bool, error) {
	var view any
	if m := ev.Message; m != nil && w.r.d.MessageJSON != nil {
		cp := *m
		if md := m.Media; md != nil {
			mc := *md
			mc.URL = ""
			if md.State == store.MediaCached {
				tok, err := w.r.d.Store.PublishMedia(ctx, md.ID)
				if err != nil {
					return nil, false, err
				}
				mc.URL = w.r.d.PublicURL + "/media/public/" + tok
			}
			cp.Media = &mc
		}
		view = w.r.d.MessageJSON(&cp)
	}
	b, err := json.Marshal(ev.Envelope(view))
	return b, true, err
}
