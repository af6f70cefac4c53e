package webhook_test

// Shared helpers for every webhook test (Infobip and CM): a real store in
// t.TempDir, the real router built the way components.go builds it, and
// small readers for answers, fixtures, messages and metrics.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"imchannel/httpx"
	"imchannel/metrics"
	"imchannel/store"
	"imchannel/webhook"
)

// The [inbound] credentials every testEnv is configured with.
const (
	testUser     = "ctlive"
	testPassword = "s3cret-inbound"
)

// testEnv is one service under test: store, metrics and the HTTP server
// carrying the webhook routes.
type testEnv struct {
	Store   *store.Store
	Metrics *metrics.Metrics
	Server  *httptest.Server
	DBPath  string
}

// newTestEnv opens a store on a fresh file, mounts webhook.New(deps).Register
// on a gorilla/mux router with the JSON 404/405 handlers main uses, and
// serves it on 127.0.0.1. tune may adjust the Deps (Creds, BodyLimit,
// WelcomeText, OutboundProvider) before the handler is built.
func newTestEnv(t *testing.T, tune ...func(*webhook.Deps)) *testEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "imchannel.db")
	st, err := store.Open(path, store.Options{})
	require.NoError(t, err)
	m := metrics.New()
	d := webhook.Deps{
		Store:     st,
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:   m,
		Creds:     []httpx.Credential{{User: testUser, Password: testPassword}},
		BodyLimit: 1 << 20,
	}
	for _, f := range tune {
		f(&d)
	}
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(httpx.NotFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(httpx.MethodNotAllowed)
	webhook.New(d).Register(r)
	srv := httptest.NewServer(r)
	// Cleanups run last-in first-out: server first, then the store.
	t.Cleanup(func() { _ = st.Close() })
	t.Cleanup(srv.Close)
	return &testEnv{Store: st, Metrics: m, Server: srv, DBPath: path}
}

// answer is an HTTP response read whole.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the answer's body into a generic map (failing the test if it
// is not a JSON object).
func (a answer) JSON(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(a.Body, &v), "answer is not a JSON object: %s", a.Body)
	return v
}

// ErrorText is the answer's {"error": …}, failing if there is none.
func (a answer) ErrorText(t *testing.T) string {
	t.Helper()
	v := a.JSON(t)
	s, ok := v["error"].(string)
	require.True(t, ok, "answer has no error string: %s", a.Body)
	require.NotEmpty(t, s)
	return s
}

// post sends body as JSON to path with the test credentials.
func (e *testEnv) post(t *testing.T, path string, body []byte) answer {
	t.Helper()
	return e.postAs(t, path, testUser, testPassword, "application/json", body)
}

// postAs sends body to path with the given Basic credentials (none when user
// and password are both empty) and content type.
func (e *testEnv) postAs(t *testing.T, path, user, password, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, e.Server.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	return e.do(t, req)
}

// do runs a request against the test server and reads the whole answer.
// It is safe to call from several goroutines (it only uses t for Helper and
// errors are returned as status 0 answers to keep require off goroutines).
func (e *testEnv) do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := e.Server.Client().Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", req.Method, req.URL.Path, err)
		return answer{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: reading answer: %v", req.Method, req.URL.Path, err)
	}
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// fixture reads testdata/<provider>/<name> (webhook/testdata).
func fixture(t *testing.T, provider, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", provider, name))
	require.NoError(t, err)
	return b
}

// byExternalID returns the one stored message with that external id
// (ours or an alias), failing if there is not exactly one.
func (e *testEnv) byExternalID(t *testing.T, ext string) *store.Message {
	t.Helper()
	ms, err := e.Store.MessagesByExternalID(ext)
	require.NoError(t, err)
	require.Len(t, ms, 1, "messages with external id %q", ext)
	return ms[0]
}

// noMessage asserts nothing is stored under that external id.
func (e *testEnv) noMessage(t *testing.T, ext string) {
	t.Helper()
	ms, err := e.Store.MessagesByExternalID(ext)
	require.NoError(t, err)
	require.Empty(t, ms, "messages with external id %q", ext)
}

// messageCount is the store's total of stored messages.
func (e *testEnv) messageCount(t *testing.T) uint64 {
	t.Helper()
	st, err := e.Store.Stats()
	require.NoError(t, err)
	return st.Messages
}

// conversationMessages lists a conversation's messages, oldest first.
func (e *testEnv) conversationMessages(t *testing.T, convID string) []*store.Message {
	t.Helper()
	ms, _, err := e.Store.ConversationMessages(convID, 1000, "")
	require.NoError(t, err)
	return ms
}

// requireClean asserts the store's invariants hold.
func (e *testEnv) requireClean(t *testing.T) {
	t.Helper()
	require.Empty(t, e.Store.Check(), "store invariants")
}

// counterValue reads one labelled counter of a CounterVec.
func counterValue(t *testing.T, cv *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	c, err := cv.GetMetricWithLabelValues(labels...)
	require.NoError(t, err)
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
