// Package relay hands every event of the store's events log on to CTLive
// (or any HTTP endpoint): one worker per [[relay]] target reads the log
// after the target's durable cursor and POSTs the events, at least once,
// in order per conversation, retrying with capped backoff across restarts.
// A target that refuses one event with a 4xx gets that event quarantined
// and the rest keep flowing. The relay only reads the log, so an outage of
// a target never slows ingest. docs/relay.md is the reference.
package relay

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"imchannel/config"
	"imchannel/metrics"
	"imchannel/store"
)

// Deps is what the relay uses.
type Deps struct {
	Store   *store.Store
	Log     *slog.Logger
	Metrics *metrics.Metrics // optional
	Targets []config.Relay
	// PublicURL is how a target reaches /media/public/{token}.
	PublicURL string
	// MessageJSON is the agents' view of a message (web's), used by the
	// json format; main wires it so this package need not import web.
	MessageJSON func(*store.Message) any
	// Client overrides the HTTP client (tests); its Timeout is replaced by
	// each target's.
	Client *http.Client
	// MinBackoff is the first retry's wait (default 1s).
	MinBackoff time.Duration
	// MediaWait bounds how long an inbound message waits for its media to
	// be cached before it goes with the provider's URL (default 2m).
	MediaWait time.Duration
}

// Relay runs the targets' workers.
type Relay struct {
	d       Deps
	workers []*worker
}

// Defaults of Deps.
const (
	defaultMinBackoff = time.Second
	defaultMediaWait  = 2 * time.Minute
	// maxBatch is how many events one post carries at most.
	maxBatch = 100
	// window is how far past the cursor a worker looks for events it can
	// send while an earlier conversation waits for its media.
	window = 2000
	// linger is how long a worker waits after a short batch for more
	// events to share the next post.
	linger = 20 * time.Millisecond
	// pageSize is how many events one read of the log takes.
	pageSize = 200
	// quarantineShown is how many quarantined events the status lists.
	quarantineShown = 20
)

// New builds the relay; with no targets Run returns at once.
func New(d Deps) *Relay {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.MinBackoff <= 0 {
		d.MinBackoff = defaultMinBackoff
	}
	if d.MediaWait <= 0 {
		d.MediaWait = defaultMediaWait
	}
	d.PublicURL = strings.TrimRight(d.PublicURL, "/")
	r := &Relay{d: d}
	for _, t := range d.Targets {
		c := &http.Client{}
		if d.Client != nil {
			cp := *d.Client
			c = &cp
		}
		c.Timeout = t.Timeout.Duration
		w := &worker{r: r, cfg: t, client: c, log: d.Log.With("component", "relay", "target", t.Name),
			done: map[uint64]bool{}}
		if m := d.Metrics; m != nil {
			m.RelayDelivered.WithLabelValues(t.Name)
			for _, k := range []string{"retry", "quarantined"} {
				m.RelayFailures.WithLabelValues(t.Name, k)
			}
		}
		r.workers = append(r.workers, w)
	}
	return r
}

// Run runs every target's worker until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()
}

// Status reads every target's state, lag and newest quarantined events
// from the store: what the status page shows, true after a restart too.
func (r *Relay) Status() []store.RelayStatus {
	out := make([]store.RelayStatus, 0, len(r.d.Targets))
	for _, t := range r.d.Targets {
		st, err := r.d.Store.RelayStatus(t.Name, quarantineShown)
		if err != nil {
			r.d.Log.Warn("relay status", "component", "relay", "target", t.Name, "err", err)
			continue
		}
		out = append(out, st)
	}
	return out
}

// UpdateMetrics sets the lag and last-success gauges from the store; the
// metrics handler calls it on each scrape.
func (r *Relay) UpdateMetrics() {
	m := r.d.Metrics
	if m == nil {
		return
	}
	now := r.d.Store.Now()
	for _, st := range r.Status() {
		m.RelayLagEvents.WithLabelValues(st.Name).Set(float64(st.LagEvents))
		age := 0.0
		if !st.Oldest.IsZero() {
			age = max(0, now.Sub(st.Oldest).Seconds())
		}
		m.RelayLagSeconds.WithLabelValues(st.Name).Set(age)
		last := 0.0
		if !st.State.LastSuccess.IsZero() {
			last = float64(st.State.LastSuccess.UnixNano()) / 1e9
		}
		m.RelayLastSuccess.WithLabelValues(st.Name).Set(last)
		m.RelayQuarantined.WithLabelValues(st.Name).Set(float64(st.State.Quarantined))
	}
}

// Signature headers: Stripe's and GitHub's scheme, a timestamp bound
// into an HMAC-SHA256 of the body so a captured post cannot be replayed
// later with another time.
const (
	HeaderTimestamp = "X-Imchannel-Timestamp"
	HeaderSignature = "X-Imchannel-Signature"
)

// Sign answers the signature header's value for body sent at ts.
func Sign(secret string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}
