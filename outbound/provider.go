package outbound

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"imchannel/retry"
	"imchannel/store"
)

// SendError is a provider call that did not deliver. Retryable says whether
// trying again can help: timeouts, connection errors, 5xx and 429 can; any
// other 4xx, or a rejection in a 200 answer, cannot.
type SendError struct {
	Status     int // HTTP status, 0 for transport errors
	Retryable  bool
	RetryAfter time.Duration // what the provider asked for, if anything
	Reason     string
	Err        error
}

func (e *SendError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("provider answered %d: %s", e.Status, e.Reason)
	}
	return e.Reason
}

func (e *SendError) Unwrap() error { return e.Err }

// accepted is a provider's yes: its own id for the message (an alias for
// reports) and the status it gave.
type accepted struct {
	ProviderID string
	Event      store.Event
}

// sender delivers one message; infobip and cm implement it.
type sender interface {
	send(ctx context.Context, m *store.Message) (accepted, error)
}

const maxAnswer = 1 << 20

// content is the whatsApp object a message is sent with: the one the send
// API or the template endpoint stored, or, for a text queued by another
// part of the service (the CM welcome reply carries only its text and the
// request it answers), one made from the message itself.
func content(m *store.Message) (json.RawMessage, error) {
	if m.Outbound != nil && len(m.Outbound.WhatsApp) > 0 {
		return m.Outbound.WhatsApp, nil
	}
	if m.Type != store.TypeText || m.Text == "" {
		return nil, fmt.Errorf("message %s has no whatsApp content to send", m.ID)
	}
	w := whatsApp{Text: &m.Text}
	if m.Outbound != nil {
		w.ReplyTo = m.Outbound.ReplyToExternal
	}
	return json.Marshal(w)
}

// post sends a JSON body and classifies the outcome: a 2xx answer's body is
// returned; everything else is a *SendError.
func post(ctx context.Context, c *http.Client, url string, body []byte, auth func(*http.Request)) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, &SendError{Reason: fmt.Sprintf("bad provider request: %v", err), Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if auth != nil {
		auth(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // shutting down: not an attempt
		}
		reason := "connection error: " + err.Error()
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			reason = "timeout: " + err.Error()
		}
		return nil, &SendError{Retryable: true, Reason: reason, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// The provider took the message even if its answer is cut short.
		return b, nil
	}
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	se := &SendError{Status: resp.StatusCode, Reason: answerReason(b)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		se.Retryable = true
		se.RetryAfter = retry.After(resp.Header.Get("Retry-After"), time.Now())
	}
	return nil, se
}

// answerReason turns an error answer into one readable line.
func answerReason(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if s == "" {
		return "(empty answer)"
	}
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
