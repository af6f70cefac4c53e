package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"imchannel/migrations"
)

// Check runs bbolt's own consistency check and the store's invariants, and
// returns every problem found (none means clean).
func Check(db *bolt.DB) []string {
	var problems []string
	add := func(format string, args ...any) {
		if len(problems) < 1000 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			add("bbolt: %v", err)
		}
		if v := migrations.Version(tx); v != migrations.Latest() {
			add("schema version %d, expected %d", v, migrations.Latest())
			return nil
		}
		checkConversations(tx, add)
		checkMessages(tx, add)
		checkMediaInvariants(tx, add)
		checkOutboxInvariants(tx, add)
		checkQuarantine(tx, add)
		checkEvents(tx, add)
		checkWords(tx, add)
		return nil
	})
	if err != nil {
		add("read: %v", err)
	}
	return problems
}

// Check runs Check on the open store.
func (s *Store) Check() []string { return Check(s.db) }

type addFunc func(format string, args ...any)

func checkConversations(tx *bolt.Tx, add addFunc) {
	convs := tx.Bucket(bucketConvs)
	keys := tx.Bucket(bucketConvKey)
	act := tx.Bucket(bucketConvActivity)
	n := 0
	_ = convs.ForEach(func(k, v []byte) error {
		n++
		var c Conversation
		if err := decode(v, &c); err != nil {
			add("conversation %s: %v", k, err)
			return nil
		}
		if string(keys.Get(convKey(c.Business, c.Customer))) != c.ID {
			add("conversation %s: conv_key entry for %s/%s missing or wrong", c.ID, c.Business, c.Customer)
		}
		if act.Get(c.activityKey()) == nil {
			add("conversation %s: conv_activity entry missing", c.ID)
		}
		return nil
	})
	_ = keys.ForEach(func(k, v []byte) error {
		if convs.Get(v) == nil {
			add("conv_key %s points at missing conversation %s", k, v)
		}
		return nil
	})
	_ = act.ForEach(func(k, v []byte) error {
		if len(k) < 9 {
			add("conv_activity: malformed key %x", k)
			return nil
		}
		cv := convs.Get(k[8:])
		if cv == nil {
			add("conv_activity points at missing conversation %s", k[8:])
			return nil
		}
		var c Conversation
		if decode(cv, &c) == nil && string(c.activityKey()) != string(k) {
			add("conv_activity: stale entry for conversation %s", c.ID)
		}
		return nil
	})
	if got := u64(tx.Bucket(bucketCounters).Get([]byte(counterConversations))); got != uint64(n) {
		add("counter conversations = %d, but %d are stored", got, n)
	}
}

func checkMessages(tx *bolt.Tx, add addFunc) {
	msgs := tx.Bucket(bucketMessages)
	convMsgs := tx.Bucket(bucketConvMsgs)
	ext := tx.Bucket(bucketExt)
	convs := tx.Bucket(bucketConvs)
	n := 0
	failedPerConv := map[string]int{}
	msgCount := map[string]int{}
	var failed uint64
	_ = msgs.ForEach(func(k, v []byte) error {
		n++
		var m Message
		if err := decode(v, &m); err != nil {
			add("message %s: %v", k, err)
			return nil
		}
		if convs.Get([]byte(m.ConversationID)) == nil {
			add("message %s: conversation %s missing", m.ID, m.ConversationID)
		}
		if convMsgs.Get([]byte(m.ConversationID+m.ID)) == nil {
			add("message %s: not in its thread index", m.ID)
		}
		msgCount[m.ConversationID]++
		for _, e := range m.ownIDs() {
			if e == m.ExternalID && m.DedupeID != "" {
				continue // may name an earlier message with the same reference
			}
			if string(ext.Get(dirKey(m.Direction, m.Provider, e))) != m.ID {
				add("message %s: ext index for %s/%s missing or wrong", m.ID, m.Provider, e)
			}
		}
		if m.ReplyTo != nil && m.ReplyTo.ID != "" && msgs.Get([]byte(m.ReplyTo.ID)) == nil {
			add("message %s: replies to missing message %s", m.ID, m.ReplyTo.ID)
		}
		if m.Media != nil && m.Media.ID != "" && tx.Bucket(bucketMedia).Get([]byte(m.Media.ID)) == nil {
			add("message %s: media %s missing", m.ID, m.Media.ID)
		}
		if m.Direction == Outbound && m.Status == StatusFailed {
			failedPerConv[m.ConversationID]++
			failed++
		}
		return nil
	})
	_ = convMsgs.ForEach(func(k, _ []byte) error {
		if len(k) != 52 {
			add("conv_msgs: malformed key %q", k)
			return nil
		}
		v := msgs.Get(k[26:])
		if v == nil {
			add("conv_msgs: %s points at missing message %s", k[:26], k[26:])
			return nil
		}
		var m Message
		if decode(v, &m) == nil && m.ConversationID != string(k[:26]) {
			add("conv_msgs: message %s is filed under conversation %s, but belongs to %s", k[26:], k[:26], m.ConversationID)
		}
		return nil
	})
	_ = tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
		var p Pending
		if err := decode(v, &p); err != nil {
			add("pending %q: %v", k, err)
			return nil
		}
		switch p.Kind {
		case pendingReply:
			if msgs.Get([]byte(p.MessageID)) == nil {
				add("pending %q: parked reply of missing message %s", k, p.MessageID)
			}
		case pendingReport:
			if p.Report == nil {
				add("pending %q: report without its report", k)
			}
		case pendingReaction:
			if p.Reaction == nil {
				add("pending %q: reaction without its reaction", k)
			}
		case pendingDelete:
		default:
			add("pending %q: unknown kind %q", k, p.Kind)
		}
		return nil
	})
	_ = ext.ForEach(func(k, v []byte) error {
		if len(v) == 0 {
			return nil // a consumed reaction or deletion
		}
		mv := msgs.Get(v)
		if mv == nil {
			add("ext %q points at missing message %s", k, v)
			return nil
		}
		// The entry must be one of the message's own ids, or a resend of
		// some other message would be answered as its duplicate.
		var m Message
		if decode(mv, &m) != nil {
			return nil // reported above
		}
		for _, e := range m.ownIDs() {
			if string(dirKey(m.Direction, m.Provider, e)) == string(k) {
				return nil
			}
		}
		add("ext %q points at message %s, which has no such id", k, v)
		return nil
	})
	_ = convs.ForEach(func(k, v []byte) error {
		var c Conversation
		if decode(v, &c) != nil {
			return nil
		}
		if c.MessageCount != msgCount[c.ID] {
			add("conversation %s: messageCount %d, but %d stored", c.ID, c.MessageCount, msgCount[c.ID])
		}
		if c.LastMessageID != "" && msgCount[c.ID] > 0 && convMsgs.Get([]byte(c.ID+c.LastMessageID)) == nil {
			add("conversation %s: last message %s is not one of its messages", c.ID, c.LastMessageID)
		}
		if c.FailedCount != failedPerConv[c.ID] {
			add("conversation %s: failedCount %d, but %d failed", c.ID, c.FailedCount, failedPerConv[c.ID])
		}
		return nil
	})
	cb := tx.Bucket(bucketCounters)
	if got := u64(cb.Get([]byte(counterMessages))); got != uint64(n) {
		add("counter messages = %d, but %d are stored", got, n)
	}
	if got := u64(cb.Get([]byte(counterFailedSends))); got != failed {
		add("counter failed_sends = %d, but %d are failed", got, failed)
	}
}
