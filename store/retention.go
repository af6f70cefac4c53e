package store

import (
	"context"
	"time"

	"github.com/oklog/ulid/v2"
)

// PurgeResult says what one retention pass removed.
type PurgeResult struct {
	Messages int // messages removed (with their media, index and outbox entries)
	Pending  int // parked reports, reactions and replies older than the cutoff
	// Quarantine counts quarantined items last seen before the cutoff.
	Quarantine int
}

// idTime is the time inside a ULID key; ok is false for anything else.
func idTime(k []byte) (time.Time, bool) {
	if len(k) != ulid.EncodedSize {
		return time.Time{}, false
	}
	id, err := ulid.ParseStrict(string(k))
	if err != nil {
		return time.Time{}, false
	}
	return ulid.Time(id.Time()), true
}

// PurgeBefore removes every message created before cutoff, exactly as
// erasure does (media bytes, index entries, outbox entries, parked replies;
// conversations left empty go too), and parked items older than cutoff. It
// works in transactions of at most EraseBatch messages, each sharing the
// group commit with ingest, so a big first purge never stalls webhooks.
//
// Message ids are ULIDs minted at creation, so the messages bucket is in
// creation order and the pass stops at the first id minted at or after
// cutoff without reading the rest.
func (s *Store) PurgeBefore(ctx context.Context, cutoff time.Time) (PurgeResult, error) {
	var res PurgeResult
	var resume []byte
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var removed int
		var next []byte
		done := false
		err := s.Update(ctx, func(t *Tx) error {
			removed, next, done = 0, nil, false
			rm := newRemoval()
			c := t.tx.Bucket(bucketMessages).Cursor()
			k, v := c.First()
			if resume != nil {
				k, v = c.Seek(resume)
			}
			var batch []*Message
			for ; ; k, v = c.Next() {
				if k == nil {
					done = true
					break
				}
				if at, ok := idTime(k); ok && !at.Before(cutoff) {
					done = true
					break
				}
				if len(batch) == EraseBatch {
					next = append([]byte(nil), k...)
					break
				}
				var m Message
				if err := decode(v, &m); err != nil {
					return err
				}
				if m.CreatedAt.Before(cutoff) {
					batch = append(batch, &m)
				}
			}
			for _, m := range batch {
				if err := t.removeMessage(m, rm); err != nil {
					return err
				}
			}
			removed = rm.count
			return t.finishRemoval(rm)
		})
		if err != nil {
			return res, err
		}
		res.Messages += removed
		if done {
			break
		}
		resume = next
	}
	n, err := s.purgePending(ctx, cutoff)
	res.Pending = n
	if err != nil {
		return res, err
	}
	res.Quarantine, err = s.purgeQuarantine(ctx, cutoff)
	return res, err
}

// purgePending removes parked items (keys end in the ULID minted when they
// were parked) older than cutoff: reports and reactions for messages that
// never arrived.
func (s *Store) purgePending(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	var resume []byte
	for {
		var del [][]byte
		var next []byte
		err := s.Update(ctx, func(t *Tx) error {
			del, next = nil, nil
			pb := t.tx.Bucket(bucketPending)
			c := pb.Cursor()
			k, _ := c.First()
			if resume != nil {
				k, _ = c.Seek(resume)
			}
			for scanned := 0; k != nil; k, _ = c.Next() {
				if scanned == 10*EraseBatch || len(del) == EraseBatch {
					next = append([]byte(nil), k...)
					break
				}
				scanned++
				if len(k) < ulid.EncodedSize {
					continue
				}
				if at, ok := idTime(k[len(k)-ulid.EncodedSize:]); ok && at.Before(cutoff) {
					del = append(del, append([]byte(nil), k...))
				}
			}
			for _, k := range del {
				if err := pb.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(del)
		if next == nil {
			return total, nil
		}
		resume = next
	}
}
