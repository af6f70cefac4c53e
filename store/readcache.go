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

// get returns a copy of the message decoded from raw, if cached.
func (c *readCache) get(id string, raw []byte) (Message, bool) {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		return Message{}, false
	}
	return e.msg.shallowCopy(), true
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
	c.entries[id] = &cachedMessage{raw: raw, msg: m.shallowCopy()}
}

// shallowCopy copies m with its slices clipped, so a reader appending to
// one cannot write into another reader's copy. Readers never modify what
// the slices hold.
func (m Message) shallowCopy() Message {
	m.Timeline = slices.Clip(m.Timeline)
	m.Reactions = slices.Clip(m.Reactions)
	m.Aliases = slices.Clip(m.Aliases)
	m.Contacts = slices.Clip(m.Contacts)
	m.Order = slices.Clip(m.Order)
	m.Raw = slices.Clip(m.Raw)
	return m
}
