package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/stretchr/testify/require"

	"imchannel/httpx"
	"imchannel/store"
)

const (
	agentUser = "alice"
	agentPass = "s3cret"
	bizNumber = "1234"
)

// env is a real store in a temp dir behind the real router.
type env struct {
	t   *testing.T
	st  *store.Store
	srv *httptest.Server
	w   *Server
}

type envOpt func(*Deps)

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "imchannel.db"), store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	d := Deps{Store: st, Creds: []httpx.Credential{{User: agentUser, Password: agentPass}}}
	for _, o := range opts {
		o(&d)
	}
	w, err := New(d)
	require.NoError(t, err)
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(httpx.NotFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(httpx.MethodNotAllowed)
	w.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, srv: srv, w: w}
}

// get requests path with the agent's credentials.
func (e *env) get(path string) (*http.Response, string) {
	e.t.Helper()
	return e.do(path, agentUser, agentPass)
}

func (e *env) do(path, user, pass string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	require.NoError(e.t, err)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, string(b)
}

// getJSON requests path, requires status and decodes the body into v.
func (e *env) getJSON(path string, status int, v any) {
	e.t.Helper()
	resp, body := e.get(path)
	require.Equal(e.t, status, resp.StatusCode, "GET %s: %s", path, body)
	require.Contains(e.t, resp.Header.Get("Content-Type"), "application/json")
	require.NoError(e.t, json.Unmarshal([]byte(body), v), body)
}

// apiError requests path and returns the error text of a JSON error answer.
func (e *env) apiError(path string, status int) string {
	e.t.Helper()
	var out map[string]any
	e.getJSON(path, status, &out)
	msg, ok := out["error"].(string)
	require.True(e.t, ok, "no error field in %v", out)
	require.NotEmpty(e.t, msg)
	return msg
}

func (e *env) save(ms ...*store.Message) []store.Result {
	e.t.Helper()
	rs, err := e.st.SaveInbound(context.Background(), ms)
	require.NoError(e.t, err)
	return rs
}

func (e *env) queue(ms ...*store.Message) []store.Result {
	e.t.Helper()
	rs, err := e.st.QueueOutbound(context.Background(), ms, store.QueueOptions{})
	require.NoError(e.t, err)
	return rs
}

func (e *env) report(reps ...store.Report) {
	e.t.Helper()
	_, err := e.st.ApplyReports(context.Background(), reps)
	require.NoError(e.t, err)
}

func in(ext, from, text string) *store.Message {
	return &store.Message{Provider: store.ProviderInfobip, ExternalID: ext, From: from, To: bizNumber,
		Type: store.TypeText, Text: text, ReceivedAt: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func out(ext, to, text string) *store.Message {
	return &store.Message{Provider: store.ProviderInfobip, ExternalID: ext, From: bizNumber, To: to,
		Type: store.TypeText, Text: text}
}
