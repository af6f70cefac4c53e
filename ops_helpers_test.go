package main

// Helpers for the operations tests (ops_*_test.go): the real app and router
// built by newApp, exactly as serve builds them, on a temp database.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/config"
)

// Credentials every opsEnv is configured with.
const (
	opsAgentUser    = "ops-agent"
	opsAgentPass    = "agent-pw-7f3a9c"
	opsInboundUser  = "ctlive"
	opsInboundPass  = "inbound-pw-51d0e2"
	opsBusinessNum  = "1234"
	opsCustomerNum1 = "385919998888"
)

// opsBuffer is a goroutine-safe log sink.
type opsBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *opsBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *opsBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type opsEnv struct {
	app  *app
	srv  *httptest.Server
	logs *opsBuffer
}

// opsNewEnv builds the app with newApp (store + metrics wired as serve
// does) and serves a.routes() on 127.0.0.1.
func opsNewEnv(t *testing.T, tune ...func(*config.Config)) *opsEnv {
	t.Helper()
	cfg := config.Default()
	cfg.DB = filepath.Join(t.TempDir(), "imchannel.db")
	cfg.Agents = []config.Agent{{User: opsAgentUser, Password: opsAgentPass}}
	cfg.Inbound = config.Inbound{BasicUser: opsInboundUser, BasicPassword: opsInboundPass}
	for _, f := range tune {
		f(&cfg)
	}
	require.NoError(t, cfg.Validate())
	logs := &opsBuffer{}
	a, err := newApp(cfg, newLogger(cfg.Log, logs))
	require.NoError(t, err)
	srv := httptest.NewServer(a.routes())
	t.Cleanup(func() { _ = a.store.Close() })
	t.Cleanup(srv.Close)
	return &opsEnv{app: a, srv: srv, logs: logs}
}

// do sends a request and reads the whole answer.
func (e *opsEnv) do(t *testing.T, method, path string, body []byte, auth func(*http.Request)) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != nil {
		auth(req)
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func asAgent(r *http.Request)   { r.SetBasicAuth(opsAgentUser, opsAgentPass) }
func asInbound(r *http.Request) { r.SetBasicAuth(opsInboundUser, opsInboundPass) }

// opsInfobipText is a seed-000 inbound text post with one message.
func opsInfobipText(messageID, from, text string) []byte {
	return []byte(fmt.Sprintf(`{"results":[{"from":%q,"to":%q,"integrationType":"WHATSAPP",
"receivedAt":"2024-03-01T09:00:00.000+0000","messageId":%q,"message":{"type":"TEXT","text":%q}}]}`,
		from, opsBusinessNum, messageID, text))
}

// postInbound posts one text through the real webhook route and reports
// whether it was acknowledged.
func (e *opsEnv) postInbound(ctx context.Context, client *http.Client, messageID, from, text string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/imchannel/message",
		bytes.NewReader(opsInfobipText(messageID, from, text)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	asInbound(req)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post %s: %d %s", messageID, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}
