// Package e2e runs black-box tests against the built imchannel binary:
// crash under load, provider outage, hostile input, the auth matrix, SSRF
// and storage faults. TestMain builds the binary once per test run; each
// test starts it on 127.0.0.1:0 with its own config and database, talks to
// it over HTTP, and kills or stops it as the scenario needs. Fake providers
// and media origins are httptest.Servers that count what they receive.
//
// The short forms run under `go test ./...`; IMCHANNEL_LONG=1 runs the long
// forms (see TESTING.md).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// binPath is the binary TestMain built.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if p := os.Getenv("IMCHANNEL_E2E_BIN"); p != "" {
		binPath = p
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "imchannel-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "imchannel")
	args := []string{"build", "-o", binPath}
	if os.Getenv("IMCHANNEL_E2E_RACE") == "1" {
		args = append(args, "-race") // the binary under test checks for races too
	}
	build := exec.Command("go", append(args, ".")...)
	build.Dir = ".." // the module root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building imchannel:", err)
		return 1
	}
	return m.Run()
}

// long reports whether the long forms were asked for.
func long() bool { return os.Getenv("IMCHANNEL_LONG") == "1" }

// Credentials the test config configures, one set per role.
const (
	inboundUser = "provider-in"
	inboundPass = "in-secret-1"
	apiBearer   = "api-bearer-secret"
	apiAppKey   = "app-key-1"
	apiSecret   = "app-secret-1"
	agentUser   = "alice"
	agentPass   = "agent-secret-1"
)

// options shape one service's config.
type options struct {
	providerURL  string
	providerKind string // infobip (default) or cm
	allowPrivate bool
	// limits: small values so slow clients are cut off quickly.
	headerTimeout string
	readTimeout   string
	bodyBytes     int64
	extra         string // appended TOML
	// open leaves out every credential: open mode, loopback only.
	open bool
}

func (o options) toml(publicURL string) string {
	kind := o.providerKind
	if kind == "" {
		kind = "infobip"
	}
	purl := o.providerURL
	if purl == "" {
		purl = "http://127.0.0.1:9/omni/1/advanced" // nothing listens there
	}
	ht, rt := o.headerTimeout, o.readTimeout
	if ht == "" {
		ht = "5s"
	}
	if rt == "" {
		rt = "20s"
	}
	body := o.bodyBytes
	if body == 0 {
		body = 1 << 20
	}
	var b strings.Builder
	fmt.Fprintf(&b, "public_url = %q\n", publicURL)
	fmt.Fprintf(&b, "[log]\nlevel = \"info\"\nformat = \"text\"\n")
	fmt.Fprintf(&b, "[limits]\nbody_bytes = %d\nread_header_timeout = %q\nread_timeout = %q\nwrite_timeout = \"30s\"\nidle_timeout = \"5s\"\nmax_header_bytes = 16384\n", body, ht, rt)
	if !o.open {
		fmt.Fprintf(&b, "[inbound]\nbasic_user = %q\nbasic_password = %q\n", inboundUser, inboundPass)
		fmt.Fprintf(&b, "[api]\nbearer_token = %q\napp_key = %q\napp_secret = %q\n", apiBearer, apiAppKey, apiSecret)
		fmt.Fprintf(&b, "[[agents]]\nuser = %q\npassword = %q\n", agentUser, agentPass)
	}
	fmt.Fprintf(&b, "[provider]\nkind = %q\nurl = %q\nbasic_user = \"pu\"\nbasic_password = \"pp\"\nscenario_key = \"SCENARIO1\"\nproduct_token = \"tok\"\nfrom = \"31100000000\"\ntimeout = \"500ms\"\nrate_per_second = 0\ndefault_number = \"31100000000\"\n", kind, purl)
	fmt.Fprintf(&b, "[outbox]\nmin_backoff = \"50ms\"\nmax_backoff = \"300ms\"\ncheck_window = false\n")
	fmt.Fprintf(&b, "[media]\nallow_private_hosts = %v\nconnect_timeout = \"1s\"\nfetch_timeout = \"2s\"\nretry_for = \"2s\"\nmax_backoff = \"200ms\"\n", o.allowPrivate)
	b.WriteString(o.extra)
	return b.String()
}

// svc is one running imchannel serve process.
type svc struct {
	t      testing.TB
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:PORT
	addr   string
	db     string
	cfg    string
	logs   *syncBuffer
	exited chan struct{}
	err    error // Wait's result, after exited closes
}

// syncBuffer collects the child's stderr safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// writeConfig writes the config for o into dir and returns its path.
func writeConfig(t testing.TB, dir string, o options) string {
	t.Helper()
	p := filepath.Join(dir, "imchannel.toml")
	require.NoError(t, os.WriteFile(p, []byte(o.toml("http://127.0.0.1:1")), 0o600))
	return p
}

// start runs `imchannel serve` on a fresh port with cfg and db and waits
// for its "listening" line. The process is killed at the test's end if
// still running.
func start(t testing.TB, cfg, db string) *svc {
	t.Helper()
	s, err := tryStart(t, cfg, db, nil)
	require.NoError(t, err)
	return s
}

// tryStart is start returning the error (the process's log included).
func tryStart(t testing.TB, cfg, db string, prep func(*exec.Cmd)) (*svc, error) {
	t.Helper()
	s, addrc, err := launch(t, cfg, db, prep)
	if err != nil {
		return nil, err
	}
	select {
	case a := <-addrc:
		s.setAddr(a)
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("imchannel exited before listening: %v\n%s", s.err, s.logs.String())
	case <-time.After(30 * time.Second):
		s.kill()
		return nil, fmt.Errorf("imchannel did not report listening within 30s\n%s", s.logs.String())
	}
}

func (s *svc) setAddr(a string) {
	s.addr = a
	s.base = "http://" + a
}

// launch starts `imchannel serve` and returns at once; addrc delivers the
// address when the "listening" line is logged (never, if it dies first).
func launch(t testing.TB, cfg, db string, prep func(*exec.Cmd)) (*svc, <-chan string, error) {
	t.Helper()
	cmd := exec.Command(binPath, "serve", "--config", cfg, "--addr", "127.0.0.1:0", "--db", db)
	pr, pw := io.Pipe()
	logs := &syncBuffer{}
	cmd.Stderr = pw
	cmd.Stdout = logs
	if prep != nil {
		prep(cmd)
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	s := &svc{t: t, cmd: cmd, db: db, cfg: cfg, logs: logs, exited: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			_, _ = logs.Write([]byte(line + "\n"))
			if !found {
				if m := listenRE.FindStringSubmatch(line); m != nil {
					found = true
					addrc <- m[1]
				}
			}
		}
		_, _ = io.Copy(logs, pr)
	}()
	go func() {
		s.err = cmd.Wait()
		_ = pw.Close()
		close(s.exited)
	}()
	t.Cleanup(func() { s.kill() })
	return s, addrc, nil
}

// kill sends SIGKILL and waits for the process to go.
func (s *svc) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// stop sends SIGTERM and requires a clean exit.
func (s *svc) stop(t testing.TB) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(40 * time.Second):
		s.kill()
		t.Fatalf("imchannel did not stop within 40s of SIGTERM\n%s", s.logs.String())
	}
	require.NoError(t, s.err, "imchannel serve exit\n%s", s.logs.String())
}

// alive reports whether the process is still running.
func (s *svc) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// client is the HTTP client tests use: no keep-alive reuse surprises,
// bounded time.
var client = &http.Client{Timeout: 15 * time.Second}

// auth kinds a request can carry.
type auth int

const (
	authNone auth = iota
	authInbound
	authAPI
	authAgent
	authWrongBasic
	authWrongBearer
	authAPIBasic // HTTP Basic with the app key and secret (send API)
)

func (a auth) String() string {
	return [...]string{"none", "inbound", "api", "agent", "wrong-basic", "wrong-bearer", "api-basic"}[a]
}

func (a auth) apply(r *http.Request) {
	switch a {
	case authInbound:
		r.SetBasicAuth(inboundUser, inboundPass)
	case authAPI:
		r.Header.Set("Authorization", "Bearer "+apiBearer)
		r.Header.Set("x-app-key", apiAppKey)
	case authAgent:
		r.SetBasicAuth(agentUser, agentPass)
	case authWrongBasic:
		r.SetBasicAuth(agentUser, "not-the-password")
	case authAPIBasic:
		r.SetBasicAuth(apiAppKey, apiSecret)
	case authWrongBearer:
		r.Header.Set("Authorization", "Bearer not-the-token")
		r.Header.Set("x-app-key", apiAppKey)
	}
}

// rawHeaders is a's credentials as header lines ("Name: value\r\n") for
// a request written by hand on a raw connection.
func (a auth) rawHeaders() string {
	r, _ := http.NewRequest("GET", "/", nil)
	a.apply(r)
	var b strings.Builder
	for k, vs := range r.Header {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	return b.String()
}

// do sends one request and returns status, body. A transport error fails
// the test.
func (s *svc) do(t testing.TB, method, path string, a auth, body []byte, hdr map[string]string) (int, []byte) {
	t.Helper()
	code, b, err := s.try(context.Background(), method, path, a, body, hdr)
	require.NoError(t, err, "%s %s", method, path)
	return code, b
}

// try is do returning the transport error.
func (s *svc) try(ctx context.Context, method, path string, a auth, body []byte, hdr map[string]string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	a.apply(req)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v // Go sends req.Host, not a Host header
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, err
}

// healthy waits until /healthz answers 200.
func (s *svc) healthy(t testing.TB) {
	t.Helper()
	require.Eventually(t, func() bool {
		code, _, err := s.try(context.Background(), "GET", "/healthz", authNone, nil, nil)
		return err == nil && code == 200
	}, 20*time.Second, 20*time.Millisecond, "healthz never answered 200\n%s", s.logs.String())
}

// routeExists reports whether a route is mounted: an authenticated probe
// that does not answer "no route". Tests for components that have not
// landed skip instead of failing.
func (s *svc) routeExists(t testing.TB, method, path string, a auth) bool {
	t.Helper()
	code, b := s.do(t, method, path, a, nil, nil)
	return !(code == 404 && strings.Contains(string(b), "no route"))
}

// ---- payloads ----

// infobipInbound is one seed-000 inbound text post.
func infobipInbound(msgID, from, text string) []byte {
	b, _ := json.Marshal(map[string]any{"results": []any{map[string]any{
		"from": from, "to": "31100000000", "integrationType": "WHATSAPP",
		"receivedAt": "2024-05-01T10:00:00.000+0000", "messageId": msgID,
		"message": map[string]any{"type": "TEXT", "text": text},
		"contact": map[string]any{"name": "Load Tester"},
	}}})
	return b
}

// cmInbound is one seed-003 MO text post.
func cmInbound(ref, from, text string) []byte {
	b, _ := json.Marshal(map[string]any{
		"reference": ref,
		"from":      map[string]any{"number": "+" + from, "name": "CM Tester"},
		"to":        map[string]any{"number": "+31100000000"},
		"message": map[string]any{"text": text,
			"media":  map[string]any{"mediaUri": "", "contentType": "", "title": ""},
			"custom": map[string]any{}},
		"groupings": []string{"", "", ""},
		"timeUtc":   "2024-05-01T10:00:00",
		"channel":   "WhatsApp",
	})
	return b
}

// sendAPI is one seed-002 send request for one destination.
func sendAPI(msgID, to, text string) []byte {
	b, _ := json.Marshal(map[string]any{
		"bulkId":       "bulk-" + msgID,
		"destinations": []any{map[string]any{"messageId": msgID, "to": map[string]any{"phoneNumber": to}}},
		"whatsApp":     map[string]any{"text": text},
	})
	return b
}

// ---- fake provider ----

// provider is a fake outbound provider: it records every message id it is
// sent and can be told to fail or hang.
type provider struct {
	srv         *httptest.Server
	*modeSwitch // ok, fail, hang

	mu     sync.Mutex
	counts map[string]int
	bodies [][]byte
}

func newProvider(t testing.TB) *provider {
	p := &provider{modeSwitch: newModeSwitch(), counts: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		p.setMode("ok")
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

func (p *provider) url() string { return p.srv.URL + "/omni/1/advanced" }

// modeSwitch is how a fake endpoint answers ("ok", "hang", or a failure
// the endpoint names) and how many requests each mode answered; leaving
// "hang" releases the hung requests.
type modeSwitch struct {
	mu       sync.Mutex
	mode     string
	hangc    chan struct{} // closed to release hung requests
	attempts map[string]int
}

func newModeSwitch() *modeSwitch {
	return &modeSwitch{mode: "ok", hangc: make(chan struct{}), attempts: map[string]int{}}
}

func (s *modeSwitch) setMode(m string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == "hang" && m != "hang" {
		close(s.hangc)
		s.hangc = make(chan struct{})
	}
	s.mode = m
}

// answer counts a request under the current mode and returns the mode and
// the channel that releases the request if it hangs.
func (s *modeSwitch) answer() (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[s.mode]++
	return s.mode, s.hangc
}

// attemptsIn is how many requests were answered in mode.
func (s *modeSwitch) attemptsIn(mode string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[mode]
}

func (p *provider) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	mode, hang := p.answer()
	switch mode {
	case "fail":
		http.Error(w, `{"requestError":{"serviceException":{"text":"outage"}}}`, 500)
		return
	case "hang":
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		// A hung call never answers: cut the connection rather than let a
		// released call look like an acceptance.
		panic(http.ErrAbortHandler)
	}
	ids := messageIDs(body)
	p.mu.Lock()
	p.bodies = append(p.bodies, body)
	for _, id := range ids {
		p.counts[id]++
	}
	p.mu.Unlock()
	// Answer in Infobip's OMNI shape (docs/protocols.md#omni-send) (and CM's, which only needs a 2xx).
	var msgs []any
	for _, id := range ids {
		msgs = append(msgs, map[string]any{"messageId": id, "to": map[string]any{"phoneNumber": "1"},
			"status": map[string]any{"groupId": 1, "groupName": "PENDING", "id": 7, "name": "PENDING_ENROUTE", "description": "sent"}})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"messages": msgs, "bulkId": "b"})
}

// count is how many times id arrived.
func (p *provider) count(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[id]
}

// snapshot copies the counts.
func (p *provider) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// messageIDs finds the message ids in an outbound request: every
// "messageId" (OMNI advanced) and every "reference" (CM) value.
func messageIDs(body []byte) []string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	var ids []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && (k == "messageId" || k == "reference") && s != "" {
					ids = append(ids, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return ids
}

// ---- reading the file after the service stopped ----

// openStopped opens a stopped service's database read-only.
func openStopped(t testing.TB, db string) *store.Store {
	t.Helper()
	st, err := store.Open(db, store.Options{ReadOnly: true, NoMigrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// check runs `imchannel check --db` and requires it to pass.
func check(t testing.TB, db string) {
	t.Helper()
	out, err := exec.Command(binPath, "check", "--db", db).CombinedOutput()
	require.NoError(t, err, "imchannel check: %s", out)
}

func mustReq(t testing.TB, method, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	return r
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// tail is the last n log lines that are not request lines, for failure
// messages.
func (s *svc) tail(n int) string {
	var keep []string
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if !strings.Contains(l, "msg=request") && l != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// dumpOnFailure makes a failing test print the process's goroutines
// (SIGQUIT) and its recent log, to diagnose a stall.
func (s *svc) dumpOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if !t.Failed() || !s.alive() {
			return
		}
		_ = s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
		}
		t.Logf("goroutines of the stalled process:\n%s", s.logs.String())
	})
}
