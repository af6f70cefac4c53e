// Package webhook receives the providers' inbound posts: CTLive's IM
// channel protocol in Infobip's format (infobip.go) and CM.com's MO and
// status webhooks (cm.go). Each handler decodes a bounded body into a typed
// payload, validates all of it, writes it in one store call and answers only
// once that write is durable.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"imchannel/config"
	"imchannel/httpx"
	"imchannel/metrics"
	"imchannel/store"
)

// Deps is what the webhook handlers use.
type Deps struct {
	Store   *store.Store
	Log     *slog.Logger
	Metrics *metrics.Metrics
	// Creds are the [inbound] credentials; empty means open (loopback only).
	Creds []httpx.Credential
	// BodyLimit caps a post's size (1 MiB by default).
	BodyLimit int64
	// WelcomeText, when set, is queued once per customer on a CM
	// request_welcome, through OutboundProvider.
	WelcomeText      string
	OutboundProvider string
}

// Handler serves the inbound routes.
type Handler struct {
	d   Deps
	log *slog.Logger
	// Each provider's counters, resolved once (nil without metrics).
	infobipCounts, cmCounts *counters
}

// counters are one provider's inbound counters.
type counters struct{ posts, messages, duplicates prometheus.Counter }

func (c *counters) count(messages, duplicates int) {
	if c == nil {
		return
	}
	c.posts.Inc()
	c.messages.Add(float64(messages))
	c.duplicates.Add(float64(duplicates))
}

// New makes the handler.
func New(d Deps) *Handler {
	if d.BodyLimit <= 0 {
		d.BodyLimit = config.Default().Limits.BodyBytes
	}
	h := &Handler{d: d, log: d.Log.With("component", "webhook")}
	if m := d.Metrics; m != nil {
		for _, p := range []struct {
			name string
			c    **counters
		}{{store.ProviderInfobip, &h.infobipCounts}, {store.ProviderCM, &h.cmCounts}} {
			*p.c = &counters{m.InboundPosts.WithLabelValues(p.name), m.InboundMessages.WithLabelValues(p.name),
				m.InboundDuplicates.WithLabelValues(p.name)}
		}
	}
	return h
}

// Register mounts the inbound routes on r.
func (h *Handler) Register(r *mux.Router) {
	h.registerInfobip(r)
	h.registerCM(r)
}

// ---- helpers shared by the provider handlers ----

// protect runs next only for requests carrying one of the [inbound]
// credentials (open when none are configured, like httpx.RequireBasic) and
// counts refusals under route.
// A declared body over the limit is refused first, unread.
func (h *Handler) protect(route string, next http.Handler) http.Handler {
	if len(h.d.Creds) == 0 {
		next = httpx.OpenGuard(next)
	} else {
		v := httpx.NewVerifier(h.d.Creds)
		authed := next
		next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !v.OK(r) {
				h.reject(route, httpx.ReasonUnauthorized)
				httpx.Unauthorized(w)
				return
			}
			authed.ServeHTTP(w, r)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := httpx.DeclaredTooLarge(w, r, h.d.BodyLimit); err != nil {
			h.fail(w, r, route, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// parsePost reads the bounded body and parses it; a refusal is answered
// and counted under route here, and ok is false.
func parsePost[T any](h *Handler, w http.ResponseWriter, r *http.Request, route string, parse func([]byte, time.Time) (T, error)) (v T, ok bool) {
	body, err := httpx.ReadBody(w, r, h.d.BodyLimit)
	if err == nil {
		if v, err = parse(body, h.d.Store.Now()); err == nil {
			return v, true
		}
	}
	h.fail(w, r, route, err)
	return v, false
}

// ingestPost stores a parsed post, its quarantined parts marked with the
// provider and route they came in on; a failure is answered here.
func (h *Handler) ingestPost(w http.ResponseWriter, r *http.Request, route, provider string, p store.Post) (store.PostResult, bool) {
	for i := range p.Quarantine {
		p.Quarantine[i].Provider, p.Quarantine[i].Route = provider, route
	}
	res, err := h.d.Store.IngestPost(r.Context(), p)
	if err != nil {
		h.fail(w, r, route, err)
		return res, false
	}
	return res, true
}

// fieldError names the field a decode failed on by its JSON path: path
// (where the decoded value sits, "" for the body) joined with the field
// encoding/json reports below it, and the kinds in JSON's words rather
// than Go's.
func fieldError(path string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := path
		if te.Field != "" {
			if field != "" {
				field += "."
			}
			field += te.Field
		}
		if field == "" {
			field = "body"
		}
		return httpx.Errorf(store.ErrInvalid, "%s: expected %s, got JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	if path == "" {
		return httpx.JSONError(err)
	}
	return httpx.Errorf(store.ErrInvalid, "%s: %s", path, strings.TrimPrefix(httpx.JSONError(err).Error(), "malformed JSON: "))
}

// decodeObject is httpx.Unmarshal with a value of the wrong type named by
// fieldError.
func decodeObject(body []byte, v any) error {
	err := httpx.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(json.Unmarshal(body, v), &te) {
		return fieldError("", te)
	}
	return err
}

// jsonKind names a Go kind as the JSON value it decodes from.
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

// fail answers err with its kind's status and counts the refusal.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, route string, err error) {
	reason := httpx.Reason(httpx.Status(err))
	h.reject(route, reason)
	httpx.WriteError(w, r, h.log, err)
}

func (h *Handler) reject(route, reason string) {
	if h.d.Metrics != nil {
		h.d.Metrics.Rejections.WithLabelValues(route, reason).Inc()
	}
}

// Header values shared by every answer; net/http never modifies them.
var (
	jsonContentType = []string{"application/json; charset=utf-8"}
	noSniff         = []string{"nosniff"}
)

// countQuarantine counts quarantined items by provider.
func (h *Handler) countQuarantine(provider string, q []store.Quarantined) {
	if h.d.Metrics != nil && len(q) > 0 {
		h.d.Metrics.Quarantined.WithLabelValues(provider).Add(float64(len(q)))
	}
}

// writeAccepted is the answer to a post whose store write is durable:
// accepted items, resent ones recognised, and items quarantined.
func writeAccepted(w http.ResponseWriter, accepted, duplicates, quarantined int) {
	// Formatted by hand: this answer is on every webhook's hot path.
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(http.StatusOK)
	b := make([]byte, 0, 64)
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(accepted), 10)
	b = append(b, `,"duplicates":`...)
	b = strconv.AppendInt(b, int64(duplicates), 10)
	b = append(b, `,"quarantined":`...)
	b = strconv.AppendInt(b, int64(quarantined), 10)
	_, _ = w.Write(append(b, "}\n"...))
}

// timeLayouts are the provider timestamp shapes accepted: Infobip's
// 2019-07-19T11:21:27.861+0000 (not RFC 3339: no colon in the offset), RFC
// 3339 (+02:00 or Z), an hour-only offset (+02) as Infobip's clients print
// it, and no zone at all, which is UTC. Fractional seconds of any length
// (milliseconds, microseconds, …) are optional in all of them.
var timeLayouts = []string{
	"2006-01-02T15:04:05Z0700", time.RFC3339, "2006-01-02T15:04:05Z07", "2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z0700", "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05",
}

// parseTime reads a provider timestamp into UTC.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			if !storableTime(t.UTC()) {
				return time.Time{}, fmt.Errorf("%q is outside the years 0000 to 9999 in UTC", s)
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp like 2019-07-19T11:21:27.861+0000 or RFC 3339", s)
}

// storableTime reports whether t (in UTC) can be stored: the store encodes
// times as RFC 3339, which has four-digit years, so an offset that pushes
// 9999-12-31 or 0000-01-01 over the edge would fail the whole write.
func storableTime(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

// Bounds shared by both providers' external ids and numbers.
const (
	// maxRefLen bounds external ids (messageId, reference): real ones are
	// UUIDs or wamids, far shorter, and a key must stay well under bbolt's
	// 32 KiB limit.
	maxRefLen = 512
	// maxNumberDigits bounds phone numbers: E.164 has at most 15 digits.
	maxNumberDigits = 20
)

// refProblem says what makes s unusable as an external id, or "". Control
// characters are refused because the store keys ids after a NUL separator:
// "abc\x00…" would reach what is parked for "abc".
func refProblem(s string) string {
	switch {
	case len(s) > maxRefLen:
		return fmt.Sprintf("is longer than %d bytes", maxRefLen)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "contains control characters"
	}
	return ""
}
