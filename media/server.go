package media

import (
	"bytes"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"imchannel/httpx"
	"imchannel/store"
)

// Server serves cached bytes: to agents at /media/{id}, and hosted media to
// providers at /media/public/{token}.
type Server struct {
	st    *store.Store
	log   *slog.Logger
	creds []httpx.Credential
	// writeIdle is how long a download may make no progress. While bytes
	// keep flowing the write deadline moves forward, so the server's
	// write_timeout bounds a stalled client, not the size of the file or
	// the speed of the agent's link.
	writeIdle time.Duration
}

// NewServer builds the media routes; creds are the agents' logins.
func NewServer(st *store.Store, log *slog.Logger, creds []httpx.Credential) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{st: st, log: log.With("component", "media"), creds: creds, writeIdle: 30 * time.Second}
}

// Register mounts the routes.
func (s *Server) Register(r *mux.Router) {
	r.HandleFunc("/media/public/{token}", s.servePublic).Methods(http.MethodGet, http.MethodHead)
	agents := func(h http.HandlerFunc) http.Handler { return httpx.RequireBasic(s.creds, h) }
	r.Handle("/media/{id}", agents(s.serveAgent)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/media/{id}/thumb", agents(s.serveThumb)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/media/{id}", agents(s.deleteAgent)).Methods(http.MethodDelete)
}

func (s *Server) serveAgent(w http.ResponseWriter, r *http.Request) {
	md, err := s.st.Media(mux.Vars(r)["id"])
	if err != nil {
		httpx.WriteError(w, r, s.log, err)
		return
	}
	s.serve(w, r, md)
}

// serveThumb answers GET /media/{id}/thumb: the preview made when the
// image was cached, or the image itself when it is small enough to be its
// own (or was cached before previews were made). Anything that is not a
// cached image has none: 404.
func (s *Server) serveThumb(w http.ResponseWriter, r *http.Request) {
	md, thumb, err := s.st.MediaThumb(mux.Vars(r)["id"])
	if err != nil {
		httpx.WriteError(w, r, s.log, err)
		return
	}
	if md.State != store.MediaCached || !strings.HasPrefix(md.ContentType, "image/") {
		httpx.WriteError(w, r, s.log, store.Errorf(store.ErrNotFound, "media %s has no preview (%s %s)", md.ID, md.State, md.ContentType))
		return
	}
	if thumb == nil {
		s.serve(w, r, md)
		return
	}
	h := w.Header()
	h.Set("Content-Type", md.Thumb)
	h.Set("ETag", `"`+md.SHA256+`-thumb"`)
	h.Set("Cache-Control", "private, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(thumb))
}

func (s *Server) servePublic(w http.ResponseWriter, r *http.Request) {
	md, err := s.st.MediaByToken(mux.Vars(r)["token"])
	if err != nil {
		httpx.WriteError(w, r, s.log, err)
		return
	}
	s.serve(w, r, md)
}

func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request) {
	if err := s.st.DeleteMedia(r.Context(), mux.Vars(r)["id"]); err != nil {
		httpx.WriteError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serve streams the bytes with http.ServeContent over a chunk reader, which
// gives Range (206/416), If-None-Match (304), HEAD and Content-Length.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, md *store.Media) {
	if md.State != store.MediaCached {
		httpx.WriteError(w, r, s.log, store.Errorf(store.ErrNotFound, "media %s is %s, no bytes to serve", md.ID, md.State))
		return
	}
	rd, err := s.st.OpenMedia(md)
	if err != nil {
		httpx.WriteError(w, r, s.log, err)
		return
	}
	h := w.Header()
	ct := md.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("ETag", `"`+md.SHA256+`"`)
	h.Set("Cache-Control", "private, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	// Customer-supplied bytes are served from our origin: never let them
	// run as a page (HTML, SVG) if a browser is pointed at them directly.
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	if d := disposition(md); d != "" {
		h.Set("Content-Disposition", d)
	}
	if rng := r.Header.Get("Range"); rng != "" {
		if rng, ok := byteRanges(rng, rd.Size()); ok {
			r.Header.Set("Range", rng)
		} else {
			r.Header.Del("Range")
		}
	}
	// Zero modtime: validation is by ETag only.
	http.ServeContent(&progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: s.writeIdle}, r, "", time.Time{}, rd)
}

// byteRanges prepares a Range header for http.ServeContent. A unit other
// than bytes is not ours to answer (RFC 9110 §14.2: ignore it, ok false;
// ServeContent would answer 416), and the unit is case-insensitive. A
// zero-length suffix ("-0"), which RFC 9110 makes unsatisfiable, becomes a
// range starting at the end: ServeContent answers "-0" with a 206 and an
// impossible "Content-Range: bytes N-(N-1)/N", but skips a range past the
// end and answers 416 when nothing else is left.
func byteRanges(rng string, size int64) (string, bool) {
	unit, spec, ok := strings.Cut(rng, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return "", false
	}
	parts := strings.Split(spec, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if len(p) > 1 && p[0] == '-' && strings.Trim(p[1:], "0") == "" {
			parts[i] = strconv.FormatInt(size, 10) + "-"
		}
	}
	return "bytes=" + strings.Join(parts, ","), true
}

// progressWriter pushes the connection's write deadline forward while the
// body keeps moving.
type progressWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
	last time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if now := time.Now(); now.Sub(p.last) > p.idle/8 {
		_ = p.rc.SetWriteDeadline(now.Add(p.idle))
		p.last = now
	}
	return p.ResponseWriter.Write(b)
}

func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// inlineTypes are shown in the browser; everything else (documents) is
// offered as a download under its file name. Active content (HTML, SVG)
// is never inline.
func inline(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "image/svg+xml":
		return false
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"):
		return true
	}
	return false
}

// disposition names the file for downloads, encoded per RFC 6266 so a
// name cannot break out of the header.
func disposition(md *store.Media) string {
	kind := "attachment"
	if inline(md.ContentType) {
		kind = "inline"
	}
	name := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return -1
		}
		return r
	}, md.FileName)
	if name == "" {
		if kind == "inline" {
			return ""
		}
		return kind
	}
	if d := mime.FormatMediaType(kind, map[string]string{"filename": name}); d != "" {
		return d
	}
	return kind
}
