// Package httpx holds the small HTTP pieces every handler package shares:
// JSON answers, the error-kind → status mapping with masking and logging
// of internal errors, Retry-After and WWW-Authenticate, the rejection
// reasons counted in imchannel_rejections_total, bounded JSON decoding
// and constant-time credential checks.
package httpx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"imchannel/store"
)

// WriteJSON answers v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Status maps an error kind to an HTTP status.
func Status(err error) int {
	switch {
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, store.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, store.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// WriteError answers {"error": …} with the status of err's kind. Internal
// errors are logged here, once, and their detail is not shown.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, msg := Masked(r, log, err)
	if status == http.StatusServiceUnavailable {
		RetryLater(w)
	}
	if status == http.StatusUnauthorized {
		Challenge(w, "Basic")
	}
	WriteJSON(w, status, map[string]string{"error": msg})
}

// Masked is what a client is told of err: the status of its kind and its
// message, except that an internal error is logged here, once, and shown
// as "internal error" only. Every answer that reports an error goes
// through it, whatever its body's shape.
func Masked(r *http.Request, log *slog.Logger, err error) (int, string) {
	status := Status(err)
	if status != http.StatusInternalServerError {
		return status, err.Error()
	}
	if log != nil {
		// The route template, never the path: paths carry customer
		// numbers (/api/v1/customers/{number}) and capability tokens
		// (/media/public/{token}).
		log.Error("internal error", "method", r.Method, "route", RouteOf(r), "err", err)
	}
	return status, "internal error"
}

// RetryLater tells a client refused with 503 when to try again.
func RetryLater(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
}

// Challenge names the credentials a 401 wants: "Basic" (webhooks, agents)
// or "Bearer" (the send API).
func Challenge(w http.ResponseWriter, scheme string) {
	w.Header().Set("WWW-Authenticate", scheme+` realm="imchannel"`)
}

// The reason label of imchannel_rejections_total: one word per kind of
// refusal, whichever package refuses.
const (
	ReasonInvalid      = "invalid"
	ReasonTooLarge     = "too_large"
	ReasonUnauthorized = "unauthorized"
	ReasonUnavailable  = "unavailable"
	ReasonInternal     = "internal"
)

// Reason is the rejection reason of an error answer's status.
func Reason(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return ReasonUnauthorized
	case status == http.StatusRequestEntityTooLarge:
		return ReasonTooLarge
	case status == http.StatusServiceUnavailable:
		return ReasonUnavailable
	case status >= 400 && status < 500:
		return ReasonInvalid
	}
	return ReasonInternal
}

// RouteOf is the mux route template r matched, or "unmatched": what logs
// show instead of a path that may hold a number or a capability token.
func RouteOf(r *http.Request) string {
	if rt := mux.CurrentRoute(r); rt != nil {
		if t, err := rt.GetPathTemplate(); err == nil {
			return t
		}
	}
	return "unmatched"
}

// Errorf is store.Errorf, for handlers.
func Errorf(kind error, format string, args ...any) error { return store.Errorf(kind, format, args...) }

// ReadBody reads at most limit bytes of r's body; a longer body is a
// TooLarge error, invalid UTF-8 is Invalid.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if err := DeclaredTooLarge(w, r, limit); err != nil {
		return nil, err
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	b, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			// Close after the 413: else the server drains up to 256 KiB
			// more of the body before answering (MaxBytesReader cannot
			// tell it through the logging wrapper), and a client that
			// holds the rest back waits for its answer until read_timeout.
			w.Header().Set("Connection", "close")
			return nil, Errorf(store.ErrTooLarge, "body is larger than the limit of %d bytes", limit)
		}
		return nil, Errorf(store.ErrInvalid, "reading body: %v", err)
	}
	return b, nil
}

// DecodeJSON reads a bounded JSON body into v. Errors name what was wrong:
// size, syntax (with offset), a field of the wrong type, trailing data.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	b, err := ReadBody(w, r, limit)
	if err != nil {
		return err
	}
	return Unmarshal(b, v)
}

// Unmarshal decodes one JSON value with readable errors.
func Unmarshal(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return Errorf(store.ErrInvalid, "body is empty; expected JSON")
	}
	if !utf8.Valid(b) {
		return Errorf(store.ErrInvalid, "body is not valid UTF-8")
	}
	if _, err := DecodeTolerant(b, func(x []byte) error { return decodeStrict(x, v) }); err != nil {
		return JSONError(err)
	}
	return nil
}

// DecodeTolerant runs decode on b and, when that fails on syntax alone,
// once more on b without trailing commas (see WithoutTrailingCommas). It
// returns the body that decoded, for callers that keep parts of it raw, or
// b and the first error.
func DecodeTolerant(b []byte, decode func([]byte) error) ([]byte, error) {
	err := decode(b)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if fixed, ok := WithoutTrailingCommas(b); ok && decode(fixed) == nil {
			return fixed, nil
		}
	}
	return b, err
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return Errorf(store.ErrInvalid, "malformed JSON: unexpected data after the top-level value")
	}
	return nil
}

// WithoutTrailingCommas removes every comma that stands, outside a string,
// right before a closing } or ] (white space between them allowed), and
// reports whether it removed any. CTLive's own protocol page prints its
// examples with such commas, so senders built from it may send them; a
// body is only ever retried this way after strict decoding failed.
func WithoutTrailingCommas(b []byte) ([]byte, bool) {
	var out []byte
	last, changed := 0, false // b[last:] is not copied to out yet
	inString, escaped := false, false
	var prev byte // the last byte outside white space, strings as '"'
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString, prev = false, '"'
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			continue
		case ' ', '\t', '\n', '\r':
			continue
		}
		after := prev
		prev = c
		// Only a comma after a value is trailing: "{,}" and ",," stay errors.
		if c != ',' || after == 0 || after == '{' || after == '[' || after == ',' {
			continue
		}
		j := i + 1
		for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
			j++
		}
		if j < len(b) && (b[j] == '}' || b[j] == ']') {
			out = append(out, b[last:i]...)
			last, changed = i+1, true
		}
	}
	if !changed {
		return b, false
	}
	return append(out, b[last:]...), true
}

// JSONError turns an encoding/json error into an Invalid error naming the
// field or offset.
func JSONError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return Errorf(store.ErrInvalid, "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return Errorf(store.ErrInvalid, "field %s: expected %s, got JSON %s", field, te.Type, te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return Errorf(store.ErrInvalid, "malformed JSON: unexpected end of body")
	}
	return Errorf(store.ErrInvalid, "malformed JSON: %v", err)
}

// Equal compares two secrets in constant time (hashing first so that the
// lengths do not leak either).
func Equal(got, want string) bool {
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// Credential is a user and password pair.
type Credential struct{ User, Password string }

// BasicOK reports whether r carries HTTP Basic credentials matching one of
// creds. Every candidate is compared, so timing does not tell which user exists.
func BasicOK(r *http.Request, creds []Credential) bool { return NewVerifier(creds).OK(r) }

// Verifier checks HTTP Basic credentials against a fixed set whose hashes
// are computed once, so a request costs two hashes however many logins
// there are.
type Verifier struct {
	users, passwords [][sha256.Size]byte
}

// NewVerifier hashes creds for OK.
func NewVerifier(creds []Credential) *Verifier {
	v := &Verifier{}
	for _, c := range creds {
		v.users = append(v.users, sha256.Sum256([]byte(c.User)))
		v.passwords = append(v.passwords, sha256.Sum256([]byte(c.Password)))
	}
	return v
}

// OK reports whether r carries one of the credentials, comparing every
// candidate in constant time.
func (v *Verifier) OK(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	hu, hp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	match := 0
	for i := range v.users {
		match |= subtle.ConstantTimeCompare(hu[:], v.users[i][:]) & subtle.ConstantTimeCompare(hp[:], v.passwords[i][:])
	}
	return match == 1
}

// RequireBasic wraps h so that it runs only for requests with one of creds.
// With no creds configured the group is open (loopback-only; serve refuses
// other addresses, and OpenGuard refuses other Host names and origins),
// which is how `go run . serve` works out of the box.
func RequireBasic(creds []Credential, h http.Handler) http.Handler {
	if len(creds) == 0 {
		return OpenGuard(h)
	}
	v := NewVerifier(creds)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !v.OK(r) {
			Unauthorized(w)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Unauthorized answers 401 with a JSON error.
func Unauthorized(w http.ResponseWriter) {
	Challenge(w, "Basic")
	WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong credentials"})
}

// MethodNotAllowed and NotFound answer in JSON.
func MethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
}

// NotFound answers 404 in JSON.
func NotFound(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no route " + r.URL.Path})
}
