package httpx

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"imchannel/store"
)

// SmallBody is the most a request may carry to a route that answers before
// it knows who is asking (tokenByAkSk: about 60 bytes) or that takes no
// body at all (GET, DELETE): a client without credentials must not make
// the service hold more than this per connection.
const SmallBody = 4 << 10

// DeclaredTooLarge is a TooLarge error when r declares a body longer than
// limit, else nil. It reads nothing, and marks the answer to close the
// connection so that the server does not read the body either.
func DeclaredTooLarge(w http.ResponseWriter, r *http.Request, limit int64) error {
	if r.ContentLength <= limit {
		return nil
	}
	w.Header().Set("Connection", "close")
	return Errorf(store.ErrTooLarge, "body of %d bytes is larger than the limit of %d bytes", r.ContentLength, limit)
}

// LimitBody refuses, before h runs (and so before authentication), a
// request whose declared Content-Length is above limit; a body without a
// declared length is cut at limit by ReadBody.
func LimitBody(limit int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := DeclaredTooLarge(w, r, limit); err != nil {
			WriteError(w, r, nil, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// TakesBody reports whether a method carries a request body the routes
// read; the others are held to SmallBody and never read.
func TakesBody(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// NoBody refuses a request to a route that reads no body when it declares
// more than SmallBody.
func NoBody(w http.ResponseWriter, r *http.Request) bool {
	if TakesBody(r.Method) {
		return false
	}
	if err := DeclaredTooLarge(w, r, SmallBody); err != nil {
		WriteError(w, r, nil, err)
		return true
	}
	return false
}

// OpenGuard protects a route group that has no credentials configured
// (open mode, loopback only). The listener being loopback is not enough: a
// page in a browser on the same machine can reach it by DNS rebinding
// (attacker.example resolving to 127.0.0.1), or post to it cross-origin.
// So h runs only for requests whose Host is a loopback name or address, and
// a state-changing request must not come from another origin.
func OpenGuard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !LoopbackHost(r.Host) {
			WriteJSON(w, http.StatusMisdirectedRequest, map[string]string{
				"error": "open mode (no credentials configured) answers only requests addressed to a loopback host such as 127.0.0.1 or localhost; got Host " + strconv.Quote(r.Host)})
			return
		}
		if reason := crossOrigin(r); reason != "" {
			WriteJSON(w, http.StatusForbidden, map[string]string{"error": "open mode refuses this " + r.Method + ": " + reason})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// LoopbackHost reports whether a Host header names this machine's loopback
// interface: localhost (or a name under .localhost, RFC 6761), 127.0.0.0/8
// or ::1, with or without a port.
func LoopbackHost(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// crossOrigin says why a state-changing request comes from another origin
// than the service's own, or "". Requests without Origin (curl, providers)
// pass; browsers always send it on cross-origin writes.
func crossOrigin(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return ""
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return "the browser marks it cross-site"
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return ""
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host) {
		return "Origin " + strconv.Quote(o) + " is not this service's own (" + r.Host + ")"
	}
	return ""
}
