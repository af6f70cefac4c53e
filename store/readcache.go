package store

import (
	"bytes"
	"slices"
	"sync"
)

// readCache keeps decoded messages for the agents' read paths. An entry is
// used only when the stored bytes are still exactly the bytes it was
// decoded from, so it can never serve a stale message; comparing ~1 KB is
// some forty times cheaper than decoding it, which is what makes a
// 200-message thread page cheap to show again.
type readCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*cachedMessage
}

type cachedMessage struct {
	raw []byte
	msg Message
}

func newReadCache(max int) *readCache {
	return &readCache{max: max, entries: make(map[string]*cachedMessage, max)}
}

// get returns a copy of the message decoded from raw, if cached; the copy
// shares nothing with the cache.
func (c *readCache) get(id string, raw []byte) (Message, bool) {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		return Message{}, false
	}
	return e.msg.detached(), true
}

// put remembers m as decoded from raw (which must not be bbolt's memory).
func (c *readCache) put(id string, raw []byte, m *Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Drop an arbitrary eighth: map order is random, which is a fair
		// enough eviction for a cache whose misses only cost a decode.
		n := c.max / 8
		for k := range c.entries {
			delete(c.entries, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.entries[id] = &cachedMessage{raw: raw, msg: m.detached()}
}

// detached copies m so that nothing the copy reaches is shared with the
// cache or another reader: a caller may change any field of the message it
// gets (its reply link, a timeline entry) without changing what the next
// reader sees. Copying these few small parts is still far cheaper than
// decoding the JSON again.
func (m Message) detached() Message {
	m.Timeline = slices.Clone(m.Timeline)
	m.Reactions = slices.Clone(m.Reactions)
	m.Aliases = slices.Clone(m.Aliases)
	m.Contacts = slices.Clone(m.Contacts)
	m.Order = slices.Clone(m.Order)
	m.Raw = slices.Clone(m.Raw)
	if m.Media != nil {
		md := *m.Media
		m.Media = &md
	}
	if m.Location != nil {
		l := *m.Location
		m.Location = &l
	}
	if m.Interactive != nil {
		it := *m.Interactive
		it.Response = slices.Clone(it.Response)
		m.Interactive = &it
	}
	if m.ReplyTo != nil {
		r := *m.ReplyTo
		m.ReplyTo = &r
	}
	if m.Outbound != nil {
		o := *m.Outbound
		o.WhatsApp = slices.Clone(o.WhatsApp)
		o.HeaderData = slices.Clone(o.HeaderData)
		o.BodyData = slices.Clone(o.BodyData)
		o.DynamicURL = slices.Clone(o.DynamicURL)
		m.Outbound = &o
	}
	return m
}
