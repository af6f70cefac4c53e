// Package webhook receives the providers' inbound posts: CTLive's IM
// channel protocol in Infobip's format (infobip.go) and CM.com's MO and
// status webhooks (cm.go). Each handler decodes a bounded body into a typed
// payload, validates all of it, writes it in one store call and answers only
// once that write is durable.
package webhook

import (
	"log/slog"

	"github.com/gorilla/mux"

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
}

// New makes the handler.
func New(d Deps) *Handler {
	if d.BodyLimit <= 0 {
		d.BodyLimit = 1 << 20
	}
	return &Handler{d: d, log: d.Log.With("component", "webhook")}
}

// Register mounts the inbound routes on r.
func (h *Handler) Register(r *mux.Router) {
	h.registerInfobip(r)
	h.registerCM(r)
}
