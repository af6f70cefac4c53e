package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// countingOrigin is a media origin that counts the requests it gets.
type countingOrigin struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newOrigin(t *testing.T, network, addr string, h http.HandlerFunc) *countingOrigin {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil
	}
	o := &countingOrigin{}
	o.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		h(w, r)
	})}}
	o.srv.Start()
	t.Cleanup(o.srv.Close)
	return o
}

func (o *countingOrigin) port() string {
	_, p, _ := net.SplitHostPort(o.srv.Listener.Addr().String())
	return p
}

// publicLocalAddr finds an address of this machine that the media
// fetcher's policy treats as public (not loopback, private, link-local or
// otherwise reserved), so a redirect from a "public" host to a private
// one can be tried for real. Most CI machines have none (the sandbox this
// was written in has 192.0.2.2, which is documentation space, blocked).
func publicLocalAddr() (netip.Addr, bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, false
	}
	blocked := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("240.0.0.0/4"),
		netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("192.88.99.0/24")}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr()
		if !ip.Is4() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		ok := true
		for _, b := range blocked {
			if b.Contains(ip) {
				ok = false
			}
		}
		if ok {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// TestSSRF posts image messages whose URLs point at loopback, private and
// metadata addresses (directly, by a name, in odd notations and through a
// redirect) with allow_private_hosts off: the origins count no request and
// every message's media ends up failed.
func TestSSRF(t *testing.T) {
	origin := newOrigin(t, "tcp4", "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write([]byte("\x89PNG\r\n\x1a\nsecret"))
	})
	require.NotNil(t, origin)
	port := origin.port()
	origin6 := newOrigin(t, "tcp6", "[::1]:0", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("secret")) })

	urls := map[string]string{
		"loopback":               "http://127.0.0.1:" + port + "/a.png",
		"loopback short form":    "http://127.1:" + port + "/b.png",
		"unspecified":            "http://0.0.0.0:" + port + "/c.png",
		"ipv4-mapped ipv6":       "http://[::ffff:127.0.0.1]:" + port + "/d.png",
		"ipv4-compatible ipv6":   "http://[::127.0.0.1]:" + port + "/d2.png",
		"teredo":                 "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]:" + port + "/d3.png",
		"documentation v4":       "http://203.0.113.7:" + port + "/d4.png",
		"localhost name":         "http://localhost:" + port + "/e.png",
		"metadata":               "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"private 10/8":           "http://10.0.0.1:" + port + "/f.png",
		"private 192.168/16":     "http://192.168.1.1/g.png",
		"loopback redirect":      "", // filled below
		"ipv6 loopback":          "http://[::1]:" + port + "/h.png",
		"file scheme":            "file:///etc/passwd",
		"gopher scheme":          "gopher://127.0.0.1:" + port + "/_x",
		"loopback with userinfo": "http://public.example@127.0.0.1:" + port + "/i.png",
	}
	if origin6 != nil {
		urls["ipv6 loopback"] = "http://[::1]:" + origin6.port() + "/h.png"
	}
	redirectTo := "http://127.0.0.1:" + port + "/redirected.png"
	redirector := func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, redirectTo, http.StatusFound) }
	var publicRedirector *countingOrigin
	if ip, ok := publicLocalAddr(); ok {
		publicRedirector = newOrigin(t, "tcp4", net.JoinHostPort(ip.String(), "0"), redirector)
	}
	if publicRedirector != nil {
		urls["redirect from a public address to loopback"] = publicRedirector.srv.URL + "/r.png"
	} else {
		t.Log("no public-looking local address: the redirect case starts on loopback and is refused at the first hop")
	}
	loopRedirector := newOrigin(t, "tcp4", "127.0.0.1:0", redirector)
	urls["loopback redirect"] = loopRedirector.srv.URL + "/r.png"

	dir := t.TempDir()
	db := dir + "/ssrf.db"
	s := start(t, writeConfig(t, dir, options{allowPrivate: false}), db)
	s.healthy(t)
	if !s.routeExists(t, "POST", "/imchannel/message", authInbound) {
		t.Skip("inbound webhook not mounted")
	}

	ids := map[string]string{} // externalId → case
	i := 0
	for name, u := range urls {
		i++
		id := fmt.Sprintf("ssrf-%02d", i)
		ids[id] = name
		body, _ := json.Marshal(map[string]any{"results": []any{map[string]any{
			"from": "31622220000", "to": "31100000000", "integrationType": "WHATSAPP",
			"receivedAt": "2024-05-01T10:00:00.000+0000", "messageId": id,
			"message": map[string]any{"type": "IMAGE", "caption": name, "url": u},
		}}})
		code, resp := s.do(t, "POST", "/imchannel/message", authInbound, body, nil)
		require.Equal(t, 200, code, "%s: %s", name, resp)
	}

	// Wait until the fetcher has given up on every one of them.
	failRE := regexp.MustCompile(`(?m)^imchannel_media_failures_total (\d+)`)
	require.Eventually(t, func() bool {
		code, body := s.do(t, "GET", "/metrics", authAgent, nil, nil)
		if code != 200 {
			return false
		}
		m := failRE.FindSubmatch(body)
		if m == nil {
			return false
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n >= len(ids)
	}, 30*time.Second, 50*time.Millisecond, "media fetches never all failed\n%s", s.logs.String())

	require.Zero(t, origin.hits.Load(), "the loopback origin was fetched from")
	require.Zero(t, loopRedirector.hits.Load(), "the loopback redirector was fetched from")
	if origin6 != nil {
		require.Zero(t, origin6.hits.Load(), "the [::1] origin was fetched from")
	}
	if publicRedirector != nil {
		// The "public" hop may be fetched; the private target never is.
		t.Logf("public redirector asked %d time(s)", publicRedirector.hits.Load())
	}
	s.stop(t)
	check(t, db)

	st := openStopped(t, db)
	for id, name := range ids {
		msgs, err := st.MessagesByExternalID(id)
		require.NoError(t, err)
		require.Len(t, msgs, 1, name)
		m := msgs[0]
		require.NotNil(t, m.Media, "%s: no media", name)
		require.Equal(t, store.MediaFailed, m.Media.State, "%s: media state", name)
	}
	t.Logf("ssrf: %d URLs refused, origin requests 0", len(ids))
}
