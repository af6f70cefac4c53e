package store

import (
	"context"
	"encoding/binary"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The events log: every stored change worth handing on (a message
// received or queued, a status reached, media cached or given up on, a
// message deleted, a customer erased), appended in the same transaction as
// the change itself, under a sequence number bbolt never hands out twice
// (NextSequence survives restarts and deletions). The feed
// (GET /api/v1/events) and the relay read it after a cursor; nothing in it
// is rewritten, and it is purged by age (PurgeEvents) and by erasure.

// Event types.
const (
	EventMessageReceived = "message.received" // an inbound message was stored
	EventMessageQueued   = "message.queued"   // an outbound message was accepted
	EventMessageStatus   = "message.status"   // an outbound message's timeline grew
	EventMediaCached     = "media.cached"     // a message's media bytes are here
	EventMediaFailed     = "media.failed"     // the fetch was given up (failed, too_large)
	EventMessageDeleted  = "message.deleted"  // the customer deleted a message
	EventCustomerErased  = "customer.erased"  // every message of a conversation was erased
)

var (
	bucketEvents          = []byte("events")
	bucketEventConv       = []byte("event_conv")
	bucketRelay           = []byte("relay")
	bucketRelayQuarantine = []byte("relay_quarantine")

	// keyEventsPurged holds the highest sequence removed by age: a cursor
	// below it has missed events.
	keyEventsPurged = []byte("events_purged")
)

// EventRecord is one entry of the events log.
type EventRecord struct {
	Seq            uint64    `json:"-"`
	Type           string    `json:"type"`
	At             time.Time `json:"at"`
	ConversationID string    `json:"conversationId,omitempty"`
	MessageID      string    `json:"messageId,omitempty"`
	// Status is the timeline entry a message.status event added.
	Status *Event `json:"status,omitempty"`
	// NumberHMAC names an erased customer the way the audit log does: a
	// keyed hash (store.NumberHMAC), never an unkeyed one, which anyone
	// could reverse by trying every number.
	NumberHMAC string `json:"numberHmac,omitempty"`

	// Message is the message as it is now (media joined), filled in by
	// EventsAfter; nil once the message is gone.
	Message *Message `json:"-"`
}

// Cursor is the event's position as the feed prints it.
func (e *EventRecord) Cursor() string { return FormatCursor(e.Seq) }

// FormatCursor prints a sequence as a cursor.
func FormatCursor(seq uint64) string { return strconv.FormatUint(seq, 10) }

// ParseCursor reads a cursor; "" is the start of the log.
func ParseCursor(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, Errorf(ErrInvalid, "cursor %q is not a cursor from this feed (a previous page's next)", clipString(s))
	}
	return n, nil
}

func clipString(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func seqKey(seq uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return b[:]
}

// logEvent appends rec to the events log in t. A media event names only
// its message; the conversation is looked up.
func (t *Tx) logEvent(rec EventRecord) error {
	if rec.MessageID == "" && rec.ConversationID == "" {
		return nil // hosted media: no message, nothing to tell
	}
	if rec.ConversationID == "" && rec.MessageID != "" {
		if m, err := t.getMessage(rec.MessageID); err == nil {
			rec.ConversationID = m.ConversationID
		}
	}
	b := t.tx.Bucket(bucketEvents)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	rec.At = t.now.UTC()
	v, err := encode(&rec)
	if err != nil {
		return err
	}
	if err := b.Put(seqKey(seq), v); err != nil {
		return err
	}
	if rec.ConversationID != "" {
		if err := t.tx.Bucket(bucketEventConv).Put(append([]byte(rec.ConversationID), seqKey(seq)...), []byte{}); err != nil {
			return err
		}
	}
	t.logged = true
	return nil
}

// feedSignal wakes readers waiting for new events: each commit that
// appended events closes the current channel.
type feedSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (f *feedSignal) wait() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch == nil {
		f.ch = make(chan struct{})
	}
	return f.ch
}

func (f *feedSignal) fire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch != nil {
		close(f.ch)
		f.ch = nil
	}
}

// EventsChanged returns a channel closed by the next commit that appends
// events. Take it before reading, so an append between the read and the
// wait is not missed.
func (s *Store) EventsChanged() <-chan struct{} { return s.feed.wait() }

// EventPage is a read of the log after a cursor.
type EventPage struct {
	Events []*EventRecord
	// Purged is the highest sequence removed by age (0: none): a cursor
	// below it has missed events, and Purged itself is the oldest valid one.
	Purged uint64
	// Last is the newest sequence handed out (the log's end).
	Last uint64
}

// EventsAfter reads up to limit events after cursor after, each with its
// message as it is now (media joined). Events removed by erasure are simply
// not there; events removed by age show in Purged.
func (s *Store) EventsAfter(after uint64, limit int) (EventPage, error) {
	var p EventPage
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		p.Purged = u64(tx.Bucket(bucketMeta).Get(keyEventsPurged))
		p.Last = b.Sequence()
		// No read cache: each event is read about once per reader, so
		// caching would only copy bytes and push out what agents reread.
		r := newReadTx(tx, nil)
		c := b.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(p.Events) < limit; k, v = c.Next() {
			rec := &EventRecord{}
			if err := decode(v, rec); err != nil {
				return err
			}
			rec.Seq = binary.BigEndian.Uint64(k)
			if rec.MessageID != "" {
				if m, err := r.message(rec.MessageID); err == nil {
					rec.Message = m
				}
			}
			p.Events = append(p.Events, rec)
		}
		return nil
	})
	return p, err
}

// PurgeEvents removes events older than cutoff, oldest first, in
// transactions of at most EraseBatch, and records the highest sequence
// removed. It answers how many went.
func (s *Store) PurgeEvents(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := s.Update(ctx, func(t *Tx) error {
			n, more = 0, false
			b := t.tx.Bucket(bucketEvents)
			var keys [][]byte
			var convs []string
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if len(keys) == EraseBatch {
					more = true
					break
				}
				var rec EventRecord
				if err := decode(v, &rec); err != nil {
					return err
				}
				if !rec.At.Before(cutoff) {
					break
				}
				keys = append(keys, append([]byte(nil), k...))
				convs = append(convs, rec.ConversationID)
			}
			idx := t.tx.Bucket(bucketEventConv)
			for i, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
				if convs[i] != "" {
					if err := idx.Delete(append([]byte(convs[i]), k...)); err != nil {
						return err
					}
				}
			}
			if len(keys) > 0 {
				last := binary.BigEndian.Uint64(keys[len(keys)-1])
				if err := putU64(t.tx.Bucket(bucketMeta), string(keyEventsPurged), last); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// eraseEvents removes every event of the erased conversations, with the
// relay quarantine entries naming them, and records one customer.erased
// event per conversation, so readers of the feed learn to forget it too.
func (t *Tx) eraseEvents(convIDs []string, numberHMAC string) error {
	events := t.tx.Bucket(bucketEvents)
	idx := t.tx.Bucket(bucketEventConv)
	drop := map[string]bool{}
	for _, id := range convIDs {
		drop[id] = true
		prefix := []byte(id)
		var keys [][]byte
		c := idx.Cursor()
		for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := events.Delete(k[len(prefix):]); err != nil {
				return err
			}
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
	}
	q := t.tx.Bucket(bucketRelayQuarantine)
	var qkeys [][]byte
	if err := q.ForEach(func(k, v []byte) error {
		var r RelayQuarantined
		if decode(v, &r) == nil && drop[r.ConversationID] {
			qkeys = append(qkeys, append([]byte(nil), k...))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range qkeys {
		if err := q.Delete(k); err != nil {
			return err
		}
	}
	for _, id := range convIDs {
		if err := t.logEvent(EventRecord{Type: EventCustomerErased, ConversationID: id, NumberHMAC: numberHMAC}); err != nil {
			return err
		}
	}
	return nil
}

// PublishMedia gives a media record a capability token (once) and answers
// it: the relay hands CTLive {public_url}/media/public/{token}, which serves
// the cached bytes without credentials. Erasure deletes the token with the
// media.
func (s *Store) PublishMedia(ctx context.Context, id string) (string, error) {
	md, err := s.Media(id)
	if err != nil {
		return "", err
	}
	if md.Token != "" {
		return md.Token, nil
	}
	token := NewMediaToken()
	err = s.Update(ctx, func(t *Tx) error {
		md, err := t.getMedia(id)
		if err != nil {
			return err
		}
		if md.Token != "" {
			token = md.Token
			return nil
		}
		md.Token = token
		if err := t.tx.Bucket(bucketMediaToken).Put([]byte(token), []byte(id)); err != nil {
			return err
		}
		return t.putMedia(md)
	})
	return token, err
}

// ---- relay targets ----

// RelayState is a relay target's durable progress.
type RelayState struct {
	// Cursor: every event up to and including it was delivered (or
	// quarantined, or had nothing to send).
	Cursor      uint64    `json:"cursor"`
	Delivered   uint64    `json:"delivered"`   // events posted and acknowledged
	Failures    uint64    `json:"failures"`    // failed attempts (5xx, timeouts, refused connections)
	Consecutive int       `json:"consecutive"` // failed attempts since the last success
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	Quarantined uint64    `json:"quarantined"`
	// Skipped counts events removed by age before the target got them.
	Skipped uint64 `json:"skipped"`
}

// RelayQuarantined is an event a target refused with a 4xx: kept, visible
// on the status page, and not retried.
type RelayQuarantined struct {
	Seq            uint64    `json:"seq"`
	Type           string    `json:"type"`
	ConversationID string    `json:"conversationId,omitempty"`
	MessageID      string    `json:"messageId,omitempty"`
	ExternalID     string    `json:"externalId,omitempty"`
	HTTPStatus     int       `json:"httpStatus"`
	Reason         string    `json:"reason"`
	At             time.Time `json:"at"`
}

func quarantineKey(target string, seq uint64) []byte {
	return append(append([]byte(target), 0), seqKey(seq)...)
}

// RelayState reads a target's progress; a target never seen starts at 0.
func (s *Store) RelayState(target string) (RelayState, error) {
	var st RelayState
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketRelay).Get([]byte(target)); v != nil {
			return decode(v, &st)
		}
		return nil
	})
	return st, err
}

// SaveRelayState records a target's progress and, in the same
// transaction, the events it quarantined.
func (s *Store) SaveRelayState(ctx context.Context, target string, st RelayState, quarantined ...RelayQuarantined) error {
	return s.Update(ctx, func(t *Tx) error {
		v, err := encode(&st)
		if err != nil {
			return err
		}
		if err := t.tx.Bucket(bucketRelay).Put([]byte(target), v); err != nil {
			return err
		}
		q := t.tx.Bucket(bucketRelayQuarantine)
		for _, r := range quarantined {
			v, err := encode(&r)
			if err != nil {
				return err
			}
			if err := q.Put(quarantineKey(target, r.Seq), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// RelayStatus is what the status page and /metrics show for a target.
type RelayStatus struct {
	Name  string
	State RelayState
	// LagEvents is how many events of the log are after the cursor.
	LagEvents uint64
	// Oldest is when the oldest event after the cursor was stored (zero:
	// nothing waits).
	Oldest time.Time
	// Quarantine lists the newest quarantined events, newest first.
	Quarantine []RelayQuarantined
}

// RelayStatus reads a target's state, lag and newest quarantined events
// (at most limit) in one read transaction.
func (s *Store) RelayStatus(target string, limit int) (RelayStatus, error) {
	out := RelayStatus{Name: target}
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketRelay).Get([]byte(target)); v != nil {
			if err := decode(v, &out.State); err != nil {
				return err
			}
		}
		events := tx.Bucket(bucketEvents)
		cur := out.State.Cursor
		if last := events.Sequence(); last > cur {
			out.LagEvents = last - cur
		}
		if k, v := events.Cursor().Seek(seqKey(cur + 1)); k != nil {
			var rec EventRecord
			if decode(v, &rec) == nil {
				out.Oldest = rec.At
			}
		} else {
			out.LagEvents = 0
		}
		prefix := append([]byte(target), 0)
		c := tx.Bucket(bucketRelayQuarantine).Cursor()
		var v []byte
		k, _ := c.Seek(append(append([]byte(nil), prefix...), 0xff))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && hasPrefix(k, prefix) && len(out.Quarantine) < limit; k, v = c.Prev() {
			var r RelayQuarantined
			if decode(v, &r) == nil {
				out.Quarantine = append(out.Quarantine, r)
			}
		}
		return nil
	})
	return out, err
}

// createdEvent names a new message's event by its direction.
func createdEvent(m *Message) string {
	if m.Direction == Outbound {
		return EventMessageQueued
	}
	return EventMessageReceived
}

// EventEnvelope is an event as the feed and the relay's json format print
// it; Message is the caller's view of the message (the agents' JSON).
type EventEnvelope struct {
	Cursor         string    `json:"cursor"`
	Type           string    `json:"type"`
	At             time.Time `json:"at"`
	ConversationID string    `json:"conversationId,omitempty"`
	MessageID      string    `json:"messageId,omitempty"`
	Status         *Event    `json:"status,omitempty"`
	NumberHMAC     string    `json:"numberHmac,omitempty"`
	Message        any       `json:"message,omitempty"`
}

// Envelope wraps the event with msg (nil: no message).
func (e *EventRecord) Envelope(msg any) EventEnvelope {
	env := EventEnvelope{Cursor: e.Cursor(), Type: e.Type, At: e.At.UTC(), ConversationID: e.ConversationID,
		MessageID: e.MessageID, Status: e.Status, NumberHMAC: e.NumberHMAC}
	if msg != nil {
		env.Message = msg
	}
	return env
}

// checkEvents verifies the events log: every key is a sequence the bucket
// has handed out, every event decodes, and the per-conversation index and
// the log name each other exactly (erasure relies on the index).
func checkEvents(tx *bolt.Tx, add addFunc) {
	events := tx.Bucket(bucketEvents)
	idx := tx.Bucket(bucketEventConv)
	last := events.Sequence()
	_ = events.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			add("event key %x is not a sequence", k)
			return nil
		}
		seq := binary.BigEndian.Uint64(k)
		if seq > last {
			add("event %d is beyond the log's sequence %d", seq, last)
		}
		var rec EventRecord
		if err := decode(v, &rec); err != nil {
			add("event %d: %v", seq, err)
			return nil
		}
		if rec.ConversationID != "" && idx.Get(append([]byte(rec.ConversationID), k...)) == nil {
			add("event %d: no event_conv entry for conversation %s", seq, rec.ConversationID)
		}
		return nil
	})
	_ = idx.ForEach(func(k, _ []byte) error {
		if len(k) < 8 || events.Get(k[len(k)-8:]) == nil {
			add("event_conv entry %q names no event", k)
		}
		return nil
	})
}
