package media

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"imchannel/httpx"
)

// The provider's media login (Infobip media URLs need HTTP Basic) goes
// only where the provider serves media: the origin (scheme, host, port) of
// provider.url and the origins in provider.media_hosts, and only over
// https, unless the host is loopback and private hosts are allowed (tests).
// The decision is made per hop, in the transport, so a redirect to any
// other origin, or from https down to http, never carries the login.

// wantsProviderAuth marks a fetch whose media came from the provider whose
// login we hold.
type wantsProviderAuth struct{}

// Origin normalises an http(s) URL, or a bare host name (https implied), to
// "scheme://host:port" with the default port written out.
func Origin(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", fmt.Errorf("%q is not an http(s) origin or host name", raw)
	}
	return originOf(u), nil
}

func originOf(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if strings.EqualFold(u.Scheme, "http") {
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// credTransport adds the provider's Basic login to marked requests whose
// URL is one of origins.
type credTransport struct {
	rt             http.RoundTripper
	user, password string
	origins        map[string]bool
	// plainLoopback allows plain http to a loopback host (tests with
	// allow_private_hosts).
	plainLoopback bool
}

func (t *credTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Context().Value(wantsProviderAuth{}) != nil && t.allowed(req.URL) {
		req = req.Clone(req.Context())
		req.SetBasicAuth(t.user, t.password)
	}
	return t.rt.RoundTrip(req)
}

// allowed reports whether the login may be sent to u.
func (t *credTransport) allowed(u *url.URL) bool {
	if !t.origins[originOf(u)] {
		return false
	}
	return strings.EqualFold(u.Scheme, "https") || (t.plainLoopback && httpx.LoopbackHost(u.Host))
}

// credentialOrigins are the origins the provider login may go to.
func credentialOrigins(cfg Config) map[string]bool {
	out := map[string]bool{}
	for _, raw := range append([]string{cfg.ProviderURL}, cfg.MediaHosts...) {
		if raw == "" {
			continue
		}
		if o, err := Origin(raw); err == nil {
			out[o] = true
		}
	}
	return out
}

func withProviderAuth(ctx context.Context) context.Context {
	return context.WithValue(ctx, wantsProviderAuth{}, true)
}
