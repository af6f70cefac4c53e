package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"imchannel/config"
	"imchannel/retry"
	"imchannel/store"
)

// Dispatcher delivers the outbox to the provider. One scheduler reads the
// due entries (only the head of each customer's queue) and hands them to
// workers; each attempt's outcome is written to the store before the entry
// is released, so a restart resumes exactly where the last run stopped.
type Dispatcher struct {
	d      Deps
	log    *slog.Logger
	sender sender
	lim    *limiter
	kind   string

	mu   sync.Mutex
	busy map[string]bool
	// acked holds provider acceptances the store could not record yet:
	// those messages are recorded, never sent again.
	acked map[string]accepted
	kick  chan struct{}
}

// NewDispatcher makes the dispatcher for [provider] kind.
func NewDispatcher(d Deps) *Dispatcher {
	d.defaults()
	c := d.Client
	if c == nil {
		c = &http.Client{Timeout: d.Config.Provider.Timeout.Duration}
	}
	x := &Dispatcher{
		d:     d,
		log:   d.Log.With("component", "outbox"),
		lim:   newLimiter(d.Config.Provider.RatePerSecond),
		kind:  d.Config.Provider.Kind,
		busy:  map[string]bool{},
		acked: map[string]accepted{},
		kick:  make(chan struct{}, 1),
	}
	if x.kind == store.ProviderCM {
		x.sender = &cm{c: c, cfg: d.Config.Provider, st: d.Store}
	} else {
		x.sender = &infobip{c: c, cfg: d.Config.Provider}
	}
	return x
}

// scanBatch is how many due entries one read of the outbox hands out. The
// read is linear in the outbox depth, so a larger batch means fewer reads
// while a backlog drains; the workers take the batch in due order.
const scanBatch = 256

// idlePoll bounds how long the scheduler sleeps with nothing due: a safety
// net for a missed notification.
const idlePoll = 30 * time.Second

// Run delivers until ctx ends, then lets the attempts under way finish
// (each bounded by the provider timeout) and record their outcomes.
func (x *Dispatcher) Run(ctx context.Context) {
	workers := x.d.Config.Outbox.Workers
	if workers <= 0 {
		workers = 1
	}
	changes, stop := x.d.Store.Subscribe(64, "outbox")
	defer stop()
	work := make(chan store.OutboxItem)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				x.deliverSafe(ctx, it)
				x.release(it.Message.ID)
			}
		}()
	}
	defer func() {
		close(work)
		wg.Wait()
	}()
	for {
		// The busy set is copied before the read transaction starts: an
		// entry released after this point had its outcome committed before
		// the release, so the read cannot see it as still due.
		busy := x.busySnapshot()
		res, err := x.d.Store.DueOutbox(x.d.Now(), scanBatch, func(id string) bool { return busy[id] })
		if err != nil {
			x.log.Error("reading the outbox", "err", err)
			res.Next = x.d.Now().Add(x.minBackoff())
		}
		x.d.Metrics.OutboxDepth.Set(float64(res.Depth))
		for _, it := range res.Items {
			x.setBusy(it.Message.ID)
			select {
			case work <- it:
			case <-ctx.Done():
				return
			}
		}
		wait := idlePoll
		if !res.Next.IsZero() {
			wait = min(max(res.Next.Sub(x.d.Now()), 0), idlePoll)
		}
		if len(res.Items) > 0 {
			wait = 0 // there may be more due than we fetched
		}
		if !retry.Idle(ctx, wait, changes, x.kick) {
			return
		}
	}
}

func (x *Dispatcher) busySnapshot() map[string]bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[string]bool, len(x.busy))
	for id := range x.busy {
		out[id] = true
	}
	return out
}

func (x *Dispatcher) setBusy(id string) {
	x.mu.Lock()
	x.busy[id] = true
	x.mu.Unlock()
}

func (x *Dispatcher) release(id string) {
	x.mu.Lock()
	delete(x.busy, id)
	x.mu.Unlock()
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// sendLimit bounds one attempt: the provider timeout, or its default.
func (x *Dispatcher) sendLimit() time.Duration {
	if t := x.d.Config.Provider.Timeout.Duration; t > 0 {
		return t
	}
	return config.Default().Provider.Timeout.Duration
}

func (x *Dispatcher) minBackoff() time.Duration {
	if b := x.d.Config.Outbox.MinBackoff.Duration; b > 0 {
		return b
	}
	return config.Default().Outbox.MinBackoff.Duration
}

// backoff is the wait before attempt n+1 after n failures. A max_backoff
// below min_backoff is read as min_backoff here (the fetcher and the relay
// lower the first step instead); kept as it was.
func (x *Dispatcher) backoff(attempts int) time.Duration {
	lo := x.minBackoff()
	return retry.Backoff{Min: lo, Max: max(x.d.Config.Outbox.MaxBackoff.Duration, lo)}.Wait(attempts)
}

// deliverSafe is deliver for a worker: a panic while handling one message
// (content no payload can be built from) fails that message with the
// reason instead of taking the process down, where a restart would pick
// the same message up and panic again. The entry is released either way.
func (x *Dispatcher) deliverSafe(ctx context.Context, it store.OutboxItem) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		reason := fmt.Sprintf("internal error: panic while sending: %v", r)
		log := x.log.With("message", it.Message.ID, "externalId", it.Message.ExternalID)
		log.Error("send panicked; the message is marked failed", "panic", r, "stack", string(debug.Stack()))
		x.d.Metrics.Sends.WithLabelValues(x.kind, "failed").Inc()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		x.record(ctx, log, x.d.Store.MarkFailed(wctx, it.Message.ID, reason))
	}()
	x.deliver(ctx, it)
}

// deliver makes one attempt for one message and records its outcome.
func (x *Dispatcher) deliver(ctx context.Context, it store.OutboxItem) {
	m, st := it.Message, it.State
	// Outcomes are written even while shutting down: a provider's yes
	// must not be lost to a cancelled context.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	log := x.log.With("message", m.ID, "externalId", m.ExternalID)
	acc, wasAcked := x.ack(m.ID)
	if m.Deleted || m.Status == store.StatusFailed {
		x.record(ctx, log, x.d.Store.DropOutbox(wctx, m.ID))
		x.setAck(m.ID, nil)
		return
	}
	if wasAcked {
		// The provider took it on an earlier attempt; only its
		// recording failed. Record it, do not send it again.
		x.recordSent(ctx, wctx, log, m.ID, acc)
		return
	}
	limit := x.d.Config.Outbox.Deadline.Duration
	deadline := st.Release.Add(limit)
	giveUp := func(attempts int, lastErr string) {
		reason := fmt.Sprintf("gave up after %s (%d attempts)", limit, attempts)
		if lastErr != "" {
			reason += "; last error: " + lastErr
		}
		x.d.Metrics.Sends.WithLabelValues(x.kind, "failed").Inc()
		log.Warn("send deadline passed", "reason", reason)
		x.record(ctx, log, x.d.Store.MarkFailed(wctx, m.ID, reason))
	}
	// An entry whose retry was set for the deadline itself gets that last
	// try; one that was due earlier and is only now reached has run out.
	if limit > 0 && !x.d.Now().Before(deadline) && st.Due.Before(deadline) {
		giveUp(st.Attempts, st.LastError)
		return
	}
	if err := x.lim.wait(ctx); err != nil {
		return
	}
	// The batch was read a while ago: a message erased or deleted since
	// must not go out.
	if cur, err := x.d.Store.Message(m.ID); errors.Is(err, store.ErrNotFound) {
		return
	} else if err == nil && cur.Deleted {
		x.record(ctx, log, x.d.Store.DropOutbox(wctx, m.ID))
		return
	}
	// An attempt under way is finished even when shutdown begins (the
	// provider's timeout bounds it): cut off, the provider's yes could be
	// lost and the message sent again after the restart.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), x.sendLimit())
	defer scancel()
	acc, err := x.sender.send(sctx, m)
	if err == nil {
		x.d.Metrics.Sends.WithLabelValues(x.kind, "sent").Inc()
		if acc.Event.At.IsZero() {
			acc.Event.At = x.d.Now()
		}
		x.recordSent(ctx, wctx, log, m.ID, acc)
		return
	}
	var se *SendError
	if !errors.As(err, &se) {
		se = &SendError{Retryable: true, Reason: err.Error(), Err: err}
	}
	if !se.Retryable {
		x.d.Metrics.Sends.WithLabelValues(x.kind, "failed").Inc()
		log.Warn("provider refused the message", "reason", se.Error())
		x.record(ctx, log, x.d.Store.MarkFailed(wctx, m.ID, se.Error()))
		return
	}
	wait := max(x.backoff(st.Attempts+1), se.RetryAfter)
	next := x.d.Now().Add(wait)
	if limit > 0 && next.After(deadline) {
		if !x.d.Now().Before(deadline) {
			giveUp(st.Attempts+1, se.Error()) // that was the last try
			return
		}
		next = deadline // one last try at the deadline
	}
	x.d.Metrics.Sends.WithLabelValues(x.kind, "retry").Inc()
	x.d.Metrics.Retries.WithLabelValues("send").Inc()
	log.Info("send failed; will retry", "attempt", st.Attempts+1, "err", se.Error(), "next", next)
	x.record(ctx, log, x.d.Store.MarkRetry(wctx, m.ID, next, se.Error()))
}

// recordSent writes a provider's acceptance. When the write fails the
// acceptance is kept in memory and the entry's next turn retries the write
// instead of the send, so the customer does not get the message twice.
func (x *Dispatcher) recordSent(ctx, wctx context.Context, log *slog.Logger, id string, acc accepted) {
	err := x.d.Store.MarkSent(wctx, id, acc.ProviderID, acc.Event)
	if err == nil {
		x.setAck(id, nil)
		return
	}
	x.setAck(id, &acc)
	x.record(ctx, log, err)
}

func (x *Dispatcher) ack(id string) (accepted, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	acc, ok := x.acked[id]
	return acc, ok
}

// setAck remembers (acc != nil) or forgets an unrecorded acceptance.
func (x *Dispatcher) setAck(id string, acc *accepted) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if acc == nil {
		delete(x.acked, id)
	} else {
		x.acked[id] = *acc
	}
}

// record logs a failed outcome write. The entry stays in the outbox and is
// tried again (with the same id) after a pause, so a disk that refuses
// writes does not turn into a busy loop of provider calls.
func (x *Dispatcher) record(ctx context.Context, log *slog.Logger, err error) {
	if err == nil {
		return
	}
	log.Error("recording the send outcome failed", "err", err)
	retry.Sleep(ctx, x.minBackoff())
}

// limiter is a token bucket: rate messages per second, bursts of up to
// one second's worth.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newLimiter(rate float64) *limiter {
	return &limiter{rate: rate, tokens: max(rate, 1), last: time.Now()}
}

func (l *limiter) wait(ctx context.Context) error {
	if l.rate <= 0 {
		return ctx.Err() // no limit
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.tokens+now.Sub(l.last).Seconds()*l.rate, max(l.rate, 1))
	l.last = now
	l.tokens--
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if d == 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
