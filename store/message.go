package store

import (
	"context"
	"sort"
	"strings"
	"time"
)

// Result says what became of one message handed to SaveInbound or
// QueueOutbound.
type Result struct {
	MessageID      string
	ConversationID string
	ExternalID     string
	Status         string
	Duplicate      bool
	// Action is true for reactions and deletions, which create no message.
	Action bool
}

// SaveInbound stores inbound messages (and reactions and deletions) in one
// transaction: either all are stored or none is. A message whose
// (provider, externalId) is already known is a duplicate: it is reported
// and changes nothing.
func (s *Store) SaveInbound(ctx context.Context, msgs []*Message) ([]Result, error) {
	if err := validatePost(msgs, nil); err != nil {
		return nil, err
	}
	r, err := s.write(ctx, Post{Messages: msgs})
	return r.Messages, err
}

// QueueOptions tune QueueOutbound.
type QueueOptions struct {
	// Window, when positive, refuses non-template messages to a customer
	// whose last inbound message is older than this (WhatsApp's 24 hours).
	Window time.Duration
}

// QueueOutbound stores outbound messages, each with its outbox entry, in one
// transaction. It is idempotent on (provider, externalId): a retried request
// queues nothing and gets the first answer again.
func (s *Store) QueueOutbound(ctx context.Context, msgs []*Message, opts QueueOptions) ([]Result, error) {
	for i, m := range msgs {
		if err := validateNew(m, Outbound); err != nil {
			return nil, &ItemError{Index: i, Err: err}
		}
	}
	var results []Result
	err := s.Update(ctx, func(t *Tx) error {
		results = make([]Result, len(msgs))
		for i, m := range msgs {
			cp := *m
			r, err := t.queueOutbound(&cp, opts)
			if err != nil {
				return &ItemError{Index: i, Err: err}
			}
			results[i] = r
		}
		return nil
	})
	return results, err
}

// QueueWithHosted queues m and stores h, the hosted media m's template
// header names (m.Outbound.HeaderMedia = h.Media.ID), in one transaction:
// a crash leaves both or neither, never bytes that nothing references.
func (s *Store) QueueWithHosted(ctx context.Context, m *Message, h *HostedMedia, opts QueueOptions) (Result, error) {
	if err := validateNew(m, Outbound); err != nil {
		return Result{}, err
	}
	if h == nil || m.Outbound == nil || m.Outbound.HeaderMedia != h.Media.ID {
		return Result{}, Errorf(ErrInvalid, "the message must name the hosted media as its header")
	}
	var res Result
	err := s.Update(ctx, func(t *Tx) error {
		cp := *m
		r, err := t.queueOutbound(&cp, opts)
		if err != nil {
			return err
		}
		res = r
		if r.Duplicate {
			return nil // the first request stored its own header
		}
		return t.putHosted(h, r.MessageID)
	})
	return res, err
}

// QueueWelcome queues m as the conversation's welcome reply unless one was
// already queued: at most one per customer.
func (s *Store) QueueWelcome(ctx context.Context, m *Message) (queued bool, err error) {
	if err := validateNew(m, Outbound); err != nil {
		return false, err
	}
	err = s.Update(ctx, func(t *Tx) error {
		queued = false
		c, err := t.conversationFor(m.From, m.To)
		if err != nil {
			return err
		}
		if c.WelcomeSent {
			return nil
		}
		c.WelcomeSent = true
		if err := t.putConversation(c, c.LastActivity, t.tx.Bucket(bucketConvs).Get([]byte(c.ID)) != nil); err != nil {
			return err
		}
		cp := *m
		r, err := t.queueOutbound(&cp, QueueOptions{})
		queued = err == nil && !r.Duplicate
		return err
	})
	return queued, err
}

func validateNew(m *Message, dir string) error {
	switch {
	case m == nil:
		return Errorf(ErrInvalid, "no message")
	case m.Provider == "":
		return Errorf(ErrInvalid, "provider is required")
	case m.ExternalID == "":
		return Errorf(ErrInvalid, "externalId is required")
	case m.Type == "":
		return Errorf(ErrInvalid, "type is required")
	}
	m.Direction = dir
	if err := validID("externalId", m.ExternalID); err != nil {
		return err
	}
	if err := validID("target", m.Target); err != nil {
		return err
	}
	if m.ReplyTo != nil {
		if err := validID("replyTo.externalId", m.ReplyTo.ExternalID); err != nil {
			return err
		}
	}
	if m.Type == TypeReaction || m.Type == TypeDelete {
		if m.Target == "" {
			return Errorf(ErrInvalid, "%s needs the message it applies to", m.Type)
		}
		return nil
	}
	m.From, m.To = NormalizeNumber(m.From), NormalizeNumber(m.To)
	if m.From == "" {
		return Errorf(ErrInvalid, "from is required")
	}
	if m.To == "" {
		return Errorf(ErrInvalid, "to is required")
	}
	return nil
}

// maxIDLen bounds external ids: they are parts of bbolt keys.
const maxIDLen = 1024

// validID refuses what the key layout cannot hold: NUL separates an id from
// what follows it in the ext and pending keys.
func validID(field, id string) error {
	if len(id) > maxIDLen {
		return Errorf(ErrInvalid, "%s is longer than %d bytes", field, maxIDLen)
	}
	if strings.IndexByte(id, 0) >= 0 {
		return Errorf(ErrInvalid, "%s contains a NUL byte", field)
	}
	return nil
}

// numbers returns (business, customer) for a message.
func numbers(m *Message) (string, string) {
	if m.Direction == Inbound {
		return m.To, m.From
	}
	return m.From, m.To
}

func (t *Tx) queueOutbound(m *Message, opts QueueOptions) (Result, error) {
	if id := t.tx.Bucket(bucketExt).Get(outKey(m.Provider, m.ExternalID)); id != nil {
		prev, err := t.getMessage(string(id))
		if err != nil {
			return Result{}, err
		}
		return Result{MessageID: prev.ID, ConversationID: prev.ConversationID, ExternalID: prev.ExternalID,
			Status: prev.Status, Duplicate: true}, nil
	}
	if opts.Window > 0 && m.Type != TypeTemplate {
		business, customer := numbers(m)
		var last time.Time
		if id := t.tx.Bucket(bucketConvKey).Get(convKey(business, customer)); id != nil {
			c, err := t.getConversation(string(id))
			if err != nil {
				return Result{}, err
			}
			last = c.LastInboundAt
		}
		// The window must still be open when the message leaves, not only now.
		leaves := t.now
		if m.Outbound != nil && m.Outbound.SendAt.After(leaves) {
			leaves = m.Outbound.SendAt
		}
		if last.IsZero() || leaves.Sub(last) > opts.Window {
			return Result{}, Errorf(ErrInvalid, "customer %s is outside the %s customer-service window at send time %s (last inbound message: %s); only templates may be sent",
				customer, opts.Window, fmtTime(leaves), fmtTime(last))
		}
	}
	due := t.now
	m.Status = StatusQueued
	if m.Outbound != nil && m.Outbound.SendAt.After(t.now) {
		due = m.Outbound.SendAt
		m.Status = StatusScheduled
	}
	m.Timeline = []Event{{Status: m.Status, At: t.now}}
	r, err := t.insert(m)
	if err != nil || r.Duplicate {
		return r, err
	}
	if err := t.enqueueOutbox(m.ID, due); err != nil {
		return Result{}, err
	}
	return r, nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// insert stores a new message (or applies an action) unless its external id
// is known. It is the single path every message takes into the store.
func (t *Tx) insert(m *Message) (Result, error) {
	ext := t.tx.Bucket(bucketExt)
	key := dirKey(m.Direction, m.Provider, m.dedupeKey())
	id := ext.Get(key)
	if id == nil && m.DedupeID != "" {
		id = t.legacyDuplicate(m)
	}
	if id != nil {
		if err := t.addCounter("dup:"+m.Provider, 1); err != nil {
			return Result{}, err
		}
		r := Result{MessageID: string(id), ExternalID: m.ExternalID, Duplicate: true, Action: len(id) == 0}
		if len(id) > 0 {
			if prev, err := t.getMessage(string(id)); err == nil {
				r.ConversationID, r.Status = prev.ConversationID, prev.Status
			}
		}
		return r, nil
	}
	if m.Type == TypeReaction || m.Type == TypeDelete {
		return t.insertAction(m)
	}

	business, customer := numbers(m)
	c, err := t.conversationFor(business, customer)
	if err != nil {
		return Result{}, err
	}
	m.ID = t.s.NewID()
	m.ConversationID = c.ID
	m.CreatedAt = t.now
	if m.Status == "" {
		m.Status = StatusReceived
	}
	if !m.ReceivedAt.IsZero() {
		m.ReceivedAt = m.ReceivedAt.UTC()
	}
	if m.ReplyTo != nil && m.ReplyTo.ExternalID != "" {
		// Copy: the caller's message must not change if this write is retried.
		rt := *m.ReplyTo
		m.ReplyTo = &rt
		m.ReplyTo.ID = ""
		id := t.lookupAny(m.Provider, m.ReplyTo.ExternalID)
		if len(id) == 0 {
			// A conversation can hold both providers' messages (CM
			// inbound, Infobip replies): a quote may name the other's id.
			for _, p := range []string{ProviderInfobip, ProviderCM} {
				if x := t.lookupAny(p, m.ReplyTo.ExternalID); p != m.Provider && len(x) > 0 && t.inConversation(c.ID, string(x)) {
					id = x
					break
				}
			}
		}
		if len(id) > 0 {
			// A quote names a message of the same chat; one naming another
			// conversation's message is not linked (it would show another
			// customer's words, and dangle once that customer is erased).
			if t.inConversation(c.ID, string(id)) {
				m.ReplyTo.ID = string(id)
			}
		} else if err := t.park(extKey(m.Provider, m.ReplyTo.ExternalID), Pending{Kind: pendingReply, MessageID: m.ID}); err != nil {
			return Result{}, err
		}
	}
	if err := t.createMedia(m); err != nil {
		return Result{}, err
	}
	if err := ext.Put(key, []byte(m.ID)); err != nil {
		return Result{}, err
	}
	if m.DedupeID != "" {
		// The first message with this reference: threading and deletions
		// name it by the reference alone.
		if ref := dirKey(m.Direction, m.Provider, m.ExternalID); ext.Get(ref) == nil {
			if err := ext.Put(ref, []byte(m.ID)); err != nil {
				return Result{}, err
			}
		}
	}
	for _, a := range m.Aliases {
		if err := ext.Put(dirKey(m.Direction, m.Provider, a), []byte(m.ID)); err != nil {
			return Result{}, err
		}
	}
	if err := t.tx.Bucket(bucketConvMsgs).Put([]byte(c.ID+m.ID), nil); err != nil {
		return Result{}, err
	}
	if err := t.putMessage(m); err != nil {
		return Result{}, err
	}
	if err := t.indexWords(m); err != nil {
		return Result{}, err
	}
	if err := t.touchConversation(c, m); err != nil {
		return Result{}, err
	}
	day := "in:"
	if m.Direction == Outbound {
		day = "out:"
	}
	if err := t.addCounter(day+t.now.UTC().Format("2006-01-02"), 1); err != nil {
		return Result{}, err
	}
	// Quarter-hour counters let "messages today" follow any time zone
	// (every zone's offset is a multiple of 15 minutes).
	if err := t.addCounter(quarterKey(day, t.now), 1); err != nil {
		return Result{}, err
	}
	if err := t.addCounter(counterMessages, 1); err != nil {
		return Result{}, err
	}
	if m.Direction == Outbound && m.Status == StatusFailed {
		// touchConversation counted it on the conversation (BulkLoad keeps
		// the status it is given).
		if err := t.addCounter(counterFailedSends, 1); err != nil {
			return Result{}, err
		}
	}
	t.Notify(Change{Kind: "message", ConversationID: c.ID, MessageID: m.ID})
	if m.Direction == Outbound {
		t.Notify(Change{Kind: "outbox", ConversationID: c.ID, MessageID: m.ID})
	}
	if err := t.logEvent(EventRecord{Type: createdEvent(m), ConversationID: c.ID, MessageID: m.ID}); err != nil {
		return Result{}, err
	}
	// Whatever waited for this message can now be applied.
	for _, id := range append([]string{m.ExternalID}, m.Aliases...) {
		if err := t.resolveFor(m, m.Provider, id); err != nil {
			return Result{}, err
		}
	}
	return Result{MessageID: m.ID, ConversationID: c.ID, ExternalID: m.ExternalID, Status: m.Status}, nil
}

// legacyDuplicate finds a message stored, before content hashes were
// kept, under m's plain external id with the same content: a provider
// resending it after an upgrade must not create it twice.
func (t *Tx) legacyDuplicate(m *Message) []byte {
	id := t.tx.Bucket(bucketExt).Get(extKey(m.Provider, m.ExternalID))
	if len(id) == 0 {
		return nil
	}
	prev, err := t.getMessage(string(id))
	if err != nil || prev.DedupeID != "" {
		return nil
	}
	src := func(x *Message) string {
		if x.Media == nil {
			return ""
		}
		if x.Media.SourceURL == "" && x.Media.ID != "" {
			if md, err := t.getMedia(x.Media.ID); err == nil {
				return md.SourceURL
			}
		}
		return x.Media.SourceURL
	}
	if prev.Type == m.Type && prev.Text == m.Text && prev.Caption == m.Caption && src(prev) == src(m) &&
		NormalizeNumber(prev.From) == NormalizeNumber(m.From) {
		return id
	}
	return nil
}

// insertAction records a reaction or deletion under its own external id
// (so a resend is a duplicate) and applies it to its target, or parks it.
func (t *Tx) insertAction(m *Message) (Result, error) {
	// A non-nil empty value: bbolt returns nil for a nil value put in the
	// same transaction, which would hide this id from a writer in the batch.
	if err := t.tx.Bucket(bucketExt).Put(extKey(m.Provider, m.dedupeKey()), []byte{}); err != nil {
		return Result{}, err
	}
	at := m.ReceivedAt
	if at.IsZero() {
		at = t.now
	}
	p := Pending{At: at.UTC(), From: NormalizeNumber(m.From)}
	if m.Type == TypeReaction {
		p.Kind = pendingReaction
		p.Reaction = &Reaction{Emoji: m.ReactionEmoji, From: NormalizeNumber(m.From), ExternalID: m.ExternalID, At: at.UTC()}
		p.Removed = m.ReactionRemoved
	} else {
		p.Kind = pendingDelete
	}
	// A reaction may be on our message too; a customer deletes only their own.
	id := t.tx.Bucket(bucketExt).Get(extKey(m.Provider, m.Target))
	if m.Type == TypeReaction && len(id) == 0 {
		id = t.lookupAny(m.Provider, m.Target)
	}
	if len(id) > 0 {
		target, err := t.getMessage(string(id))
		if err != nil {
			return Result{}, err
		}
		if err := t.applyPending(target, p); err != nil {
			return Result{}, err
		}
		return Result{MessageID: target.ID, ConversationID: target.ConversationID, ExternalID: m.ExternalID, Action: true}, nil
	}
	if err := t.park(extKey(m.Provider, m.Target), p); err != nil {
		return Result{}, err
	}
	return Result{ExternalID: m.ExternalID, Action: true}, nil
}

func (t *Tx) getMessage(id string) (*Message, error) {
	v := t.tx.Bucket(bucketMessages).Get([]byte(id))
	if v == nil {
		return nil, Errorf(ErrNotFound, "message %s not found", id)
	}
	var m Message
	if err := decode(v, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func (t *Tx) putMessage(m *Message) error {
	v, err := encode(m)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketMessages).Put([]byte(m.ID), v)
}

// ---- things waiting for a message ----

const (
	pendingReply    = "reply"
	pendingReport   = "report"
	pendingReaction = "reaction"
	pendingDelete   = "delete"
)

// Pending is something that names a message not yet in the store.
type Pending struct {
	Kind      string    `json:"kind"`
	MessageID string    `json:"messageId,omitempty"` // reply: the message quoting
	Report    *Report   `json:"report,omitempty"`
	Reaction  *Reaction `json:"reaction,omitempty"`
	Removed   bool      `json:"removed,omitempty"`
	// From is who sent a reaction or deletion: it applies only to a message
	// of that customer's own conversation.
	From string    `json:"from,omitempty"`
	At   time.Time `json:"at"`
}

// lookupAny finds the message an id names in either namespace, inbound
// first: a quote or a reaction may name the customer's message or ours.
func (t *Tx) lookupAny(provider, externalID string) []byte {
	ext := t.tx.Bucket(bucketExt)
	if id := ext.Get(extKey(provider, externalID)); len(id) > 0 {
		return id
	}
	return ext.Get(outKey(provider, externalID))
}

// resolveFor applies what waited for m under one of its ids: reports
// (outbound namespace) and quotes and reactions, which wait in the inbound
// namespace whichever message they name. A customer's parked deletion
// never applies to our message.
func (t *Tx) resolveFor(m *Message, provider, id string) error {
	if m.Direction != Outbound {
		return t.resolvePending(extKey(provider, id), m.ID, true)
	}
	if err := t.resolvePending(outKey(provider, id), m.ID, true); err != nil {
		return err
	}
	return t.resolvePending(extKey(provider, id), m.ID, false)
}

// park keeps p under key (an extKey or outKey) until that id's message
// is stored.
func (t *Tx) park(key []byte, p Pending) error {
	v, err := encode(p)
	if err != nil {
		return err
	}
	k := append(key, 0)
	k = append(k, t.s.NewID()...)
	return t.tx.Bucket(bucketPending).Put(k, v)
}

// resolvePending applies and removes everything parked under key (an
// extKey or outKey); deletions only when deletes is true.
func (t *Tx) resolvePending(key []byte, msgID string, deletes bool) error {
	prefix := append(key[:len(key):len(key)], 0)
	b := t.tx.Bucket(bucketPending)
	var keys [][]byte
	var items []Pending
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		var p Pending
		if err := decode(v, &p); err != nil {
			return err
		}
		if p.Kind == pendingDelete && !deletes {
			continue // it waits for the customer's own message
		}
		keys = append(keys, append([]byte(nil), k...))
		items = append(items, p)
	}
	if len(items) == 0 {
		return nil
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for _, p := range items {
		if p.Kind == pendingReply {
			w, err := t.getMessage(p.MessageID)
			if err != nil {
				continue // the quoting message was erased meanwhile
			}
			if w.ReplyTo != nil && t.inConversation(w.ConversationID, msgID) {
				w.ReplyTo.ID = msgID
				if err := t.putMessage(w); err != nil {
					return err
				}
				t.Notify(Change{Kind: "message", ConversationID: w.ConversationID, MessageID: w.ID})
			}
			continue
		}
		m, err := t.getMessage(msgID)
		if err != nil {
			return err
		}
		if err := t.applyPending(m, p); err != nil {
			return err
		}
	}
	return nil
}

// inConversation reports whether message msgID belongs to conversation convID.
// (A cursor, not Get: Get answers nil for an entry with an empty value put
// earlier in the same transaction.)
func (t *Tx) inConversation(convID, msgID string) bool {
	key := []byte(convID + msgID)
	k, _ := t.tx.Bucket(bucketConvMsgs).Cursor().Seek(key)
	return string(k) == string(key)
}

func hasPrefix(k, p []byte) bool { return len(k) >= len(p) && string(k[:len(p)]) == string(p) }

func (t *Tx) applyPending(m *Message, p Pending) error {
	switch p.Kind {
	case pendingReport:
		return t.applyReportTo(m, *p.Report)
	}
	if _, customer := numbers(m); p.From != "" && p.From != customer {
		// Another customer's reaction or deletion: it has no say over
		// this message. The action's id is remembered (a resend stays a
		// duplicate) and nothing changes.
		return nil
	}
	switch p.Kind {
	case pendingReaction:
		r := *p.Reaction
		out := m.Reactions[:0:0]
		for _, x := range m.Reactions {
			if x.From != r.From {
				out = append(out, x)
			}
		}
		if !p.Removed && r.Emoji != "" {
			out = append(out, r)
		}
		m.Reactions = out
		t.Notify(Change{Kind: "message", ConversationID: m.ConversationID, MessageID: m.ID})
		return t.putMessage(m)
	case pendingDelete:
		return t.tombstone(m)
	}
	return Errorf(ErrInternal, "unknown pending kind %q", p.Kind)
}

// tombstone erases a message's content and media bytes and keeps its place.
func (t *Tx) tombstone(m *Message) error {
	if m.Deleted {
		return nil
	}
	wasFailed := m.Direction == Outbound && m.Status == StatusFailed
	if m.Media != nil && m.Media.ID != "" {
		if err := t.releaseMedia(m.Media.ID); err != nil {
			return err
		}
	}
	if err := t.unindexWords(m); err != nil {
		return err
	}
	m.Text, m.Caption = "", ""
	m.Location, m.Contacts, m.Interactive, m.Order, m.Raw = nil, nil, nil, nil, nil
	m.Referral, m.ReferredProduct, m.ProviderData = nil, nil, nil
	m.Deleted = true
	m.Status = StatusDeleted
	if err := t.putMessage(m); err != nil {
		return err
	}
	c, err := t.getConversation(m.ConversationID)
	if err != nil {
		return err
	}
	if wasFailed {
		c.FailedCount--
		if err := t.addCounter(counterFailedSends, -1); err != nil {
			return err
		}
	}
	if c.LastMessageID == m.ID {
		c.LastPreview = Preview(m)
	}
	if err := t.putConversation(c, c.LastActivity, true); err != nil {
		return err
	}
	t.Notify(Change{Kind: "message", ConversationID: m.ConversationID, MessageID: m.ID})
	return t.logEvent(EventRecord{Type: EventMessageDeleted, ConversationID: m.ConversationID, MessageID: m.ID})
}

// ---- status timelines ----

var statusRank = map[string]int{
	StatusScheduled: 0, StatusQueued: 1, StatusSent: 2, StatusDelivered: 3, StatusSeen: 4,
}

// statusOf derives an outbound message's status from its whole timeline, so
// the order reports arrive in cannot matter: the furthest point reached
// along queued → sent → delivered → seen, or failed if a failure was
// reported and the message was never delivered.
func statusOf(m *Message) string {
	if m.Deleted {
		return StatusDeleted
	}
	best, failed := -1, false
	for _, e := range m.Timeline {
		if e.Status == StatusFailed {
			failed = true
		} else if r, ok := statusRank[e.Status]; ok && r > best {
			best = r
		}
	}
	if failed && best < statusRank[StatusDelivered] {
		return StatusFailed
	}
	for s, r := range statusRank {
		if r == best {
			return s
		}
	}
	return StatusQueued
}

// applyReportTo records a report on m. A report that carried no time of its
// own (stamped with the commit's) is the same report as an earlier one that
// matches in everything but the time, so a resend is still recorded once.
func (t *Tx) applyReportTo(m *Message, r Report) error {
	if r.Untimed {
		for _, x := range m.Timeline {
			if x.Status == r.Status && x.GroupName == r.GroupName && x.Name == r.Name &&
				x.Description == r.Description && x.Reason == r.Reason {
				return nil
			}
		}
	}
	return t.applyEvent(m, r.Event())
}

// applyEvent adds e to m's timeline (once), keeps the timeline ordered by
// the events' own times and recomputes the status.
func (t *Tx) applyEvent(m *Message, e Event) error {
	e.At = e.At.UTC()
	for _, x := range m.Timeline {
		if x.Status == e.Status && x.At.Equal(e.At) && x.GroupName == e.GroupName &&
			x.Name == e.Name && x.Description == e.Description && x.Reason == e.Reason {
			return nil // the same report again
		}
	}
	i := sort.Search(len(m.Timeline), func(i int) bool { return m.Timeline[i].At.After(e.At) })
	m.Timeline = append(m.Timeline, Event{})
	copy(m.Timeline[i+1:], m.Timeline[i:])
	m.Timeline[i] = e
	if m.Direction != Outbound {
		return t.putMessage(m)
	}
	old := m.Status
	m.Status = statusOf(m)
	if e.Status == StatusFailed && e.Reason != "" && m.Status == StatusFailed {
		m.Error = e.Reason
	} else if old == StatusFailed && m.Status != StatusFailed {
		m.Error = "" // a late delivery report: it did not fail after all
	}
	if err := t.putMessage(m); err != nil {
		return err
	}
	if (old == StatusFailed) != (m.Status == StatusFailed) {
		delta := 1
		if old == StatusFailed {
			delta = -1
		}
		c, err := t.getConversation(m.ConversationID)
		if err != nil {
			return err
		}
		c.FailedCount += delta
		if err := t.putConversation(c, c.LastActivity, true); err != nil {
			return err
		}
		if err := t.addCounter(counterFailedSends, int64(delta)); err != nil {
			return err
		}
	}
	t.Notify(Change{Kind: "status", ConversationID: m.ConversationID, MessageID: m.ID})
	return t.logEvent(EventRecord{Type: EventMessageStatus, ConversationID: m.ConversationID, MessageID: m.ID, Status: &e})
}

// ReportResult says what became of one report.
type ReportResult struct {
	MessageID string // empty when parked or ignored
	Parked    bool
	// Ignored: the report named no stored message and asked not to be
	// parked (Report.IgnoreUnknown).
	Ignored bool
}

// ApplyReports records delivery and seen reports in one transaction. A
// report for a message not yet stored is parked and applied when it comes.
func (s *Store) ApplyReports(ctx context.Context, reps []Report) ([]ReportResult, error) {
	if err := validatePost(nil, reps); err != nil {
		return nil, err
	}
	r, err := s.write(ctx, Post{Reports: reps})
	return r.Reports, err
}

// AddEvent appends an event to a message's timeline (the dispatcher's
// sent/failed events).
func (s *Store) AddEvent(ctx context.Context, msgID string, e Event) error {
	return s.Update(ctx, func(t *Tx) error {
		m, err := t.getMessage(msgID)
		if err != nil {
			return err
		}
		return t.applyEvent(m, e)
	})
}

// AddAlias registers another external id for a message (the provider's own
// message id), and applies whatever was parked under it.
func (t *Tx) AddAlias(msgID, provider, alias string) error {
	if alias == "" {
		return nil
	}
	ext := t.tx.Bucket(bucketExt)
	if id := ext.Get(outKey(provider, alias)); id != nil {
		return nil
	}
	m, err := t.getMessage(msgID)
	if err != nil {
		return err
	}
	if alias == m.ExternalID || m.Direction != Outbound {
		return nil
	}
	m.Aliases = append(m.Aliases, alias)
	if err := t.putMessage(m); err != nil {
		return err
	}
	if err := ext.Put(outKey(provider, alias), []byte(msgID)); err != nil {
		return err
	}
	return t.resolveFor(m, provider, alias)
}

// ApplyEvent is applyEvent for callers in other files of this package and
// the dispatcher, inside their own Update.
func (t *Tx) ApplyEvent(msgID string, e Event) error {
	m, err := t.getMessage(msgID)
	if err != nil {
		return err
	}
	return t.applyEvent(m, e)
}
