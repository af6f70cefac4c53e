package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"strings"

	bolt "go.etcd.io/bbolt"

	"imchannel/hmackey"
)

// EraseBatch is how many messages one erase or retention transaction
// removes at most, so a big purge never holds the write lock for long and
// ingest keeps its latency.
const EraseBatch = 500

// removal collects what one transaction removed, so the per-conversation
// bookkeeping (counts, last message, replies, empty conversations) runs
// once per conversation and not once per message.
type removal struct {
	ids   map[string]bool          // removed message ids
	convs map[string]*Conversation // touched conversations, as updated so far
	first map[string]string        // the oldest removed message id per conversation
	count int
}

func newRemoval() *removal {
	return &removal{ids: map[string]bool{}, convs: map[string]*Conversation{}, first: map[string]string{}}
}

// removeMessage deletes m and everything that exists only because of it:
// its thread entry, external-id and alias index entries, the index entries
// of reactions on it, a parked reply of it, its outbox entry and state, and
// its media (whose blob reference is released, deleting the bytes when no
// other media shares them). The conversation is fixed up by finishRemoval.
func (t *Tx) removeMessage(m *Message, rm *removal) error {
	b := t.tx
	if err := b.Bucket(bucketMessages).Delete([]byte(m.ID)); err != nil {
		return err
	}
	if err := b.Bucket(bucketConvMsgs).Delete([]byte(m.ConversationID + m.ID)); err != nil {
		return err
	}
	ext := b.Bucket(bucketExt)
	for _, e := range m.ownIDs() {
		k := dirKey(m.Direction, m.Provider, e)
		if string(ext.Get(k)) == m.ID {
			if err := ext.Delete(k); err != nil {
				return err
			}
		}
	}
	// A reaction's own external id is kept (empty) for dedupe; it means
	// nothing once the message it applied to is gone.
	for _, r := range m.Reactions {
		if r.ExternalID == "" {
			continue
		}
		k := extKey(m.Provider, r.ExternalID)
		if v := ext.Get(k); v != nil && len(v) == 0 {
			if err := ext.Delete(k); err != nil {
				return err
			}
		}
	}
	if m.ReplyTo != nil && m.ReplyTo.ID == "" && m.ReplyTo.ExternalID != "" {
		if err := t.dropParkedReply(m); err != nil {
			return err
		}
	}
	if err := t.dropOutbox(m.ID); err != nil {
		return err
	}
	if m.Media != nil && m.Media.ID != "" {
		if err := t.dropMedia(m.Media.ID, ""); err != nil {
			return err
		}
	}
	if m.Outbound != nil && m.Outbound.HeaderMedia != "" {
		if err := t.dropMedia(m.Outbound.HeaderMedia, m.ID); err != nil {
			return err
		}
	}
	if err := t.unindexWords(m); err != nil {
		return err
	}
	if err := t.addCounter(counterMessages, -1); err != nil {
		return err
	}
	failed := m.Direction == Outbound && m.Status == StatusFailed
	if failed {
		if err := t.addCounter(counterFailedSends, -1); err != nil {
			return err
		}
	}
	c, ok := rm.convs[m.ConversationID]
	if !ok {
		var err error
		if c, err = t.getConversation(m.ConversationID); err != nil {
			return err
		}
		rm.convs[c.ID] = c
	}
	c.MessageCount--
	if failed {
		c.FailedCount--
	}
	if f, ok := rm.first[c.ID]; !ok || m.ID < f {
		rm.first[c.ID] = m.ID
	}
	rm.ids[m.ID] = true
	rm.count++
	return nil
}

// dropParkedReply removes the pending entry of a reply still waiting for
// the message it quotes.
func (t *Tx) dropParkedReply(m *Message) error {
	prefix := append(extKey(m.Provider, m.ReplyTo.ExternalID), 0)
	pb := t.tx.Bucket(bucketPending)
	var del [][]byte
	c := pb.Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		var p Pending
		if decode(v, &p) == nil && p.Kind == pendingReply && p.MessageID == m.ID {
			del = append(del, append([]byte(nil), k...))
		}
	}
	for _, k := range del {
		if err := pb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// dropOutbox removes a message's outbox entry and state (the outbox code's
// own dequeue, so both stay in step).
func (t *Tx) dropOutbox(msgID string) error {
	st, err := t.outboxState(msgID)
	if err != nil || st == nil {
		return err
	}
	return t.dequeue(st)
}

// dropMedia releases a media record's bytes and deletes the record with its
// queue and token entries. With owner set, a record that belongs to another
// message is left alone (hosted template headers may be shared).
func (t *Tx) dropMedia(id, owner string) error {
	md, err := t.getMedia(id)
	if err != nil {
		return nil // already gone
	}
	if owner != "" && md.MessageID != "" && md.MessageID != owner {
		return nil
	}
	if err := t.releaseMedia(id); err != nil {
		return err
	}
	if err := t.dequeueMedia(md); err != nil {
		return err
	}
	if md.Token != "" {
		tb := t.tx.Bucket(bucketMediaToken)
		if string(tb.Get([]byte(md.Token))) == md.ID {
			if err := tb.Delete([]byte(md.Token)); err != nil {
				return err
			}
		}
	}
	return t.tx.Bucket(bucketMedia).Delete([]byte(id))
}

// finishRemoval fixes up every conversation touched by removeMessage:
// an emptied conversation is deleted with its index entries and counter;
// otherwise its last-message summary is recomputed when that message went,
// and replies quoting a removed message forget its id (they keep the
// external id they quoted).
func (t *Tx) finishRemoval(rm *removal) error {
	convMsgs := t.tx.Bucket(bucketConvMsgs)
	for id, c := range rm.convs {
		prefix := []byte(id)
		cur := convMsgs.Cursor()
		k, _ := cur.Seek(prefix)
		if k == nil || !hasPrefix(k, prefix) {
			if err := t.deleteConversation(c); err != nil {
				return err
			}
			continue
		}
		if rm.ids[c.LastMessageID] {
			lk, _ := cur.Seek(append(append([]byte(nil), prefix...), 0xff))
			if lk == nil {
				lk, _ = cur.Last()
			} else {
				lk, _ = cur.Prev()
			}
			if last, err := t.getMessage(string(lk[len(prefix):])); err == nil {
				c.LastMessageID = last.ID
				c.LastPreview = Preview(last)
				c.LastDirection = last.Direction
			}
		}
		if err := t.unlinkReplies(id, rm); err != nil {
			return err
		}
		if err := t.putConversation(c, c.LastActivity, true); err != nil {
			return err
		}
		t.Notify(Change{Kind: "conversation", ConversationID: id})
	}
	return nil
}

var replyToMarker = []byte(`"replyTo":{"id":"`)

// unlinkReplies clears ReplyTo.ID on the conversation's remaining messages
// that quote a removed one. Only messages after the oldest removed one can
// quote it; a byte search skips decoding the many that quote nothing.
func (t *Tx) unlinkReplies(convID string, rm *removal) error {
	prefix := []byte(convID)
	msgs := t.tx.Bucket(bucketMessages)
	var fix []*Message
	c := t.tx.Bucket(bucketConvMsgs).Cursor()
	for k, _ := c.Seek([]byte(convID + rm.first[convID])); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		v := msgs.Get(k[len(prefix):])
		i := bytes.Index(v, replyToMarker)
		if i < 0 {
			continue
		}
		rest := v[i+len(replyToMarker):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 || !rm.ids[string(rest[:j])] {
			continue
		}
		m, err := t.getMessage(string(k[len(prefix):]))
		if err != nil {
			return err
		}
		fix = append(fix, m)
	}
	for _, m := range fix {
		m.ReplyTo.ID = ""
		if err := t.putMessage(m); err != nil {
			return err
		}
	}
	return nil
}

// deleteConversation removes a conversation that has no messages left.
func (t *Tx) deleteConversation(c *Conversation) error {
	keys := t.tx.Bucket(bucketConvKey)
	ck := convKey(c.Business, c.Customer)
	if string(keys.Get(ck)) == c.ID {
		if err := keys.Delete(ck); err != nil {
			return err
		}
	}
	if err := t.tx.Bucket(bucketConvActivity).Delete(c.activityKey()); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketConvs).Delete([]byte(c.ID)); err != nil {
		return err
	}
	t.Notify(Change{Kind: "conversation", ConversationID: c.ID})
	if err := t.addCounter(counterBusiness+c.Business, -1); err != nil {
		return err
	}
	return t.addCounter(counterConversations, -1)
}

// NumberHMAC is the keyed hash of a normalised number that the audit log
// and the service's log keep instead of the number itself; "" without a
// key. An unkeyed hash of a phone number is reversed by trying every
// number (the red team needed 8.4 s), so there is no unkeyed fallback.
func NumberHMAC(key []byte, number string) string {
	if len(key) == 0 {
		return ""
	}
	return hmackey.Sum(key, "erased-number", NormalizeNumber(number))
}

// NumberHMAC is the package function with the store's key.
func (s *Store) NumberHMAC(number string) string { return NumberHMAC(s.opts.HMACKey, number) }

// Erasures are the audit lines of erasures of number, oldest first: how an
// operator holding the key answers "was this number erased?".
func (s *Store) Erasures(number string) ([]AuditLine, error) {
	h := s.NumberHMAC(number)
	if h == "" {
		return nil, Errorf(ErrInvalid, "no HMAC key: erasures cannot be looked up")
	}
	var out []AuditLine
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			var l AuditLine
			if decode(v, &l) == nil && l.Action == "erase" && hmac.Equal([]byte(l.NumberHMAC), []byte(h)) {
				out = append(out, l)
			}
			return nil
		})
	})
	return out, err
}

// EraseNumber removes every message of one customer number (any format),
// across every business number, with its media bytes and index entries,
// and the conversations themselves; pending reactions from that number go
// too. It works in transactions of at most EraseBatch messages, so ingest
// is never stalled, and appends one audit line with the time, the number's
// keyed hash (NumberHMAC) and the count removed. It answers the count removed. Erasing an
// unknown number removes nothing and is still audited.
func (s *Store) EraseNumber(ctx context.Context, number string) (int, error) {
	n := NormalizeNumber(number)
	if n == "" {
		return 0, Errorf(ErrInvalid, "number %q has no digits", number)
	}
	var convIDs []string
	err := s.View(func(tx *bolt.Tx) error {
		suffix := "/" + n
		return tx.Bucket(bucketConvKey).ForEach(func(k, v []byte) error {
			if strings.HasSuffix(string(k), suffix) && !strings.Contains(string(k[:len(k)-len(suffix)]), "/") {
				convIDs = append(convIDs, string(v))
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	total := 0
	for _, id := range convIDs {
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			removed, more := 0, false
			err := s.Update(ctx, func(t *Tx) error {
				removed, more = 0, false
				rm := newRemoval()
				prefix := []byte(id)
				c := t.tx.Bucket(bucketConvMsgs).Cursor()
				var batch []string
				for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
					if len(batch) == EraseBatch {
						more = true
						break
					}
					batch = append(batch, string(k[len(prefix):]))
				}
				for _, mid := range batch {
					m, err := t.getMessage(mid)
					if err != nil {
						return err
					}
					if err := t.removeMessage(m, rm); err != nil {
						return err
					}
				}
				removed = rm.count
				return t.finishRemoval(rm)
			})
			if err != nil {
				return total, err
			}
			total += removed
			if !more {
				break
			}
		}
	}
	err = s.Update(ctx, func(t *Tx) error {
		if err := t.dropPendingFrom(n); err != nil {
			return err
		}
		if _, err := t.dropQuarantineMentioning(n); err != nil {
			return err
		}
		if err := t.eraseEvents(convIDs, s.NumberHMAC(n)); err != nil {
			return err
		}
		return t.appendAudit(AuditLine{Action: "erase", NumberHMAC: s.NumberHMAC(n), Count: total})
	})
	return total, err
}

// dropPendingFrom removes everything parked that names a number: reactions
// and deletions (a CM deletion parked for a message that never came kept
// its sender's number for ever).
func (t *Tx) dropPendingFrom(number string) error {
	pb := t.tx.Bucket(bucketPending)
	var del [][]byte
	_ = pb.ForEach(func(k, v []byte) error {
		var p Pending
		if decode(v, &p) == nil && (NormalizeNumber(p.From) == number || (p.Reaction != nil && NormalizeNumber(p.Reaction.From) == number)) {
			del = append(del, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range del {
		if err := pb.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
