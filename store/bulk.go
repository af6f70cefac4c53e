package store

import (
	"context"
)

// BulkLoad stores many messages in one transaction through the same insert
// path every message takes (conversation, indexes, counters, reply
// threading, media records), but queues nothing: outbound messages keep the
// Status and Timeline they come with and get no outbox entry. It is for
// building large databases for benchmarks and tests, never for live traffic.
// Each message's Direction must be set.
func (s *Store) BulkLoad(ctx context.Context, msgs []*Message) error {
	for i, m := range msgs {
		if m == nil || (m.Direction != Inbound && m.Direction != Outbound) {
			return Errorf(ErrInvalid, "message %d: direction must be %q or %q", i, Inbound, Outbound)
		}
		if err := validateNew(m, m.Direction); err != nil {
			return &ItemError{Index: i, Err: err}
		}
	}
	return s.Update(ctx, func(t *Tx) error {
		t.collectWords()
		defer func() { t.words = nil }()
		for i, m := range msgs {
			cp := *m
			if _, err := t.insert(&cp); err != nil {
				return &ItemError{Index: i, Err: err}
			}
		}
		return t.flushWords()
	})
}
