package store

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"

	"imchannel/words"
)

// NormalizeNumber reduces a phone number to digits: "+31 6-1234", "0031…"
// and "31…" all become "31…". Only an international "00" prefix is dropped.
func NormalizeNumber(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			b.WriteByte(c)
		}
	}
	return strings.TrimPrefix(b.String(), "00")
}

// conversationFor finds or creates the conversation of a pair of numbers.
func (t *Tx) conversationFor(business, customer string) (*Conversation, error) {
	if id := t.tx.Bucket(bucketConvKey).Get(convKey(business, customer)); id != nil {
		return t.getConversation(string(id))
	}
	c := &Conversation{
		ID:        t.s.NewID(),
		Business:  business,
		Customer:  customer,
		Domain:    DefaultDomain,
		CreatedAt: t.now,
	}
	if err := t.tx.Bucket(bucketConvKey).Put(convKey(business, customer), []byte(c.ID)); err != nil {
		return nil, err
	}
	if err := t.addCounter(counterConversations, 1); err != nil {
		return nil, err
	}
	if err := t.addCounter(counterBusiness+business, 1); err != nil {
		return nil, err
	}
	return c, nil
}

func (t *Tx) getConversation(id string) (*Conversation, error) {
	v := t.tx.Bucket(bucketConvs).Get([]byte(id))
	if v == nil {
		return nil, Errorf(ErrNotFound, "conversation %s not found", id)
	}
	var c Conversation
	if err := decode(v, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// putConversation writes c and keeps its activity-index entry in step.
// prevActivity is the LastActivity the index holds for it (zero if none).
func (t *Tx) putConversation(c *Conversation, prevActivity time.Time, hadIndex bool) error {
	act := t.tx.Bucket(bucketConvActivity)
	if hadIndex {
		if err := act.Delete(timeKey(prevActivity, c.ID)); err != nil {
			return err
		}
	}
	if err := act.Put(timeKey(c.LastActivity, c.ID), activityValue(c)); err != nil {
		return err
	}
	v, err := encode(c)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketConvs).Put([]byte(c.ID), v)
}

// touchConversation records a new message on its conversation.
func (t *Tx) touchConversation(c *Conversation, m *Message) error {
	existed := t.tx.Bucket(bucketConvs).Get([]byte(c.ID)) != nil
	prev := c.LastActivity
	if m.Direction == Inbound && m.ContactName != "" {
		c.Name = m.ContactName
	}
	if m.Domain != "" {
		c.Domain = m.Domain
	}
	if !t.now.Before(c.LastActivity) {
		c.LastActivity = t.now
		c.LastMessageID = m.ID
		c.LastPreview = Preview(m)
		c.LastDirection = m.Direction
	}
	if m.Direction == Inbound {
		at := m.ReceivedAt
		if at.IsZero() || at.After(t.now) {
			at = t.now
		}
		if at.After(c.LastInboundAt) {
			c.LastInboundAt = at
		}
	} else if t.now.After(c.LastOutboundAt) {
		c.LastOutboundAt = t.now
	}
	c.MessageCount++
	if m.Direction == Outbound && m.Status == StatusFailed {
		c.FailedCount++
	}
	return t.putConversation(c, prev, existed)
}

// Preview is a one-line summary of a message for lists.
func Preview(m *Message) string {
	if m.Deleted {
		return "message deleted"
	}
	s := m.Text
	if s == "" {
		s = m.Caption
	}
	if s == "" && m.Interactive != nil {
		s = m.Interactive.Title
	}
	if s == "" && m.Location != nil {
		s = m.Location.Name
	}
	if s == "" {
		s = "[" + m.Type + "]"
	}
	s = strings.Join(strings.Fields(s), " ")
	const max = 120
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max]) + "…"
	}
	return s
}

// matchQuery reports whether a conversation's search text (an activity
// entry after its flags byte) matches q, which
// is either digits (any format, partial) or a piece of a name.
func matchQuery(text []byte, digits string, lower string) bool {
	if digits != "" {
		nums := text
		// Numbers are the first two space-separated fields.
		if i := bytes.IndexByte(nums, ' '); i >= 0 {
			if j := bytes.IndexByte(nums[i+1:], ' '); j >= 0 {
				nums = nums[:i+1+j]
			}
		}
		return bytes.Contains(nums, []byte(digits))
	}
	return bytes.Contains(text, []byte(lower))
}

// parseQuery splits a search into a digit query or a name query: anything
// with a letter is a name.
func parseQuery(q string) (digits, lower string) {
	q = strings.TrimSpace(q)
	if q == "" {
		return "", ""
	}
	for _, r := range q {
		if r > 127 || (r|0x20 >= 'a' && r|0x20 <= 'z') {
			return "", words.Fold(q)
		}
	}
	d := NormalizeNumber(q)
	if d == "" {
		// Neither digits nor letters ("+", "()"): nothing can match.
		return noMatch, ""
	}
	return d, ""
}

// noMatch is a digit query no stored number contains.
const noMatch = "\x00"
