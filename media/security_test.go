package media

import (
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// authOrigin is an origin that records the Basic login each path got.
type authOrigin struct {
	*origin
	mu   sync.Mutex
	seen map[string][]string // path → "user:password" or "" per request
}

func newAuthOrigin(t *testing.T) *authOrigin {
	return &authOrigin{origin: newOrigin(t), seen: map[string][]string{}}
}

func (a *authOrigin) serve(path string, next http.HandlerFunc) string {
	return a.handle(path, func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		a.mu.Lock()
		a.seen[path] = append(a.seen[path], u+":"+p)
		a.mu.Unlock()
		next(w, r)
	})
}

func (a *authOrigin) logins(path string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen[path]...)
}

func png(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write([]byte("\x89PNG\r\n\x1a\nbytes"))
}

// Issue 13 item 2: the Infobip login goes only to the provider's own media
// origins (provider.url's and provider.media_hosts), never to a URL an
// inbound message names elsewhere, nor to a redirect target elsewhere.
func TestProviderLoginOnlyToProviderHosts(t *testing.T) {
	provider, listed, attacker := newAuthOrigin(t), newAuthOrigin(t), newAuthOrigin(t)
	cfg := testConfig()
	cfg.ProviderKind, cfg.BasicUser, cfg.BasicPassword = "infobip", "ib-user", "ib-pass"
	cfg.ProviderURL = provider.URL + "/omni/1/advanced"
	cfg.MediaHosts = []string{listed.URL}
	st := openStore(t, tempDB(t))
	_, _ = startFetcher(t, st, cfg, nil)

	evil := attacker.serve("/steal.png", png)
	for _, c := range []struct {
		name, path string
		o          *authOrigin
		url        string
		want       string
	}{
		{"provider.url's origin", "/media/1", provider, provider.serve("/media/1", png), "ib-user:ib-pass"},
		{"a listed media host", "/media/2", listed, listed.serve("/media/2", png), "ib-user:ib-pass"},
		{"any other host", "/steal.png", attacker, evil, ":"},
		{"redirect from the provider elsewhere", "/steal.png", attacker, provider.serve("/redir", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, evil, http.StatusFound)
		}), ":"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(c.o.logins(c.path))
			_, id, _ := saveMedia(t, st, store.ProviderInfobip, "login-"+c.name, c.url)
			waitState(t, st, id, store.MediaCached)
			got := c.o.logins(c.path)
			require.Len(t, got, before+1)
			require.Equal(t, c.want, got[before])
		})
	}
	require.Equal(t, []string{"ib-user:ib-pass"}, provider.logins("/redir"), "the first hop, on the provider's origin, had it")

	// Plain http to a provider host is not loopback-with-private-hosts:
	// no login (allow_private_hosts off; the origin is let through by the
	// test policy only).
	cfg.AllowPrivateHosts = false
	st2 := openStore(t, tempDB(t))
	_, _ = startFetcher(t, st2, cfg, onlyOrigin(provider.origin))
	_, id, _ := saveMedia(t, st2, store.ProviderInfobip, "plain", provider.serve("/media/plain", png))
	waitState(t, st2, id, store.MediaCached)
	require.Equal(t, []string{":"}, provider.logins("/media/plain"), "no login over plain http")
}

// The per-hop rule itself: origin (scheme, host, port) and https.
func TestCredentialOrigins(t *testing.T) {
	ct := &credTransport{origins: credentialOrigins(Config{
		ProviderURL: "https://api.infobip.com/omni/1/advanced",
		MediaHosts:  []string{"media.infobip.example", "https://cdn.example:8443", "http://127.0.0.1:9000"},
	})}
	for raw, want := range map[string]bool{
		"https://api.infobip.com/whatsapp/1/senders/x/media/y": true,
		"https://API.INFOBIP.COM:443/m":                        true,
		"https://media.infobip.example/m":                      true,
		"https://cdn.example:8443/m":                           true,
		"http://api.infobip.com/m":                             false, // plain http
		"https://api.infobip.com:8443/m":                       false, // other port
		"https://api.infobip.com.attacker.example/m":           false,
		"https://attacker.example/m":                           false,
		"https://cdn.example/m":                                false,
		"http://127.0.0.1:9000/m":                              false, // loopback, private hosts not allowed
	} {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		require.Equal(t, want, ct.allowed(u), raw)
	}
	ct.plainLoopback = true
	u, _ := url.Parse("http://127.0.0.1:9000/m")
	require.True(t, ct.allowed(u), "loopback over http with allow_private_hosts (tests)")
}

// Issue 13 item 11: IPv4-compatible IPv6 and the rest of IANA's
// special-purpose registries are refused.
func TestBlockedReasonIANA(t *testing.T) {
	for addr, blocked := range map[string]bool{
		"::127.0.0.1": true, "::7f00:1": true, "::a00:1": true, "::8.8.8.8": true,
		"192.0.2.1": true, "198.51.100.1": true, "203.0.113.1": true, "192.88.99.1": true,
		"2001:db8::1": true, "2001::1": true, "2001:0:4136:e378:8000:63bf:3fff:fdd2": true, "2001:2::1": true,
		"3fff::1": true, "5f00::1": true, "fec0::1": true, "100:0:0:1::1": true, "4000::1": true, "::2": true,
		"1.1.1.1": false, "2606:4700:4700::1111": false, "192.31.196.1": false, "2620:4f:8000::1": false,
	} {
		ip, err := netipParse(addr)
		require.NoError(t, err)
		require.Equal(t, blocked, blockedReason(ip) != "", addr)
	}
	ip, _ := netipParse("::127.0.0.1")
	require.Contains(t, blockedReason(ip), "IPv4-compatible")
}
