package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OutboxState is the dispatcher's bookkeeping for one outbound message.
type OutboxState struct {
	MessageID      string `json:"messageId"`
	ConversationID string `json:"conversationId,omitempty"`
	// Release is when the message first became due (queue time or sendAt).
	// A customer's messages leave in (Release, MessageID) order, whatever
	// their retries do to Due.
	Release   time.Time `json:"release,omitempty"`
	Due       time.Time `json:"due"`
	Attempts  int       `json:"attempts"`
	FirstTry  time.Time `json:"firstTry,omitempty"`
	LastError string    `json:"lastError,omitempty"`
}

// OutboxItem is a due outbox entry with its message.
type OutboxItem struct {
	State   OutboxState
	Message *Message
}

// DueResult is what DueOutbox found.
type DueResult struct {
	Items []OutboxItem
	// Next is the earliest time a head not yet due becomes due (zero when
	// there is none).
	Next time.Time
	// Depth is the number of messages in the outbox.
	Depth int
}

var timeZero time.Time

// enqueueOutbox puts a message in the delivery queue at due. The message is
// already stored in this transaction.
func (t *Tx) enqueueOutbox(msgID string, due time.Time) error {
	st := OutboxState{MessageID: msgID, Release: due.UTC(), Due: due.UTC()}
	if m, err := t.getMessage(msgID); err == nil {
		st.ConversationID = m.ConversationID
	}
	if err := t.putOutboxState(&st); err != nil {
		return err
	}
	return t.tx.Bucket(bucketOutbox).Put(timeKey(st.Due, msgID), nil)
}

func (t *Tx) putOutboxState(st *OutboxState) error {
	v, err := encode(st)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketOutboxState).Put([]byte(st.MessageID), v)
}

func (t *Tx) outboxState(msgID string) (*OutboxState, error) {
	v := t.tx.Bucket(bucketOutboxState).Get([]byte(msgID))
	if v == nil {
		return nil, nil
	}
	var st OutboxState
	if err := decode(v, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// dequeue removes a message's outbox entry and state.
func (t *Tx) dequeue(st *OutboxState) error {
	if err := t.tx.Bucket(bucketOutbox).Delete(timeKey(st.Due, st.MessageID)); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketOutboxState).Delete([]byte(st.MessageID)); err != nil {
		return err
	}
	t.Notify(Change{Kind: "outbox", ConversationID: st.ConversationID, MessageID: st.MessageID})
	return nil
}

// release records the "queued" event of a scheduled message whose time has
// come, so its timeline reads scheduled → queued → sent.
func (t *Tx) release(st *OutboxState) error {
	m, err := t.getMessage(st.MessageID)
	if err != nil {
		return err
	}
	if m.Status != StatusScheduled {
		return nil
	}
	return t.applyEvent(m, Event{Status: StatusQueued, At: st.Release})
}

// DueOutbox lists up to limit outbox entries due at now, earliest first.
// Only the head of each conversation's queue (lowest Release, then id) is
// eligible, so a customer's messages leave in the order they were queued
// even while an earlier one waits for a retry. busy names entries the
// caller is already sending: they are left out but still hold their
// conversation back.
//
// It reads the whole outbox_state bucket: the cost is linear in the outbox
// depth, which is small while the provider keeps up.
func (s *Store) DueOutbox(now time.Time, limit int, busy func(msgID string) bool) (DueResult, error) {
	var res DueResult
	err := s.db.View(func(tx *bolt.Tx) error {
		heads := map[string]OutboxState{}
		var orphans []OutboxState
		err := tx.Bucket(bucketOutboxState).ForEach(func(k, v []byte) error {
			var st OutboxState
			if err := decode(v, &st); err != nil {
				return err
			}
			res.Depth++
			if st.Release.IsZero() {
				st.Release = st.Due
			}
			if st.ConversationID == "" {
				orphans = append(orphans, st) // written before conversations were recorded
				return nil
			}
			h, ok := heads[st.ConversationID]
			if !ok || st.Release.Before(h.Release) || (st.Release.Equal(h.Release) && st.MessageID < h.MessageID) {
				heads[st.ConversationID] = st
			}
			return nil
		})
		if err != nil {
			return err
		}
		cands := orphans
		for _, h := range heads {
			cands = append(cands, h)
		}
		var due []OutboxState
		for _, st := range cands {
			if busy != nil && busy(st.MessageID) {
				continue
			}
			if st.Due.After(now) {
				if res.Next.IsZero() || st.Due.Before(res.Next) {
					res.Next = st.Due
				}
				continue
			}
			due = append(due, st)
		}
		sort.Slice(due, func(i, j int) bool {
			if !due[i].Due.Equal(due[j].Due) {
				return due[i].Due.Before(due[j].Due)
			}
			return due[i].MessageID < due[j].MessageID
		})
		if limit > 0 && len(due) > limit {
			due = due[:limit]
		}
		r := readTx{tx: tx}
		for _, st := range due {
			m, err := r.message(st.MessageID)
			if err != nil {
				continue // erased meanwhile; its eraser dequeues it
			}
			res.Items = append(res.Items, OutboxItem{State: st, Message: m})
		}
		return nil
	})
	return res, err
}

// OutboxEntry returns a message's outbox state, or ErrNotFound when it is
// not in the outbox (sent, failed, or never queued).
func (s *Store) OutboxEntry(msgID string) (*OutboxState, error) {
	var out *OutboxState
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOutboxState).Get([]byte(msgID))
		if v == nil {
			return Errorf(ErrNotFound, "message %s is not in the outbox", msgID)
		}
		out = &OutboxState{}
		return decode(v, out)
	})
	return out, err
}

// MarkSent records that the provider accepted a message: its alias (the
// provider's own message id, for reports), the sent event, and the end of
// its outbox entry, in one transaction. A message no longer in the outbox
// is left alone.
func (s *Store) MarkSent(ctx context.Context, msgID, alias string, e Event) error {
	return s.Update(ctx, func(t *Tx) error {
		st, err := t.outboxState(msgID)
		if err != nil || st == nil {
			return err
		}
		if err := t.release(st); err != nil {
			return err
		}
		m, err := t.getMessage(msgID)
		if err != nil {
			return err
		}
		if err := t.AddAlias(msgID, m.Provider, alias); err != nil {
			return err
		}
		if e.Status == "" {
			e.Status = StatusSent
		}
		if e.At.IsZero() {
			e.At = t.now
		}
		if err := t.ApplyEvent(msgID, e); err != nil {
			return err
		}
		return t.dequeue(st)
	})
}

// MarkRetry counts a failed attempt and moves the message's next try to
// next, keeping why the attempt failed.
func (s *Store) MarkRetry(ctx context.Context, msgID string, next time.Time, lastErr string) error {
	return s.Update(ctx, func(t *Tx) error {
		st, err := t.outboxState(msgID)
		if err != nil || st == nil {
			return err
		}
		if err := t.release(st); err != nil {
			return err
		}
		if err := t.tx.Bucket(bucketOutbox).Delete(timeKey(st.Due, msgID)); err != nil {
			return err
		}
		st.Attempts++
		if st.FirstTry.IsZero() {
			st.FirstTry = t.now
		}
		st.LastError = lastErr
		st.Due = next.UTC()
		if err := t.putOutboxState(st); err != nil {
			return err
		}
		if err := t.tx.Bucket(bucketOutbox).Put(timeKey(st.Due, msgID), nil); err != nil {
			return err
		}
		t.Notify(Change{Kind: "outbox", ConversationID: st.ConversationID, MessageID: msgID})
		return nil
	})
}

// MarkFailed gives up on a message: a failed event carrying reason, and the
// end of its outbox entry.
func (s *Store) MarkFailed(ctx context.Context, msgID, reason string) error {
	return s.Update(ctx, func(t *Tx) error {
		st, err := t.outboxState(msgID)
		if err != nil || st == nil {
			return err
		}
		if err := t.release(st); err != nil {
			return err
		}
		if err := t.ApplyEvent(msgID, Event{Status: StatusFailed, At: t.now, Reason: reason}); err != nil {
			return err
		}
		return t.dequeue(st)
	})
}

// DropOutbox removes a message from the outbox without an event (it was
// deleted before it could leave).
func (s *Store) DropOutbox(ctx context.Context, msgID string) error {
	return s.Update(ctx, func(t *Tx) error {
		st, err := t.outboxState(msgID)
		if err != nil || st == nil {
			return err
		}
		return t.dequeue(st)
	})
}

// ---- bearer tokens issued by tokenByAkSk ----

func tokenKey(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// SaveToken stores an issued bearer token (hashed) until expires, bound to
// binding (a fingerprint of the credentials that issued it), and drops
// tokens that have expired.
func (s *Store) SaveToken(ctx context.Context, token string, expires time.Time, binding string) error {
	if token == "" {
		return Errorf(ErrInvalid, "empty token")
	}
	return s.Update(ctx, func(t *Tx) error {
		b := t.tx.Bucket(bucketTokens)
		var stale [][]byte
		_ = b.ForEach(func(k, v []byte) error {
			if len(v) < 8 || int64(u64(v[:8])) <= t.now.UnixNano() {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return b.Put(tokenKey(token), append(t8(expires), binding...))
	})
}

// TokenValid reports whether token was issued with binding and has not
// expired at now. A token issued under other credentials (app_secret
// changed since), or before tokens were bound (no binding stored), is not
// valid.
func (s *Store) TokenValid(token string, now time.Time, binding string) bool {
	if token == "" || binding == "" {
		return false
	}
	ok := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get(tokenKey(token))
		ok = len(v) > 8 && int64(u64(v[:8])) > now.UnixNano() && subtle.ConstantTimeCompare(v[8:], []byte(binding)) == 1
		return nil
	})
	return ok
}

func checkOutboxInvariants(tx *bolt.Tx, add addFunc) {
	msgs := tx.Bucket(bucketMessages)
	state := tx.Bucket(bucketOutboxState)
	queue := tx.Bucket(bucketOutbox)
	_ = queue.ForEach(func(k, _ []byte) error {
		if len(k) < 9 || msgs.Get(k[8:]) == nil {
			add("outbox %x points at missing message", k)
		} else if state.Get(k[8:]) == nil {
			add("outbox entry for %s has no outbox_state", k[8:])
		}
		return nil
	})
	_ = state.ForEach(func(k, v []byte) error {
		var st OutboxState
		if err := decode(v, &st); err != nil {
			add("outbox_state %s: %v", k, err)
			return nil
		}
		if queue.Get(timeKey(st.Due, st.MessageID)) == nil {
			add("outbox_state %s has no outbox entry at its due time %s", k, st.Due.Format(time.RFC3339Nano))
		}
		return nil
	})
}

// OutboxOldest is when the longest-waiting outbound message became due
// (its Release), zero when none is due. Scheduled messages whose time has
// not come are not waiting yet. /metrics turns it into an age to alert
// on; like DueOutbox it reads the whole outbox_state bucket, which is
// small while the provider keeps up.
func (s *Store) OutboxOldest(now time.Time) (time.Time, error) {
	var oldest time.Time
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutboxState).ForEach(func(_, v []byte) error {
			var st OutboxState
			if err := decode(v, &st); err != nil {
				return err
			}
			r := st.Release
			if r.IsZero() {
				r = st.Due
			}
			if !r.After(now) && (oldest.IsZero() || r.Before(oldest)) {
				oldest = r
			}
			return nil
		})
	})
	return oldest, err
}
