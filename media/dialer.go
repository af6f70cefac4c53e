package media

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// BlockedError is a refused destination: a scheme other than http(s), or an
// address that is not public (SSRF protection). It is final: retrying
// cannot help.
type BlockedError struct{ Reason string }

func (e *BlockedError) Error() string { return "refused: " + e.Reason }

// blockedPrefixes are the non-public ranges net/netip has no predicate
// for. Audited (2026-12) against IANA's IPv4 and IPv6 Special-Purpose
// Address Registries: every entry that is not globally reachable is here
// or caught by a netip predicate in blockedReason, and so is every range
// that embeds an IPv4 address (a way to reach a private v4 host by a v6
// name). Reachable anycast entries (AS112, AMT, PCP/TURN anycast) are not
// media hosts either, but are left to the global rule below.
var blockedPrefixes = []struct {
	p    netip.Prefix
	name string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (carrier NAT, some cloud metadata)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation (TEST-NET-1)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "the deprecated 6to4 relay anycast"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation (TEST-NET-2)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation (TEST-NET-3)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible IPv6 (embeds an IPv4 address)"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 (embeds an IPv4 address)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 (embeds an IPv4 address)"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("100:0:0:1::/64"), "the dummy IPv6 prefix"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments (Teredo embeds an IPv4 address; benchmarking; ORCHID)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4 (embeds an IPv4 address)"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("5f00::/16"), "segment routing SIDs"},
	{netip.MustParsePrefix("fec0::/10"), "deprecated site-local"},
}

// globalUnicast6 is the only IPv6 space allocated for global unicast; any
// other IPv6 address (IPv4-mapped ones aside, which are checked as IPv4)
// is reserved, local or special.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// metadataAddrs are cloud instance-metadata endpoints (AWS, GCP, Azure,
// OpenStack use 169.254.169.254; AWS's IPv6 one is fd00:ec2::254). They are
// inside blocked ranges already; naming them gives a clearer reason.
var metadataAddrs = map[netip.Addr]bool{
	netip.MustParseAddr("169.254.169.254"): true,
	netip.MustParseAddr("fd00:ec2::254"):   true,
}

// blockedReason says why ip must not be fetched from, or "" if it is public.
func blockedReason(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case metadataAddrs[ip]:
		return fmt.Sprintf("address %s is a cloud metadata endpoint", ip)
	case ip.IsLoopback():
		return fmt.Sprintf("address %s is loopback", ip)
	case ip.IsUnspecified():
		return fmt.Sprintf("address %s is unspecified", ip)
	case ip.IsPrivate():
		return fmt.Sprintf("address %s is private", ip)
	case ip.IsLinkLocalUnicast():
		return fmt.Sprintf("address %s is link-local", ip)
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return fmt.Sprintf("address %s is multicast", ip)
	case ip.Is4() && ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Sprintf("address %s is broadcast", ip)
	}
	for _, b := range blockedPrefixes {
		if b.p.Contains(ip) {
			return fmt.Sprintf("address %s is %s", ip, b.name)
		}
	}
	if ip.Is6() && !globalUnicast6.Contains(ip) {
		return fmt.Sprintf("address %s is outside IPv6 global unicast (2000::/3)", ip)
	}
	return ""
}

// controlFunc checks the address actually being connected to — after DNS
// resolution, on every connection, so redirects and DNS rebinding meet the
// same check.
func controlFunc(policy func(netip.AddrPort) string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &BlockedError{Reason: fmt.Sprintf("address %q is not an IP and port", address)}
		}
		if reason := policy(ap); reason != "" {
			return &BlockedError{Reason: reason}
		}
		return nil
	}
}

// defaultPolicy refuses non-public addresses unless allowPrivate.
func defaultPolicy(allowPrivate bool) func(netip.AddrPort) string {
	return func(ap netip.AddrPort) string {
		if allowPrivate {
			return ""
		}
		return blockedReason(ap.Addr())
	}
}

// newClient builds the fetching client: no proxy (a proxy would dial on our
// behalf and bypass the address check), bounded connect, TLS and total time,
// redirects capped and limited to http(s).
func newClient(cfg Config, policy func(netip.AddrPort) string) *http.Client {
	dialer := &net.Dialer{
		Timeout:   cfg.ConnectTimeout,
		KeepAlive: 30 * time.Second,
		Control:   controlFunc(policy),
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.FetchTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	var rt http.RoundTripper = tr
	if cfg.BasicUser != "" {
		rt = &credTransport{rt: tr, user: cfg.BasicUser, password: cfg.BasicPassword,
			origins: credentialOrigins(cfg), plainLoopback: cfg.AllowPrivateHosts}
	}
	return &http.Client{
		Transport: rt,
		Timeout:   cfg.FetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > cfg.MaxRedirects {
				return &BlockedError{Reason: fmt.Sprintf("more than %d redirects", cfg.MaxRedirects)}
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return &BlockedError{Reason: fmt.Sprintf("redirect to scheme %q (only http and https are fetched)", req.URL.Scheme)}
			}
			return nil
		},
	}
}

func isBlocked(err error) (*BlockedError, bool) {
	var be *BlockedError
	ok := errors.As(err, &be)
	return be, ok
}
