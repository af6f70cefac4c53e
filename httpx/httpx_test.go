package httpx

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/stretchr/testify/require"

	"imchannel/store"
)

func TestStatusByKind(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{store.Errorf(store.ErrInvalid, "x"), 400},
		{store.Errorf(store.ErrNotFound, "x"), 404},
		{store.Errorf(store.ErrConflict, "x"), 409},
		{store.Errorf(store.ErrUnauthorized, "x"), 401},
		{store.Errorf(store.ErrTooLarge, "x"), 413},
		{fmt.Errorf("wrapped: %w", store.Errorf(store.ErrUnavailable, "x")), 503},
		{context.Canceled, 503},
		{fmt.Errorf("anything else"), 500},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Status(c.err), c.err.Error())
	}
}

func TestWriteErrorHidesInternalDetail(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, httptest.NewRequest("GET", "/", nil), nil, fmt.Errorf("open /secret/path: disk on fire"))
	require.Equal(t, 500, rec.Code)
	require.JSONEq(t, `{"error":"internal error"}`, rec.Body.String())

	rec = httptest.NewRecorder()
	WriteError(rec, httptest.NewRequest("GET", "/", nil), nil, store.Errorf(store.ErrUnavailable, "disk full"))
	require.Equal(t, 503, rec.Code)
	require.Equal(t, "5", rec.Header().Get("Retry-After"))
	require.Contains(t, rec.Body.String(), "disk full")
}

func TestDecodeJSON(t *testing.T) {
	type payload struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	cases := []struct {
		name, body string
		limit      int64
		status     int
		errHas     string
	}{
		{"ok", `{"name":"a","n":1}`, 100, 0, ""},
		{"empty", "  ", 100, 400, "empty"},
		{"syntax", `{"name":`, 100, 400, "malformed JSON"},
		{"wrong type", `{"n":"one"}`, 100, 400, "field n"},
		{"trailing", `{"n":1} {"n":2}`, 100, 400, "after the top-level value"},
		{"invalid utf-8", "{\"name\":\"\xff\"}", 100, 400, "UTF-8"},
		{"too large", `{"name":"` + strings.Repeat("a", 200) + `"}`, 100, 413, "larger than the limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/", strings.NewReader(c.body))
			var p payload
			err := DecodeJSON(httptest.NewRecorder(), req, c.limit, &p)
			if c.status == 0 {
				require.NoError(t, err)
				require.Equal(t, payload{"a", 1}, p)
				return
			}
			require.Error(t, err)
			require.Equal(t, c.status, Status(err))
			require.Contains(t, err.Error(), c.errHas)
		})
	}
}

func TestVerifier(t *testing.T) {
	v := NewVerifier([]Credential{{"alice", "s3cret"}, {"bob", "hunter2"}})
	try := func(user, pass string, set bool) bool {
		r := httptest.NewRequest("GET", "/", nil)
		if set {
			r.SetBasicAuth(user, pass)
		}
		return v.OK(r)
	}
	require.True(t, try("alice", "s3cret", true))
	require.True(t, try("bob", "hunter2", true))
	require.False(t, try("alice", "hunter2", true), "another user's password")
	require.False(t, try("alice", "s3cre", true), "a prefix")
	require.False(t, try("alice", "s3cret!", true), "a longer password")
	require.False(t, try("Alice", "s3cret", true), "user names are exact")
	require.False(t, try("", "", false), "no credentials")
	require.False(t, NewVerifier(nil).OK(httptest.NewRequest("GET", "/", nil)))
}

func TestRequireBasic(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	h := RequireBasic([]Credential{{"alice", "s3cret"}}, ok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	require.Equal(t, 401, rec.Code)
	require.NotEmpty(t, rec.Header().Get("WWW-Authenticate"))
	require.JSONEq(t, `{"error":"missing or wrong credentials"}`, rec.Body.String())

	req := httptest.NewRequest("GET", "/", nil)
	req.SetBasicAuth("alice", "s3cret")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, 204, rec.Code)

	// No credentials configured: the group is open (serve allows that on
	// loopback only).
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("GET", "/", nil)
	req.Host = "127.0.0.1:8080"
	RequireBasic(nil, ok).ServeHTTP(rec, req)
	require.Equal(t, 204, rec.Code)
}

// TestWriteErrorLogsNoPath: an internal error is logged with the route
// template, never the path, which can hold a customer's number or a
// capability token.
func TestWriteErrorLogsNoPath(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r := mux.NewRouter()
	fail := func(w http.ResponseWriter, r *http.Request) { WriteError(w, r, log, fmt.Errorf("disk on fire")) }
	r.HandleFunc("/api/v1/customers/{number}", fail)
	r.HandleFunc("/media/public/{token}", fail)
	for _, c := range []struct{ path, secret, route string }{
		{"/api/v1/customers/31612345678", "31612345678", "/api/v1/customers/{number}"},
		{"/media/public/tok-8c1f2e9a7b", "tok-8c1f2e9a7b", "/media/public/{token}"},
	} {
		logs.Reset()
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		require.Equal(t, 500, rec.Code)
		require.Contains(t, logs.String(), "disk on fire")
		require.Contains(t, logs.String(), "route="+c.route)
		require.NotContains(t, logs.String(), c.secret)
	}
}

func TestWithoutTrailingCommas(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a":1,}`, `{"a":1}`},
		{"{\"a\":[1,2,\n ],\n}", "{\"a\":[1,2\n ]\n}"},
		{`{"s":"x,}","t":"\",]"}`, `{"s":"x,}","t":"\",]"}`}, // commas inside strings stay
		{`{"a":1}`, `{"a":1}`},
	}
	for _, c := range cases {
		got, changed := WithoutTrailingCommas([]byte(c.in))
		require.Equal(t, c.want, string(got), c.in)
		require.Equal(t, c.in != c.want, changed, c.in)
	}
	// Unmarshal accepts them; anything else still malformed is still refused.
	var v map[string]any
	require.NoError(t, Unmarshal([]byte(`{"whatsApp": {"text": "hi"},}`), &v))
	require.Equal(t, map[string]any{"text": "hi"}, v["whatsApp"])
	require.Error(t, Unmarshal([]byte(`{"a":1,,}`), &v))
	require.Error(t, Unmarshal([]byte(`{,}`), &v))
}

// Every refusal is counted under one word per kind, whichever package
// answers it; docs/operations.md lists the same words (ops_metrics_test).
func TestReason(t *testing.T) {
	for _, c := range []struct {
		status int
		want   string
	}{
		{http.StatusBadRequest, ReasonInvalid},
		{http.StatusNotFound, ReasonInvalid},
		{http.StatusConflict, ReasonInvalid},
		{http.StatusUnauthorized, ReasonUnauthorized},
		{http.StatusRequestEntityTooLarge, ReasonTooLarge},
		{http.StatusServiceUnavailable, ReasonUnavailable},
		{http.StatusInternalServerError, ReasonInternal},
	} {
		if got := Reason(c.status); got != c.want {
			t.Errorf("Reason(%d) = %q, want %q", c.status, got, c.want)
		}
	}
}
