// Package web serves the agents' side of imchannel: the status page
// (server-rendered html/template pages from embed.FS, pages.go), the JSON
// API under /api/v1 (api.go) and a Server-Sent Events stream of store
// changes (sse.go). Every route needs the [[agents]] credentials.
package web

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"

	"imchannel/httpx"
	"imchannel/store"
)

// Deps is what the agents' handlers use.
type Deps struct {
	Store *store.Store
	Log   *slog.Logger
	// Creds are the [[agents]] logins; empty means open (loopback only).
	Creds []httpx.Credential
	// LastBackup, when set, reports the time and size of the newest
	// checked backup (scheduled, or backup --url); a zero time shows as
	// "never".
	LastBackup func() (time.Time, int64)
	// Relays, when set, reports each relay target's progress, lag and
	// quarantined events for the status page.
	Relays func() []store.RelayStatus
	// LastDownload, when set, reports the last whole /admin/backup
	// download, which nobody is known to have kept; shown apart.
	LastDownload func() (time.Time, int64)
	// MaxStreams caps concurrent SSE streams (default 200).
	MaxStreams int
	// Heartbeat is the SSE keep-alive interval (default 20s).
	Heartbeat time.Duration
	// StreamWriteTimeout bounds each write to an SSE stream (default 30s):
	// a client that stops reading is dropped instead of holding a stream
	// slot and a goroutine forever.
	StreamWriteTimeout time.Duration
	// Location is the zone whose day "messages today" counts (web.timezone;
	// default UTC).
	Location *time.Location
	// DefaultRegion ([numbers] default_region, e.g. "DE") reads numbers
	// typed in national format; empty: digits only.
	DefaultRegion string
}

// Server serves the status page, /api/v1 and the event stream.
type Server struct {
	d       Deps
	log     *slog.Logger
	pages   *pages
	frags   *fragments
	streams atomic.Int64
	// polls counts feed requests waiting for events (tests wait on it).
	polls atomic.Int64
	gzip  func(http.Handler) http.HandlerFunc

	// Event streams never go idle, so http.Server.Shutdown would wait
	// for them until its deadline; the first stream registers closing
	// them with the server it runs in (see hookShutdown).
	hookMu   sync.Mutex
	hooked   map[*http.Server]bool
	stopOnce sync.Once
	stopping chan struct{}
}

// New parses the templates and hashes the static files; a broken template
// fails here, at start, never on a request.
func New(d Deps) (*Server, error) {
	if d.Store == nil {
		return nil, fmt.Errorf("web: no store")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.MaxStreams <= 0 {
		d.MaxStreams = 200
	}
	if d.Heartbeat <= 0 {
		d.Heartbeat = 20 * time.Second
	}
	if d.Location == nil {
		d.Location = time.UTC
	}
	if d.StreamWriteTimeout <= 0 {
		d.StreamWriteTimeout = 30 * time.Second
	}
	p, err := newPages()
	if err != nil {
		return nil, err
	}
	// Fastest gzip: most of the saving for a fraction of the CPU. An SSE
	// flush flushes the compressor too, so events still go out at once.
	gz, err := gzhttp.NewWrapper(gzhttp.EnableZstd(false), gzhttp.CompressionLevel(gzip.BestSpeed))
	if err != nil {
		return nil, fmt.Errorf("web: gzip: %w", err)
	}
	return &Server{d: d, log: d.Log.With("component", "web"), pages: p, frags: newFragments(20000), gzip: gz,
		hooked: map[*http.Server]bool{}, stopping: make(chan struct{})}, nil
}

// Must is New for main: the templates and static files are embedded at
// build time, so an error here is a bug the tests catch, and serve stops
// before listening.
func Must(s *Server, err error) *Server {
	if err != nil {
		panic(err)
	}
	return s
}

// Register mounts the agents' routes on r, each behind the agent
// credentials.
func (s *Server) Register(r *mux.Router) {
	// Pages, JSON and the event stream are compressed (gzip, for clients
	// that accept it): a thread page is ~150 KiB of repetitive markup.
	// Media is not: its own routes serve it as stored.
	auth := func(h http.HandlerFunc) http.Handler { return s.gzip(httpx.RequireBasic(s.d.Creds, secure(h))) }
	get := []string{http.MethodGet, http.MethodHead}

	r.Handle("/", auth(s.indexPage)).Methods(get...)
	r.Handle("/conversations/{id}", auth(s.threadPage)).Methods(get...)
	r.Handle("/conversations/{id}/transcript", auth(s.transcriptPage)).Methods(get...)
	r.Handle("/fragments/messages/{id}", auth(s.messageFragment)).Methods(get...)
	r.Handle("/static/{hash}/{name}", auth(s.static)).Methods(get...)
	r.Handle("/events", auth(s.events)).Methods(http.MethodGet)

	r.Handle("/api/v1/conversations", auth(s.apiConversations)).Methods(get...)
	r.Handle("/api/v1/conversations/{id}/messages", auth(s.apiConversationMessages)).Methods(get...)
	r.Handle("/api/v1/conversations/{id}/export", auth(s.apiExport)).Methods(get...)
	r.Handle("/api/v1/conversations/{id}", auth(s.apiConversation)).Methods(get...)
	r.Handle("/api/v1/messages", auth(s.apiMessages)).Methods(get...)
	r.Handle("/api/v1/messages/{id}", auth(s.apiMessage)).Methods(get...)
	r.Handle("/api/v1/quarantine", auth(s.apiQuarantine)).Methods(get...)
	r.Handle("/api/v1/events", auth(s.apiEvents)).Methods(get...)
}

// csp keeps every page to its own origin: no inline script, no third-party
// content, images and media only from /media.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; " +
	"connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// secure sets the headers every agents' answer carries: nothing here may be
// cached by a shared cache, framed or sniffed.
func secure(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h(w, r)
	}
}
