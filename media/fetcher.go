// Package media fetches inbound media URLs once, keeps the bytes in the
// store, and serves them to agents (and hosted media to providers).
package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"imchannel/config"
	"imchannel/metrics"
	"imchannel/retry"
	"imchannel/store"
)

// Config tunes the fetcher. FromConfig builds it from the service config.
type Config struct {
	Workers           int
	MaxBytes          int64
	AllowPrivateHosts bool
	ConnectTimeout    time.Duration
	FetchTimeout      time.Duration
	RetryFor          time.Duration // give up (failed) after retrying this long
	MinBackoff        time.Duration
	MaxBackoff        time.Duration
	MaxRedirects      int
	DeleteAtProvider  bool // DELETE the provider's copy (CM) once cached

	// Credentials for fetching Infobip media: sent as HTTP Basic on media
	// of Infobip messages when ProviderKind is "infobip", and only to the
	// origin of ProviderURL and MediaHosts (credentials.go).
	ProviderKind  string
	BasicUser     string
	BasicPassword string
	ProviderURL   string
	MediaHosts    []string

	// IdlePoll is the longest the fetcher sleeps without a change
	// notification (a safety net for missed notifications).
	IdlePoll time.Duration
}

// FromConfig maps the [media] and [provider] sections.
func FromConfig(c config.Config) Config {
	return Config{
		Workers:           c.Media.Workers,
		MaxBytes:          c.Media.MaxBytes,
		AllowPrivateHosts: c.Media.AllowPrivateHosts,
		ConnectTimeout:    c.Media.ConnectTimeout.Duration,
		FetchTimeout:      c.Media.FetchTimeout.Duration,
		RetryFor:          c.Media.RetryFor.Duration,
		MinBackoff:        c.Media.MinBackoff.Duration,
		MaxBackoff:        c.Media.MaxBackoff.Duration,
		DeleteAtProvider:  c.Media.DeleteAtProvider,
		ProviderKind:      c.Provider.Kind,
		BasicUser:         c.Provider.BasicUser,
		BasicPassword:     c.Provider.BasicPassword,
		ProviderURL:       c.Provider.URL,
		MediaHosts:        c.Provider.MediaHosts,
	}
}

// defaults fills what the caller left zero from config.Default(), the one
// place defaults live; MaxRedirects and IdlePoll are not config keys.
func (c *Config) defaults() {
	def := FromConfig(config.Default())
	orDefault(&c.Workers, def.Workers)
	orDefault(&c.MaxBytes, def.MaxBytes)
	orDefault(&c.ConnectTimeout, def.ConnectTimeout)
	orDefault(&c.FetchTimeout, def.FetchTimeout)
	orDefault(&c.RetryFor, def.RetryFor)
	orDefault(&c.MaxBackoff, def.MaxBackoff)
	orDefault(&c.MinBackoff, def.MinBackoff)
	// A cap below the first step lowers the first step (max_backoff alone
	// is enough to make retries fast).
	c.MinBackoff = min(c.MinBackoff, c.MaxBackoff)
	orDefault(&c.MaxRedirects, 5)
	orDefault(&c.IdlePoll, time.Minute)
}

// orDefault sets *v to def unless it is positive.
func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Fetcher is the background worker that turns pending media into cached
// bytes. Each URL is fetched until one GET succeeds, then never again: the
// record is cached, off the queue, and serving reads only the store.
type Fetcher struct {
	st      *store.Store
	log     *slog.Logger
	metrics *metrics.Metrics
	cfg     Config
	client  *http.Client

	mu       sync.Mutex
	inflight map[string]bool
	kick     chan struct{}
}

// NewFetcher builds a fetcher; m may be nil.
func NewFetcher(st *store.Store, log *slog.Logger, m *metrics.Metrics, cfg Config) *Fetcher {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fetcher{
		st: st, log: log.With("component", "media"), metrics: m, cfg: cfg,
		client:   newClient(cfg, defaultPolicy(cfg.AllowPrivateHosts)),
		inflight: map[string]bool{},
		kick:     make(chan struct{}, 1),
	}
}

// Run fetches until ctx ends: it wakes on media changes in the store, when
// a worker finishes, and when the earliest retry falls due.
func (f *Fetcher) Run(ctx context.Context) {
	changes, stop := f.st.Subscribe(256, "media")
	defer stop()
	work := make(chan *store.Media)
	var wg sync.WaitGroup
	for range f.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for md := range work {
				if !f.fetch(ctx, md) {
					// The store refused the result (disk full, closing):
					// hold the slot a while instead of fetching in a loop.
					retry.Sleep(ctx, f.cfg.MinBackoff)
				}
				f.mu.Lock()
				delete(f.inflight, md.ID)
				f.mu.Unlock()
				select {
				case f.kick <- struct{}{}:
				default:
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(work)
	for {
		wake, err := f.dispatch(ctx, work)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.log.Error("reading the media queue", "err", err)
			wake = f.st.Now().Add(f.cfg.MinBackoff)
		}
		d := f.cfg.IdlePoll
		if !wake.IsZero() {
			d = min(d, max(wake.Sub(f.st.Now()), time.Millisecond))
		}
		if !retry.Idle(ctx, d, changes, f.kick) {
			return
		}
	}
}

// dispatch hands every due, not already running fetch to the workers and
// returns when the next one falls due (zero: none queued).
func (f *Fetcher) dispatch(ctx context.Context, work chan<- *store.Media) (time.Time, error) {
	q, err := f.st.MediaQueue(f.cfg.Workers + 64)
	if err != nil {
		return time.Time{}, err
	}
	now := f.st.Now()
	for _, e := range q {
		f.mu.Lock()
		busy := f.inflight[e.ID]
		f.mu.Unlock()
		if busy {
			continue
		}
		if e.At.After(now) {
			return e.At, nil
		}
		md, err := f.st.Media(e.ID)
		if err != nil || md.State != store.MediaPending {
			continue // check reports a dangling queue entry
		}
		if md.NextAt.After(now) {
			// Rescheduled since the snapshot (an attempt that was running
			// then has ended in a retry): not due; the worker's kick
			// brings a fresh look at the queue.
			continue
		}
		f.mu.Lock()
		f.inflight[e.ID] = true
		f.mu.Unlock()
		select {
		case work <- md:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
	if len(q) == f.cfg.Workers+64 {
		return now, nil // more queued than listed: look again at once
	}
	return time.Time{}, nil
}

// outcome is what one attempt decided.
type outcome struct {
	retry      bool          // transient: try again later
	retryAfter time.Duration // the server's Retry-After, if any
	state      string        // final failure state (failed, too_large)
	reason     string
}

// fetch makes one attempt and records its result; false if the store
// could not record it.
func (f *Fetcher) fetch(ctx context.Context, md *store.Media) bool {
	log := f.log.With("media", md.ID)
	data, ctype, oc := f.get(ctx, md)
	if oc != nil && ctx.Err() != nil {
		// Shutting down cut the attempt short: the entry stays queued and
		// resumes at start. Bytes read in full are stored regardless, or
		// the next start would GET the URL a second time.
		return true
	}
	wctx := context.WithoutCancel(ctx)
	switch {
	case oc == nil:
		sniffed := http.DetectContentType(data[:min(len(data), 512)])
		src := store.BytesSource(data)
		// Previews are made once, here: a thread then downloads ~480 px
		// images instead of the originals.
		var img *store.ImageInfo
		if strings.HasPrefix(sniffed, "image/") {
			img = imageInfo(data)
		}
		if _, err := f.st.MarkMediaFetched(wctx, md.ID, src, ctype, sniffed, img); err != nil {
			log.Error("storing fetched media", "err", err)
			return false
		}
		f.count("cached")
		if f.metrics != nil {
			f.metrics.MediaBytes.Add(float64(len(data)))
		}
		log.Info("media cached", "bytes", len(data), "type", ctype)
		if f.cfg.DeleteAtProvider && md.Provider == store.ProviderCM {
			f.deleteAtProvider(ctx, md, log)
		}
	case oc.retry:
		next, giveUp := f.nextTry(md, oc.retryAfter)
		if giveUp {
			reason := fmt.Sprintf("gave up after %d attempts: %s", md.Attempts+1, oc.reason)
			if err := f.st.MarkMediaFailed(wctx, md.ID, store.MediaFailed, reason); err != nil {
				log.Error("recording media failure", "err", err)
				return false
			}
			f.count("failed")
			log.Warn("media fetch failed for good", "reason", reason)
			return true
		}
		if err := f.st.MarkMediaRetry(wctx, md.ID, next, oc.reason); err != nil {
			log.Error("recording media retry", "err", err)
			return false
		}
		f.count("retry")
		if f.metrics != nil {
			f.metrics.Retries.WithLabelValues("media").Inc()
		}
		log.Info("media fetch will be retried", "reason", oc.reason, "next", next)
	default:
		if err := f.st.MarkMediaFailed(wctx, md.ID, oc.state, oc.reason); err != nil {
			log.Error("recording media failure", "err", err)
			return false
		}
		f.count(oc.state)
		log.Warn("media not cached", "state", oc.state, "reason", oc.reason)
	}
	return true
}

func (f *Fetcher) count(result string) {
	if f.metrics == nil {
		return
	}
	f.metrics.MediaFetches.WithLabelValues(result).Inc()
	if result == store.MediaFailed {
		f.metrics.MediaFailures.Inc()
	}
}

// nextTry is capped exponential backoff with jitter, no sooner than the
// server's Retry-After; giveUp once that would pass retry_for.
func (f *Fetcher) nextTry(md *store.Media, retryAfter time.Duration) (time.Time, bool) {
	now := f.st.Now()
	first := md.FirstTry
	if first.IsZero() {
		first = now
	}
	b := retry.Backoff{Min: f.cfg.MinBackoff, Max: f.cfg.MaxBackoff}
	wait := max(b.Wait(md.Attempts+1), retryAfter)
	next := now.Add(wait)
	return next, next.After(first.Add(f.cfg.RetryFor))
}

// get makes the GET and reads at most MaxBytes. A nil outcome means success.
func (f *Fetcher) get(ctx context.Context, md *store.Media) ([]byte, string, *outcome) {
	u, err := url.Parse(md.SourceURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", &outcome{state: store.MediaFailed, reason: fmt.Sprintf("refused: %q is not an http(s) URL", md.SourceURL)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", &outcome{state: store.MediaFailed, reason: fmt.Sprintf("bad URL: %v", err)}
	}
	req = f.authorize(req, md)
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, "", transportOutcome(err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode >= 500:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, "", &outcome{retry: true, retryAfter: retry.After(resp.Header.Get("Retry-After"), f.st.Now()), reason: "HTTP " + resp.Status}
	default:
		return nil, "", &outcome{state: store.MediaFailed, reason: "HTTP " + resp.Status}
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		return nil, "", &outcome{state: store.MediaTooLarge, reason: fmt.Sprintf("%d bytes, over media.max_bytes (%d)", resp.ContentLength, f.cfg.MaxBytes)}
	}
	// Read one byte past the limit to tell "exactly max" from "more".
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		oc := transportOutcome(err)
		oc.reason = "reading body: " + oc.reason
		return nil, "", oc
	}
	if int64(len(data)) > f.cfg.MaxBytes {
		return nil, "", &outcome{state: store.MediaTooLarge, reason: fmt.Sprintf("more than media.max_bytes (%d)", f.cfg.MaxBytes)}
	}
	if len(data) == 0 {
		return nil, "", &outcome{state: store.MediaFailed, reason: "HTTP " + resp.Status + " with an empty body"}
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// authorize marks a fetch that may carry provider credentials: Infobip
// media URLs take the [provider] Basic credentials when that provider is
// Infobip. The transport adds them per hop, and only for the provider's
// own media origins over https (credentials.go).
func (f *Fetcher) authorize(req *http.Request, md *store.Media) *http.Request {
	if md.Provider == store.ProviderInfobip && f.cfg.ProviderKind == store.ProviderInfobip && f.cfg.BasicUser != "" {
		return req.WithContext(withProviderAuth(req.Context()))
	}
	return req
}

// deleteAtProvider removes CM's copy once ours is durable (docs/protocols.md#cm-inbound: DELETE
// on the exact URL, 204). Best effort: a failure is logged, not retried.
func (f *Fetcher) deleteAtProvider(ctx context.Context, md *store.Media, log *slog.Logger) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, md.SourceURL, nil)
	if err != nil {
		return
	}
	resp, err := f.client.Do(req)
	if err != nil {
		log.Warn("deleting media at provider", "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		log.Warn("deleting media at provider: unexpected answer", "status", resp.Status)
		return
	}
	log.Info("deleted media at provider")
}

// transportOutcome classifies an error from the client: refusals are final,
// everything else (timeouts, refused or reset connections, DNS) transient.
func transportOutcome(err error) *outcome {
	if be, ok := isBlocked(err); ok {
		return &outcome{state: store.MediaFailed, reason: be.Error()}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "Client.Timeout") {
		msg = "timeout: " + msg
	}
	return &outcome{retry: true, reason: msg}
}
