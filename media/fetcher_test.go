package media

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// One GET, whatever happens afterwards: the webhook is resent, the service
// restarts, agents open the media many times.
func TestFetchOnceAcrossResendRestartAndViews(t *testing.T) {
	o := newOrigin(t)
	data := pattern(600 << 10) // three chunks
	url := o.bytes("/media/abc", "image/jpeg", data)
	path := tempDB(t)

	st := openStore(t, path)
	_, stop := startFetcher(t, st, testConfig(), nil)
	msgID, mediaID, dup := saveMedia(t, st, store.ProviderInfobip, "ABEGOFl3VCQoAhAq", url)
	require.False(t, dup)
	md := waitState(t, st, mediaID, store.MediaCached)
	require.Equal(t, sum(data), md.SHA256)
	require.EqualValues(t, len(data), md.Size)
	require.Equal(t, "image/jpeg", md.ContentType)

	// The provider resends the same webhook: deduped, no new fetch.
	_, again, dup := saveMedia(t, st, store.ProviderInfobip, "ABEGOFl3VCQoAhAq", url)
	require.True(t, dup)
	require.Equal(t, mediaID, again)
	require.EqualValues(t, 1, o.count("/media/abc"))

	// Restart: close everything, reopen the file, start a new fetcher.
	stop()
	require.NoError(t, st.Close())
	st = openStore(t, path)
	_, _ = startFetcher(t, st, testConfig(), nil)
	_, _, dup = saveMedia(t, st, store.ProviderInfobip, "ABEGOFl3VCQoAhAq", url)
	require.True(t, dup)

	api := newAPI(t, st)
	for range 20 {
		resp, body := do(t, http.MethodGet, api.URL+"/media/"+mediaID, true, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, data, body)
	}
	msg, err := st.Message(msgID)
	require.NoError(t, err)
	require.Equal(t, store.MediaCached, msg.Media.State)
	require.Equal(t, "/media/"+mediaID, msg.Media.URL)
	// The queue is empty, so nothing can fetch again; the count proves it.
	queued, err := st.MediaQueue(1)
	require.NoError(t, err)
	require.Empty(t, queued)
	require.EqualValues(t, 1, o.count("/media/abc"))
	require.Empty(t, st.Check())
}

func TestFetchRetriesTransientFailures(t *testing.T) {
	o := newOrigin(t)
	data := []byte("GIF89a plus some bytes")
	var n503, n429 atomic.Int64
	u503 := o.handle("/503", func(w http.ResponseWriter, r *http.Request) {
		if n503.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(data)
	})
	u429 := o.handle("/429", func(w http.ResponseWriter, r *http.Request) {
		if n429.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write(data)
	})
	st := openStore(t, tempDB(t))
	_, _ = startFetcher(t, st, testConfig(), nil)

	_, id503, _ := saveMedia(t, st, store.ProviderInfobip, "m503", u503)
	before429 := time.Now()
	_, id429, _ := saveMedia(t, st, store.ProviderCM, "m429", u429)

	md := waitState(t, st, id503, store.MediaCached)
	require.Equal(t, 2, md.Attempts)
	require.EqualValues(t, 2, o.count("/503"))
	require.Equal(t, "image/gif", md.ContentType, "no declared type: the sniffed one")

	// After the 429 the retry is scheduled no sooner than Retry-After.
	require.Eventually(t, func() bool {
		md, err := st.Media(id429)
		require.NoError(t, err)
		return md.Attempts >= 1
	}, 10*time.Second, 5*time.Millisecond)
	md, err := st.Media(id429)
	require.NoError(t, err)
	if md.State == store.MediaPending {
		require.Contains(t, md.Error, "429")
		require.False(t, md.NextAt.Before(before429.Add(time.Second)), "next try %v ignores Retry-After", md.NextAt)
	}
	md = waitState(t, st, id429, store.MediaCached)
	require.Equal(t, 2, md.Attempts)
	require.EqualValues(t, 2, o.count("/429"))
	require.Empty(t, st.Check())
}

// A retry in progress survives a restart: the state is in the store.
func TestFetchRetryResumesAfterRestart(t *testing.T) {
	o := newOrigin(t)
	var fail atomic.Bool
	fail.Store(true)
	url := o.handle("/flaky", func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		_, _ = w.Write([]byte("%PDF-1.4 fine"))
	})
	path := tempDB(t)
	st := openStore(t, path)
	cfg := testConfig()
	_, stop := startFetcher(t, st, cfg, nil)
	_, id, _ := saveMedia(t, st, store.ProviderInfobip, "flaky", url)
	require.Eventually(t, func() bool { return o.count("/flaky") >= 2 }, 10*time.Second, 5*time.Millisecond)
	stop()
	require.NoError(t, st.Close())

	st = openStore(t, path)
	md, err := st.Media(id)
	require.NoError(t, err)
	require.Equal(t, store.MediaPending, md.State)
	require.GreaterOrEqual(t, md.Attempts, 1)
	require.Contains(t, md.Error, "502")
	fail.Store(false)
	_, _ = startFetcher(t, st, cfg, nil)
	md = waitState(t, st, id, store.MediaCached)
	require.Equal(t, "application/pdf", md.ContentType)
	require.Empty(t, md.Error)
}

func TestFetchGivesUpAfterRetryFor(t *testing.T) {
	o := newOrigin(t)
	url := o.handle("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	})
	st := openStore(t, tempDB(t))
	cfg := testConfig()
	cfg.RetryFor = 50 * time.Millisecond
	_, _ = startFetcher(t, st, cfg, nil)
	_, id, _ := saveMedia(t, st, store.ProviderInfobip, "down", url)
	md := waitState(t, st, id, store.MediaFailed)
	require.Contains(t, md.Error, "gave up after")
	require.Contains(t, md.Error, "500")
	require.GreaterOrEqual(t, o.count("/down"), int64(2))
	require.EqualValues(t, 1, st.Counter("media_failed"))
}

func TestFetchTimeoutIsRetried(t *testing.T) {
	o := newOrigin(t)
	var hang atomic.Bool
	hang.Store(true)
	url := o.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			<-r.Context().Done() // until the client gives up
			return
		}
		_, _ = w.Write([]byte("late but fine"))
	})
	st := openStore(t, tempDB(t))
	cfg := testConfig()
	cfg.FetchTimeout = 100 * time.Millisecond
	cfg.MinBackoff, cfg.MaxBackoff = 50*time.Millisecond, 50*time.Millisecond
	_, _ = startFetcher(t, st, cfg, nil)
	_, id, _ := saveMedia(t, st, store.ProviderInfobip, "slow", url)
	require.Eventually(t, func() bool {
		md, err := st.Media(id)
		require.NoError(t, err)
		return md.Attempts >= 1
	}, 10*time.Second, 5*time.Millisecond)
	md, err := st.Media(id)
	require.NoError(t, err)
	require.Equal(t, store.MediaPending, md.State)
	require.Contains(t, md.Error, "timeout")
	hang.Store(false)
	waitState(t, st, id, store.MediaCached)
}

func TestFetchFinalOutcomes(t *testing.T) {
	o := newOrigin(t)
	big := pattern(2000)
	cases := []struct {
		name, state, reason string
		handler             http.HandlerFunc
		url                 string // instead of the handler
	}{
		{name: "404", state: store.MediaFailed, reason: "404",
			handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", http.StatusNotFound) }},
		{name: "403", state: store.MediaFailed, reason: "403",
			handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) }},
		{name: "too large, declared", state: store.MediaTooLarge, reason: "over media.max_bytes",
			handler: func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) }},
		{name: "too large, streamed", state: store.MediaTooLarge, reason: "more than media.max_bytes",
			handler: func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i < len(big); i += 100 { // chunked: no Content-Length
					_, _ = w.Write(big[i : i+100])
					w.(http.Flusher).Flush()
				}
			}},
		{name: "empty", state: store.MediaFailed, reason: "empty body",
			handler: func(w http.ResponseWriter, r *http.Request) {}},
		{name: "ftp scheme", state: store.MediaFailed, reason: "not an http(s) URL", url: "ftp://example.com/a.jpg"},
		{name: "file scheme", state: store.MediaFailed, reason: "not an http(s) URL", url: "file:///etc/passwd"},
	}
	st := openStore(t, tempDB(t))
	cfg := testConfig()
	cfg.MaxBytes = 1000
	_, _ = startFetcher(t, st, cfg, nil)
	failed := 0
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := c.url
			if url == "" {
				url = o.handle(fmt.Sprintf("/case%d", i), c.handler)
			}
			_, id, _ := saveMedia(t, st, store.ProviderCM, fmt.Sprintf("final-%d", i), url)
			md := waitState(t, st, id, c.state)
			require.Contains(t, md.Error, c.reason)
			require.Equal(t, url, md.SourceURL, "the link is kept")
			require.Equal(t, 1, md.Attempts, "final: never retried")
			if c.state == store.MediaFailed {
				failed++
			}
		})
	}
	require.EqualValues(t, failed, st.Counter("media_failed"))
	require.Empty(t, st.Check())
}

// Refused destinations: the origin (standing in for whatever lives at
// those addresses) never sees a request.
func TestFetchRefusesNonPublicAddresses(t *testing.T) {
	o := newOrigin(t)
	port := o.port()
	private := newOrigin(t) // an internal service a redirect points at
	privURL := private.bytes("/secret", "text/plain", []byte("internal"))
	cases := []struct{ name, url, reason string }{
		{"loopback v4", fmt.Sprintf("http://127.0.0.1:%d/x", port), "loopback"},
		{"loopback v6", fmt.Sprintf("http://[::1]:%d/x", port), "loopback"},
		{"localhost name", fmt.Sprintf("http://localhost:%d/x", port), "loopback"},
		{"metadata", "http://169.254.169.254/latest/meta-data/", "cloud metadata"},
		{"metadata v6", "http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"},
		{"private", "http://10.0.0.1/x", "private"},
		{"mapped v4", fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/x", port), "loopback"},
		{"unspecified", fmt.Sprintf("http://0.0.0.0:%d/x", port), "unspecified"},
	}
	o.bytes("/x", "image/png", []byte("should never be served"))
	st := openStore(t, tempDB(t))
	cfg := testConfig()
	cfg.AllowPrivateHosts = false
	_, _ = startFetcher(t, st, cfg, nil)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, id, _ := saveMedia(t, st, store.ProviderInfobip, fmt.Sprintf("ssrf-%d", i), c.url)
			md := waitState(t, st, id, store.MediaFailed)
			require.Contains(t, md.Error, "refused")
			require.Contains(t, md.Error, c.reason)
		})
	}
	require.Zero(t, o.total.Load(), "the origin got requests")

	// A redirect from an allowed host to a private one is refused at dial
	// time for the redirect too.
	st2 := openStore(t, tempDB(t))
	_, _ = startFetcher(t, st2, cfg, onlyOrigin(o))
	redir := o.handle("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, privURL, http.StatusFound)
	})
	_, id, _ := saveMedia(t, st2, store.ProviderInfobip, "redirect", redir)
	md := waitState(t, st2, id, store.MediaFailed)
	require.Contains(t, md.Error, "refused: address 127.0.0.1 is loopback")
	require.EqualValues(t, 1, o.count("/redirect"))
	require.Zero(t, private.total.Load(), "the private host got requests")

	// The same policy lets the allowed host through.
	ok := o.bytes("/fine", "image/png", []byte("\x89PNG\r\n\x1a\nfine"))
	_, id, _ = saveMedia(t, st2, store.ProviderInfobip, "fine", ok)
	waitState(t, st2, id, store.MediaCached)
}

func TestFetchRedirectLimit(t *testing.T) {
	o := newOrigin(t)
	loop := o.handle("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	st := openStore(t, tempDB(t))
	_, _ = startFetcher(t, st, testConfig(), nil)
	_, id, _ := saveMedia(t, st, store.ProviderInfobip, "loop", loop)
	md := waitState(t, st, id, store.MediaFailed)
	require.Contains(t, md.Error, "more than 5 redirects")
	require.EqualValues(t, 6, o.count("/loop"))
}

func TestBlockedReason(t *testing.T) {
	for addr, blocked := range map[string]bool{
		"127.0.0.1": true, "::1": true, "10.1.2.3": true, "172.16.0.1": true, "192.168.1.1": true,
		"169.254.169.254": true, "fe80::1": true, "fc00::1": true, "fd00:ec2::254": true,
		"0.0.0.0": true, "::": true, "224.0.0.1": true, "ff02::1": true, "100.100.100.200": true,
		"::ffff:10.0.0.1": true, "64:ff9b::a00:1": true, "255.255.255.255": true,
		"8.8.8.8": false, "2a00:1450:4001::200e": false, "93.184.216.34": false,
	} {
		ip, err := netipParse(addr)
		require.NoError(t, err)
		require.Equal(t, blocked, blockedReason(ip) != "", addr)
	}
}

func TestFetchContentTypeDisagreement(t *testing.T) {
	o := newOrigin(t)
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	url := o.bytes("/liar", "image/jpeg", png)
	st := openStore(t, tempDB(t))
	_, _ = startFetcher(t, st, testConfig(), nil)
	_, id, _ := saveMedia(t, st, store.ProviderInfobip, "liar", url)
	md := waitState(t, st, id, store.MediaCached)
	require.Equal(t, "image/jpeg", md.ContentType)
	require.Equal(t, "image/png", md.SniffedType)
}

// Infobip media is fetched with the provider's Basic credentials; CM media
// without, and (when configured) deleted at CM once cached.
func TestFetchProviderCredentialsAndDelete(t *testing.T) {
	o := newOrigin(t)
	var auths, deletes atomic.Int64
	handler := func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			deletes.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if u, p, ok := r.BasicAuth(); ok {
			if u != "ib-user" || p != "ib-pass" {
				http.Error(w, "bad creds", http.StatusUnauthorized)
				return
			}
			auths.Add(1)
		}
		_, _ = w.Write([]byte("bytes"))
	}
	ib := o.handle("/whatsapp/1/senders/447796344125/media/c256e11d", handler)
	cm := o.handle("/fileproxy/files/db1c9ba779aa4f6da061c4d8e3601cf3", handler)
	st := openStore(t, tempDB(t))
	cfg := testConfig()
	cfg.ProviderKind, cfg.BasicUser, cfg.BasicPassword = "infobip", "ib-user", "ib-pass"
	cfg.ProviderURL = o.URL + "/omni/1/advanced" // the login goes to the provider's own origin only
	cfg.DeleteAtProvider = true
	_, _ = startFetcher(t, st, cfg, nil)
	_, ibID, _ := saveMedia(t, st, store.ProviderInfobip, "ib", ib)
	waitState(t, st, ibID, store.MediaCached)
	require.EqualValues(t, 1, auths.Load())
	require.Zero(t, deletes.Load(), "only CM media is deleted at the provider")

	_, cmID, _ := saveMedia(t, st, store.ProviderCM, "cm", cm)
	waitState(t, st, cmID, store.MediaCached)
	require.Eventually(t, func() bool { return deletes.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	require.EqualValues(t, 1, auths.Load(), "no Infobip credentials on CM URLs")
	require.EqualValues(t, 2, o.count("/fileproxy/files/db1c9ba779aa4f6da061c4d8e3601cf3"), "one GET, one DELETE")
}

func TestFetchIdenticalBytesStoredOnce(t *testing.T) {
	o := newOrigin(t)
	sticker := append([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), pattern(300<<10)...)
	a := o.bytes("/a", "image/webp", sticker)
	b := o.bytes("/b", "image/webp", sticker)
	st := openStore(t, tempDB(t))
	_, _ = startFetcher(t, st, testConfig(), nil)
	_, idA, _ := saveMedia(t, st, store.ProviderInfobip, "sticker-a", a)
	_, idB, _ := saveMedia(t, st, store.ProviderInfobip, "sticker-b", b)
	mdA := waitState(t, st, idA, store.MediaCached)
	mdB := waitState(t, st, idB, store.MediaCached)
	require.Equal(t, mdA.SHA256, mdB.SHA256)
	blobs, chunks := st.BlobCounts()
	require.Equal(t, 1, blobs)
	require.Equal(t, 2, chunks)
	bl, err := st.Blob(mdA.SHA256)
	require.NoError(t, err)
	require.Equal(t, 2, bl.Refs)
	require.Empty(t, st.Check())
}

// A message deleted by the customer (CM deletedMessage) releases its bytes.
func TestFetchDeletedMessageReleasesBytes(t *testing.T) {
	o := newOrigin(t)
	url := o.bytes("/del", "video/mp4", pattern(10_000))
	st := openStore(t, tempDB(t))
	_, _ = startFetcher(t, st, testConfig(), nil)
	_, id, _ := saveMedia(t, st, store.ProviderCM, "cm-ref-1", url)
	waitState(t, st, id, store.MediaCached)
	_, err := st.SaveInbound(context.Background(), []*store.Message{{
		Provider: store.ProviderCM, ExternalID: "cm-del-1", From: "31612345678", To: "1234",
		Type: store.TypeDelete, Target: "cm-ref-1",
	}})
	require.NoError(t, err)
	waitState(t, st, id, store.MediaDeleted)
	blobs, chunks := st.BlobCounts()
	require.Zero(t, blobs)
	require.Zero(t, chunks)
	require.Empty(t, st.Check())
}

// dispatch works from a snapshot of the queue. A fetch that was running
// when the snapshot was taken and has since been rescheduled (a 503, a
// Retry-After) must not be handed out again at its old time.
func TestDispatchHonoursARetryScheduledMeanwhile(t *testing.T) {
	st := openStore(t, tempDB(t))
	f := NewFetcher(st, nil, nil, testConfig()) // not running: the test drives dispatch
	_, c, _ := saveMedia(t, st, store.ProviderInfobip, "snap-c", "https://example.com/c.jpg")
	_, a, _ := saveMedia(t, st, store.ProviderInfobip, "snap-a", "https://example.com/a.jpg")
	_, b, _ := saveMedia(t, st, store.ProviderInfobip, "snap-b", "https://example.com/b.jpg")

	work := make(chan *store.Media)
	done := make(chan error, 1)
	go func() {
		_, err := f.dispatch(context.Background(), work)
		close(work)
		done <- err
	}()
	// Once c is handed out the snapshot is taken, and dispatch cannot get
	// past a until it is received. The earlier attempt at b ends
	// meanwhile: retry in an hour.
	require.Equal(t, c, (<-work).ID)
	require.NoError(t, st.MarkMediaRetry(context.Background(), b, st.Now().Add(time.Hour), "HTTP 503 Service Unavailable"))
	require.Equal(t, a, (<-work).ID)
	var handed []string
	for md := range work {
		handed = append(handed, md.ID)
	}
	require.NoError(t, <-done)
	require.Empty(t, handed, "a fetch scheduled an hour from now was handed out at once")
}

// cancelAtEOF cancels the fetch's context the moment the body has been
// read in full: a shutdown landing between a successful GET and its commit.
type cancelAtEOF struct {
	rt     http.RoundTripper
	cancel context.CancelFunc
}

func (c cancelAtEOF) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err == nil {
		resp.Body = &eofBody{ReadCloser: resp.Body, cancel: c.cancel}
	}
	return resp, err
}

type eofBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.cancel()
	}
	return n, err
}

// Bytes fetched in full are kept even when shutdown begins right after:
// dropping them would mean a second GET of the URL at the next start.
func TestFetchSucceededJustBeforeShutdownIsKept(t *testing.T) {
	o := newOrigin(t)
	data := []byte("\x89PNG\r\n\x1a\n fetched once")
	url := o.bytes("/once", "image/png", data)
	st := openStore(t, tempDB(t))
	_, id, _ := saveMedia(t, st, store.ProviderInfobip, "shutdown", url)
	md, err := st.Media(id)
	require.NoError(t, err)

	f := NewFetcher(st, nil, nil, testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.client.Transport = cancelAtEOF{rt: f.client.Transport, cancel: cancel}
	require.True(t, f.fetch(ctx, md))
	require.Error(t, ctx.Err(), "the test did not cancel")

	md, err = st.Media(id)
	require.NoError(t, err)
	require.Equal(t, store.MediaCached, md.State)
	require.Equal(t, sum(data), md.SHA256)
	queued, err := st.MediaQueue(1)
	require.NoError(t, err)
	require.Empty(t, queued, "still queued: the next start would GET it again")
	require.EqualValues(t, 1, o.count("/once"))
}
