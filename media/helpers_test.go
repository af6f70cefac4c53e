package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/stretchr/testify/require"

	"imchannel/httpx"
	"imchannel/store"
)

// origin is a fake media host that counts requests per path and answers
// with whatever the test put under that path.
type origin struct {
	*httptest.Server
	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	hits   map[string]*atomic.Int64
	total  atomic.Int64
}

func newOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{routes: map[string]http.HandlerFunc{}, hits: map[string]*atomic.Int64{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.total.Add(1)
		o.mu.Lock()
		h, ok := o.routes[r.URL.Path]
		c := o.hits[r.URL.Path]
		o.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		c.Add(1)
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// handle sets path's answer and returns its URL.
func (o *origin) handle(path string, h http.HandlerFunc) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.routes[path] = h
	if o.hits[path] == nil {
		o.hits[path] = &atomic.Int64{}
	}
	return o.URL + path
}

// bytes serves data with a content type.
func (o *origin) bytes(path, contentType string, data []byte) string {
	return o.handle(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(data)
	})
}

func (o *origin) count(path string) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.hits[path]; c != nil {
		return c.Load()
	}
	return 0
}

// port is the origin's TCP port.
func (o *origin) port() uint16 {
	return netip.MustParseAddrPort(o.Listener.Addr().String()).Port()
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func tempDB(t *testing.T) string { return filepath.Join(t.TempDir(), "imchannel.db") }

// testConfig is fast: tiny backoffs, private hosts allowed (the origin is
// on 127.0.0.1).
func testConfig() Config {
	return Config{
		Workers:           2,
		MaxBytes:          1 << 20,
		AllowPrivateHosts: true,
		ConnectTimeout:    2 * time.Second,
		FetchTimeout:      5 * time.Second,
		RetryFor:          time.Minute,
		MinBackoff:        5 * time.Millisecond,
		MaxBackoff:        20 * time.Millisecond,
		IdlePoll:          time.Second,
	}
}

// startFetcher runs a fetcher until the returned stop (also run at cleanup).
func startFetcher(t *testing.T, st *store.Store, cfg Config, policy func(netip.AddrPort) string) (*Fetcher, func()) {
	t.Helper()
	f := NewFetcher(st, nil, nil, cfg)
	if policy != nil {
		f.client = newClient(f.cfg, policy)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return f, stop
}

// onlyOrigin treats one local origin as the public internet: everything
// else meets the production policy (allow_private_hosts off).
func onlyOrigin(o *origin) func(netip.AddrPort) string {
	return func(ap netip.AddrPort) string {
		if ap.Addr().Unmap() == netip.MustParseAddr("127.0.0.1") && ap.Port() == o.port() {
			return ""
		}
		return blockedReason(ap.Addr())
	}
}

// saveMedia stores an inbound message with a media URL, as a webhook
// would, and returns the message id, the media id and whether it was new.
func saveMedia(t *testing.T, st *store.Store, provider, ext, url string) (msgID, mediaID string, dup bool) {
	t.Helper()
	m := &store.Message{
		Provider: provider, ExternalID: ext, From: "31612345678", To: "1234",
		Type: store.TypeImage, Media: &store.Media{SourceURL: url},
	}
	rs, err := st.SaveInbound(context.Background(), []*store.Message{m})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	msg, err := st.Message(rs[0].MessageID)
	require.NoError(t, err)
	require.NotNil(t, msg.Media)
	return msg.ID, msg.Media.ID, rs[0].Duplicate
}

// waitState polls until the media record reaches state.
func waitState(t *testing.T, st *store.Store, id, state string) *store.Media {
	t.Helper()
	var md *store.Media
	require.Eventually(t, func() bool {
		var err error
		md, err = st.Media(id)
		require.NoError(t, err)
		return md.State == state
	}, 10*time.Second, 5*time.Millisecond, "media %s never reached %s", id, state)
	return md
}

var agent = httpx.Credential{User: "alice", Password: "secret"}

// newAPI serves the media routes through a router built like serve's.
func newAPI(t *testing.T, st *store.Store) *httptest.Server {
	t.Helper()
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(httpx.NotFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(httpx.MethodNotAllowed)
	NewServer(st, nil, []httpx.Credential{agent}).Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

// do makes a request as the agent (auth false: none) and reads the body.
func do(t *testing.T, method, url string, auth bool, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if auth {
		req.SetBasicAuth(agent.User, agent.Password)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i/977)
	}
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func netipParse(s string) (netip.Addr, error) { return netip.ParseAddr(s) }
