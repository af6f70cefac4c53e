package outbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/stretchr/testify/require"

	"imchannel/config"
	"imchannel/httpx"
	"imchannel/media"
	"imchannel/metrics"
	"imchannel/outbound"
	"imchannel/store"
)

const (
	scenarioKey = "CC9F01A5DC7BEE2C2B829D203482A654"
	business    = "4930123456"
	staticToken = "static-token"
	appKey      = "app-key"
	appSecret   = "app-secret"
	seed001Key  = "KEY-SEED001"
)

// rec is one request the fake provider received.
type rec struct {
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
}

// fakeProvider records every request and answers with answer(n, body),
// n counting from 0.
type fakeProvider struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []rec
	answer func(n int, body []byte) (int, http.Header, string)
}

func newFake(t *testing.T, answer func(n int, body []byte) (int, http.Header, string)) *fakeProvider {
	f := &fakeProvider{answer: answer}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, rec{Path: r.URL.Path, Header: r.Header.Clone(), Body: b, At: time.Now()})
		ans := f.answer
		f.mu.Unlock()
		status, h, body := ans(n, b)
		for k, v := range h {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProvider) setAnswer(a func(n int, body []byte) (int, http.Header, string)) {
	f.mu.Lock()
	f.answer = a
	f.mu.Unlock()
}

func (f *fakeProvider) requests() []rec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rec(nil), f.reqs...)
}

func (f *fakeProvider) waitRequests(t *testing.T, n int) []rec {
	t.Helper()
	require.Eventually(t, func() bool { return len(f.requests()) >= n }, 10*time.Second, 5*time.Millisecond, "waiting for %d provider requests", n)
	return f.requests()
}

// infobipOK answers like Infobip (docs/protocols.md#omni-send): PENDING_ENROUTE with the provider's own id.
func infobipOK(n int, body []byte) (int, http.Header, string) {
	var req struct {
		Destinations []struct {
			MessageID string `json:"messageId"`
			To        struct {
				PhoneNumber string `json:"phoneNumber"`
			} `json:"to"`
		} `json:"destinations"`
	}
	_ = json.Unmarshal(body, &req)
	to, id := "", ""
	if len(req.Destinations) > 0 {
		to, id = req.Destinations[0].To.PhoneNumber, req.Destinations[0].MessageID
	}
	return 200, nil, `{"messages":[{"to":{"phoneNumber":"` + to + `"},"status":{"groupId":1,"groupName":"PENDING","id":7,"name":"PENDING_ENROUTE","description":"Message sent to next instance"},"messageId":"ib-` + id + `"}]}`
}

func cmOK(n int, body []byte) (int, http.Header, string) {
	return 200, nil, `{"details":"Created 1 message(s)","errorCode":0,"messages":[{"to":"0041793026727","status":"Accepted","reference":"x","parts":1,"messageDetails":null,"messageErrorCode":0}]}`
}

func testConfig(kind, providerURL string) config.Config {
	cfg := config.Default()
	cfg.API = config.API{BearerToken: staticToken, AppKey: appKey, AppSecret: appSecret, TokenTTL: config.Duration{Duration: time.Hour}}
	cfg.Provider = config.Provider{
		Kind: kind, URL: providerURL, BasicUser: "u", BasicPassword: "p",
		ScenarioKey: scenarioKey, ProductToken: "product-token", From: "CM.com",
		Timeout: config.Duration{Duration: 5 * time.Second}, DefaultNumber: "+" + business,
		// The template seed's servicePhoneNumber is a configured business number.
		Numbers: map[string]string{seed001Key: "3902124122690"},
	}
	cfg.Outbox = config.Outbox{Workers: 2, MinBackoff: config.Duration{Duration: 10 * time.Millisecond},
		MaxBackoff: config.Duration{Duration: 50 * time.Millisecond}, Deadline: config.Duration{Duration: time.Hour},
		Window: config.Duration{Duration: 24 * time.Hour}}
	return cfg
}

// env is one service under test: a store on a temp file, the real routes
// (outbound and media) over HTTP, and optionally a dispatcher.
type env struct {
	t    *testing.T
	cfg  config.Config
	path string
	now  func() time.Time
	st   *store.Store
	api  *httptest.Server
	prov *fakeProvider

	handler  http.Handler
	stopDisp func()
	// log, if set, receives the outbound components' logs.
	log *slog.Logger
	// hmacKey, if set, keys the token fingerprints.
	hmacKey []byte
}

func newEnv(t *testing.T, cfg config.Config, prov *fakeProvider) *env {
	e := &env{t: t, cfg: cfg, prov: prov, path: filepath.Join(t.TempDir(), "imchannel.db")}
	e.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.handler.ServeHTTP(w, r) }))
	t.Cleanup(e.api.Close)
	e.cfg.PublicURL = e.api.URL
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) deps() outbound.Deps {
	return outbound.Deps{Store: e.st, Log: e.log, Metrics: metrics.New(), Config: e.cfg, Now: e.now, HMACKey: e.hmacKey}
}

func (e *env) open() {
	st, err := store.Open(e.path, store.Options{})
	require.NoError(e.t, err)
	e.st = st
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(httpx.NotFound)
	outbound.NewAPI(e.deps()).Register(r)
	media.NewServer(st, slog.New(slog.DiscardHandler), nil).Register(r)
	e.handler = r
}

// dispatch starts a dispatcher on the current store.
func (e *env) dispatch() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d := outbound.NewDispatcher(e.deps())
	go func() { defer close(done); d.Run(ctx) }()
	e.stopDisp = func() { cancel(); <-done }
}

// close stops the dispatcher and closes the store, as a shutdown does.
func (e *env) close() {
	if e.stopDisp != nil {
		e.stopDisp()
		e.stopDisp = nil
	}
	if e.st != nil {
		_ = e.st.Close()
		e.st = nil
	}
}

type auth func(*http.Request)

func bearer(tok, key string) auth {
	return func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+tok)
		if key != "" {
			r.Header.Set("x-app-key", key)
		}
	}
}

var okAuth = bearer(staticToken, appKey)

func (e *env) post(path string, body any, a auth) (int, http.Header, []byte) {
	e.t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		b, err = json.Marshal(v)
		require.NoError(e.t, err)
	}
	req, err := http.NewRequest(http.MethodPost, e.api.URL+path, bytes.NewReader(b))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	if a != nil {
		a(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, resp.Header, out
}

const sendPath = "/omni/1/advanced"

// send posts to the send API and requires a 200.
func (e *env) send(body any) sendAnswer {
	e.t.Helper()
	status, _, b := e.post(sendPath, body, okAuth)
	require.Equal(e.t, http.StatusOK, status, "%s", b)
	var ans sendAnswer
	require.NoError(e.t, json.Unmarshal(b, &ans))
	return ans
}

type sendAnswer struct {
	Messages []struct {
		To struct {
			PhoneNumber string `json:"phoneNumber"`
		} `json:"to"`
		Status struct {
			GroupID     int    `json:"groupId"`
			GroupName   string `json:"groupName"`
			ID          int    `json:"id"`
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"status"`
		MessageID string `json:"messageId"`
	} `json:"messages"`
	BulkID string `json:"bulkId"`
}

func text(id, to, txt string) map[string]any {
	return map[string]any{
		"scenarioKey":  scenarioKey,
		"destinations": []any{map[string]any{"messageId": id, "to": map[string]any{"phoneNumber": to}}},
		"whatsApp":     map[string]any{"text": txt},
	}
}

// message finds the stored message with our external id.
func (e *env) message(ext string) *store.Message {
	e.t.Helper()
	ms, err := e.st.MessagesByExternalID(ext)
	require.NoError(e.t, err)
	require.Len(e.t, ms, 1, "messages with external id %s", ext)
	return ms[0]
}

func (e *env) waitStatus(ext, status string) *store.Message {
	e.t.Helper()
	var m *store.Message
	require.Eventually(e.t, func() bool {
		ms, err := e.st.MessagesByExternalID(ext)
		if err != nil || len(ms) != 1 {
			return false
		}
		m = ms[0]
		return m.Status == status
	}, 10*time.Second, 5*time.Millisecond, "waiting for %s to be %s", ext, status)
	return m
}

func (e *env) outboxDepth() int {
	st, err := e.st.Stats()
	require.NoError(e.t, err)
	return st.OutboxDepth
}

func destinationIDs(t *testing.T, rs []rec) []string {
	var out []string
	for _, r := range rs {
		var req struct {
			Destinations []struct {
				MessageID string `json:"messageId"`
			} `json:"destinations"`
			Messages struct {
				Msg []struct {
					Reference string `json:"reference"`
				} `json:"msg"`
			} `json:"messages"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &req))
		switch {
		case len(req.Destinations) > 0:
			out = append(out, req.Destinations[0].MessageID)
		case len(req.Messages.Msg) > 0:
			out = append(out, req.Messages.Msg[0].Reference)
		}
	}
	return out
}
