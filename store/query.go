package store

import (
	"bytes"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// readTx wraps a read-only bbolt transaction with the store's decoders.
// With cache set, decoded messages are reused while their bytes are unchanged.
type readTx struct {
	tx    *bolt.Tx
	cache *readCache
	msgs  *bolt.Bucket // looked up once: a thread page reads hundreds
}

func newReadTx(tx *bolt.Tx, cache *readCache) readTx {
	return readTx{tx: tx, cache: cache, msgs: tx.Bucket(bucketMessages)}
}

func (r readTx) message(id string) (*Message, error) {
	b := r.msgs
	if b == nil {
		b = r.tx.Bucket(bucketMessages)
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, Errorf(ErrNotFound, "message %s not found", id)
	}
	var m Message
	if r.cache != nil {
		if c, ok := r.cache.get(id, v); ok {
			m = c
		} else {
			if err := decode(v, &m); err != nil {
				return nil, err
			}
			r.cache.put(id, bytes.Clone(v), &m)
		}
	} else if err := decode(v, &m); err != nil {
		return nil, err
	}
	r.joinMedia(&m)
	r.joinDelivery(&m)
	return &m, nil
}

// joinDelivery adds the outbox's state to an outbound message it holds.
func (r readTx) joinDelivery(m *Message) {
	// Only a queued or scheduled message can be in the outbox: sending,
	// failing and deleting all take it out (and a thread page reads 200).
	if m.Direction != Outbound || (m.Status != StatusQueued && m.Status != StatusScheduled) {
		return
	}
	b := r.tx.Bucket(bucketOutboxState)
	if b == nil {
		return
	}
	v := b.Get([]byte(m.ID))
	if v == nil {
		return
	}
	var st OutboxState
	if decode(v, &st) != nil {
		return
	}
	m.Delivery = &Delivery{Attempts: st.Attempts, LastError: st.LastError, NextAttemptAt: st.Due.UTC()}
}

// joinMedia replaces the message's media reference with the current record,
// as agents see it.
func (r readTx) joinMedia(m *Message) {
	if m.Media == nil || m.Media.ID == "" {
		return
	}
	v := r.tx.Bucket(bucketMedia).Get([]byte(m.Media.ID))
	if v == nil {
		return
	}
	var md Media
	if decode(v, &md) != nil {
		return
	}
	m.Media = AgentMedia(&md)
}

// AgentMedia is the part of a media record the agents' JSON shows.
func AgentMedia(md *Media) *Media {
	out := &Media{
		ID: md.ID, SourceURL: md.SourceURL, ContentType: md.ContentType, SniffedType: md.SniffedType,
		FileName: md.FileName, Size: md.Size, SHA256: md.SHA256, State: md.State, Error: md.Error,
		Width: md.Width, Height: md.Height, Thumb: md.Thumb,
	}
	// Only cached bytes can be served: a url for pending, failed or
	// too-large media would answer 404.
	if md.State == MediaCached {
		out.URL = "/media/" + md.ID
	}
	return out
}

func (r readTx) conversation(id string) (*Conversation, error) {
	v := r.tx.Bucket(bucketConvs).Get([]byte(id))
	if v == nil {
		return nil, Errorf(ErrNotFound, "conversation %s not found", id)
	}
	var c Conversation
	if err := decode(v, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Message returns one message, media joined.
func (s *Store) Message(id string) (*Message, error) {
	var m *Message
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		m, err = newReadTx(tx, s.reads).message(id)
		return err
	})
	return m, err
}

// MessagesByExternalID finds messages by any provider's external id or alias.
func (s *Store) MessagesByExternalID(externalID string) ([]*Message, error) {
	var out []*Message
	err := s.db.View(func(tx *bolt.Tx) error {
		seen := map[string]bool{}
		var keys [][]byte
		for _, p := range []string{ProviderInfobip, ProviderCM} {
			keys = append(keys, extKey(p, externalID), outKey(p, externalID))
		}
		for _, k := range keys {
			id := tx.Bucket(bucketExt).Get(k)
			if len(id) == 0 || seen[string(id)] {
				continue
			}
			seen[string(id)] = true
			m, err := newReadTx(tx, s.reads).message(string(id))
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// Conversation returns one conversation.
func (s *Store) Conversation(id string) (*Conversation, error) {
	var c *Conversation
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		c, err = readTx{tx: tx}.conversation(id)
		return err
	})
	return c, err
}

// ConversationByNumbers finds the conversation of a business and customer
// number (any format).
func (s *Store) ConversationByNumbers(business, customer string) (*Conversation, error) {
	var c *Conversation
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketConvKey).Get(convKey(NormalizeNumber(business), NormalizeNumber(customer)))
		if id == nil {
			return Errorf(ErrNotFound, "no conversation between %s and %s", business, customer)
		}
		var err error
		c, err = readTx{tx: tx}.conversation(string(id))
		return err
	})
	return c, err
}

// LatestInbound finds, among the conversations of customer with each of
// businesses (numbers in any format), the one the customer wrote to last:
// the one a reply without a named sender belongs to. It answers
// ErrNotFound when the customer never wrote to any of them. The cost is
// one key lookup per business number.
func (s *Store) LatestInbound(customer string, businesses []string) (*Conversation, error) {
	var best *Conversation
	cust := NormalizeNumber(customer)
	err := s.db.View(func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketConvKey)
		r := readTx{tx: tx}
		seen := map[string]bool{}
		for _, b := range businesses {
			b = NormalizeNumber(b)
			if b == "" || seen[b] {
				continue
			}
			seen[b] = true
			id := keys.Get(convKey(b, cust))
			if id == nil {
				continue
			}
			c, err := r.conversation(string(id))
			if err != nil {
				return err
			}
			if c.LastInboundAt.IsZero() {
				continue
			}
			if best == nil || c.LastInboundAt.After(best.LastInboundAt) {
				best = c
			}
		}
		return nil
	})
	if err == nil && best == nil {
		err = Errorf(ErrNotFound, "customer %s never wrote to any of the business numbers", customer)
	}
	return best, err
}

// ListConversations pages conversations, most recent activity first. q
// matches a number (any format, partial digits) or a piece of a name.
// cursor is the previous page's next; next is empty on the last page.
func (s *Store) ListConversations(q string, limit int, cursor string) (convs []*Conversation, next string, err error) {
	p, err := s.FindConversations(ConvQuery{Q: q}, limit, cursor)
	return p.Conversations, p.Next, err
}

func (c *Conversation) activityKey() []byte { return timeKey(c.LastActivity, c.ID) }

// ConversationMessages pages a conversation's messages: the newest limit
// messages older than before (all if before is empty), oldest first. next
// is the before for the page of older messages, empty when there are none.
func (s *Store) ConversationMessages(convID string, limit int, before string) (msgs []*Message, next string, err error) {
	if limit <= 0 || limit > 1000 {
		return nil, "", Errorf(ErrInvalid, "limit must be between 1 and 1000")
	}
	if len(convID) != 26 || strings.ContainsAny(convID, "/\x00") {
		return nil, "", Errorf(ErrNotFound, "conversation %q not found", convID)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		r := newReadTx(tx, s.reads)
		if _, err := r.conversation(convID); err != nil {
			return err
		}
		prefix := []byte(convID)
		c := tx.Bucket(bucketConvMsgs).Cursor()
		var k []byte
		if before == "" {
			// Seek past the whole prefix, then step back.
			k, _ = c.Seek(append(append([]byte(nil), prefix...), 0xff))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		} else {
			k, _ = c.Seek([]byte(convID + before))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
		}
		for ; k != nil && hasPrefix(k, prefix); k, _ = c.Prev() {
			if len(msgs) == limit {
				next = msgs[len(msgs)-1].ID
				break
			}
			m, err := r.message(string(k[len(prefix):]))
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		return nil
	})
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, next, err
}

// Stats is the overview the status page shows.
type Stats struct {
	Conversations uint64
	Messages      uint64
	InToday       uint64
	OutToday      uint64
	OutboxDepth   int
	FailedSends   uint64
	MediaPending  int
	MediaFailed   int
	FileSize      int64
}

// Stats reads the overview counters; "today" is the UTC day.
func (s *Store) Stats() (Stats, error) { return s.StatsIn(time.UTC) }

// StatsIn reads the overview counters with "today" the day in loc: the
// UTC day counters for UTC, else the sum of the quarter-hour counters since
// loc's midnight (written from schema 2 on; a day that began before an
// upgrade counts from the upgrade).
func (s *Store) StatsIn(loc *time.Location) (Stats, error) {
	var st Stats
	now := s.now()
	err := s.db.View(func(tx *bolt.Tx) error {
		cb := tx.Bucket(bucketCounters)
		st.Conversations = u64(cb.Get([]byte(counterConversations)))
		st.Messages = u64(cb.Get([]byte(counterMessages)))
		if loc == nil || loc == time.UTC {
			day := now.UTC().Format("2006-01-02")
			st.InToday = u64(cb.Get([]byte("in:" + day)))
			st.OutToday = u64(cb.Get([]byte("out:" + day)))
		} else {
			l := now.In(loc)
			midnight := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
			st.InToday = sumCounters(cb, quarterKey("in:", midnight), quarterKey("in:", now))
			st.OutToday = sumCounters(cb, quarterKey("out:", midnight), quarterKey("out:", now))
		}
		st.FailedSends = u64(cb.Get([]byte(counterFailedSends)))
		st.MediaFailed = int(u64(cb.Get([]byte("media_failed"))))
		st.OutboxDepth = tx.Bucket(bucketOutbox).Stats().KeyN
		st.MediaPending = tx.Bucket(bucketMediaQueue).Stats().KeyN
		st.FileSize = tx.Size()
		return nil
	})
	return st, err
}

// quarterKey names the quarter-hour counter of direction prefix ("in:" or
// "out:") holding t: "in@2026-12-01T22:30". The layout sorts by time.
func quarterKey(prefix string, t time.Time) string {
	return strings.TrimSuffix(prefix, ":") + "@" + t.UTC().Truncate(15*time.Minute).Format("2006-01-02T15:04")
}

// sumCounters adds the counters from key first to key last, inclusive.
func sumCounters(b *bolt.Bucket, first, last string) uint64 {
	var n uint64
	c := b.Cursor()
	for k, v := c.Seek([]byte(first)); k != nil && string(k) <= last; k, v = c.Next() {
		n += u64(v)
	}
	return n
}

// ConversationMessagesAfter pages a conversation forwards: the oldest
// limit messages newer than after, oldest first. more says whether newer
// ones remain.
func (s *Store) ConversationMessagesAfter(convID string, limit int, after string) (msgs []*Message, more bool, err error) {
	if limit <= 0 || limit > 1000 {
		return nil, false, Errorf(ErrInvalid, "limit must be between 1 and 1000")
	}
	if len(convID) != 26 || strings.ContainsAny(convID, "/\x00") {
		return nil, false, Errorf(ErrNotFound, "conversation %q not found", convID)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		r := newReadTx(tx, s.reads)
		if _, err := r.conversation(convID); err != nil {
			return err
		}
		prefix := []byte(convID)
		c := tx.Bucket(bucketConvMsgs).Cursor()
		k, _ := c.Seek([]byte(convID + after))
		if k != nil && string(k) == convID+after {
			k, _ = c.Next()
		}
		for ; k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			if len(msgs) == limit {
				more = true
				break
			}
			m, err := r.message(string(k[len(prefix):]))
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		return nil
	})
	return msgs, more, err
}
