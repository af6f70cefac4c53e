package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Quarantined is a provider item (one Infobip result, one CM MO or status
// report) that could not be understood. It is kept raw with the reason, so
// nothing a provider sent is lost, and answered 2xx: a refusal would only
// make the provider resend it until it gives up.
type Quarantined struct {
	ID       string          `json:"id"` // ULID: quarantine order
	Provider string          `json:"provider"`
	Route    string          `json:"route"`
	Reason   string          `json:"reason"`
	Raw      json.RawMessage `json:"raw"`
	// Hash is the hex SHA-256 of route and raw: a resend of the same item
	// is counted on the first one, not kept twice.
	Hash   string    `json:"hash"`
	At     time.Time `json:"at"`
	LastAt time.Time `json:"lastAt"`
	Count  int       `json:"count"`
}

// QuarantineHash is the dedupe key of a raw item posted to route.
func QuarantineHash(route string, raw []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(raw)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// maxQuarantineRaw bounds what one item keeps; the webhook body limit is
// far below it, so it only guards callers that do not apply one.
const maxQuarantineRaw = 4 << 20

// quarantine stores q (or counts it again when the same raw item from the
// same route is already there). dup reports the latter.
func (t *Tx) quarantine(q Quarantined) (dup bool, err error) {
	if q.Route == "" || q.Reason == "" {
		return false, Errorf(ErrInvalid, "quarantine: route and reason are required")
	}
	if len(q.Raw) > maxQuarantineRaw {
		q.Raw = q.Raw[:0:0]
	}
	if !json.Valid(q.Raw) {
		// Keep the bytes readable in the JSON API: as a JSON string.
		b, err := json.Marshal(string(q.Raw))
		if err != nil {
			return false, fmt.Errorf("%w: quarantine raw: %v", ErrInternal, err)
		}
		q.Raw = b
	}
	sum := QuarantineHash(q.Route, q.Raw)
	hb := t.tx.Bucket(bucketQuarantineHash)
	qb := t.tx.Bucket(bucketQuarantine)
	if id := hb.Get(sum[:]); len(id) > 0 {
		var prev Quarantined
		if v := qb.Get(id); v != nil && decode(v, &prev) == nil {
			prev.Count++
			prev.LastAt = t.now
			v, err := encode(&prev)
			if err != nil {
				return false, err
			}
			return true, qb.Put(id, v)
		}
	}
	q.ID = t.s.NewID()
	q.Hash = fmt.Sprintf("%x", sum)
	q.At, q.LastAt, q.Count = t.now, t.now, 1
	v, err := encode(&q)
	if err != nil {
		return false, err
	}
	if err := qb.Put([]byte(q.ID), v); err != nil {
		return false, err
	}
	if err := hb.Put(sum[:], []byte(q.ID)); err != nil {
		return false, err
	}
	if err := t.addCounter(counterQuarantined, 1); err != nil {
		return false, err
	}
	t.Notify(Change{Kind: "quarantine"})
	return false, nil
}

// Quarantine lists quarantined items, newest first. cursor is the previous
// page's next (the last id returned); next is empty on the last page.
func (s *Store) Quarantine(limit int, cursor string) (items []*Quarantined, next string, err error) {
	if limit <= 0 || limit > 500 {
		return nil, "", Errorf(ErrInvalid, "limit must be between 1 and 500")
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketQuarantine).Cursor()
		var k, v []byte
		if cursor == "" {
			k, v = c.Last()
		} else {
			k, v = c.Seek([]byte(cursor))
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && string(k) >= cursor {
				k, v = c.Prev()
			}
		}
		for ; k != nil; k, v = c.Prev() {
			if len(items) == limit {
				next = items[len(items)-1].ID
				return nil
			}
			var q Quarantined
			if err := decode(v, &q); err != nil {
				return err
			}
			items = append(items, &q)
		}
		return nil
	})
	return items, next, err
}

// QuarantineCount is how many distinct items are quarantined.
func (s *Store) QuarantineCount() int {
	n := 0
	_ = s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketQuarantine).Stats().KeyN
		return nil
	})
	return n
}

func checkQuarantine(tx *bolt.Tx, add addFunc) {
	qb := tx.Bucket(bucketQuarantine)
	hb := tx.Bucket(bucketQuarantineHash)
	_ = qb.ForEach(func(k, v []byte) error {
		var q Quarantined
		if err := decode(v, &q); err != nil {
			add("quarantine %s: %v", k, err)
			return nil
		}
		// The hash is of the raw bytes as posted; the stored copy may be
		// re-escaped by the JSON encoder, so the recorded hash is checked.
		sum, err := hex.DecodeString(q.Hash)
		if err != nil || string(hb.Get(sum)) != string(k) {
			add("quarantine %s: hash index entry missing or wrong", k)
		}
		return nil
	})
	_ = hb.ForEach(func(k, v []byte) error {
		if qb.Get(v) == nil {
			add("quarantine hash %x names missing item %s", k, v)
		}
		return nil
	})
}

// dropQuarantineMentioning removes quarantined items whose raw JSON holds
// the customer's number as a run of digits: an erasure covers what could
// not be understood too. A number written with spaces or dashes inside is
// not recognised.
func (t *Tx) dropQuarantineMentioning(digits string) (int, error) {
	if digits == "" {
		return 0, nil
	}
	qb, hb := t.tx.Bucket(bucketQuarantine), t.tx.Bucket(bucketQuarantineHash)
	var ids [][]byte
	var hashes [][]byte
	err := qb.ForEach(func(k, v []byte) error {
		var q Quarantined
		if decode(v, &q) != nil || !containsNumber(q.Raw, digits) {
			return nil
		}
		ids = append(ids, append([]byte(nil), k...))
		if sum, err := hex.DecodeString(q.Hash); err == nil {
			hashes = append(hashes, sum)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range ids {
		if err := qb.Delete(k); err != nil {
			return 0, err
		}
	}
	for _, h := range hashes {
		if err := hb.Delete(h); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// containsNumber reports whether a run of digits in raw is the number
// digits (compared as numbers are: 0031…, +31… and 31… are one).
func containsNumber(raw []byte, digits string) bool {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	for i := 0; i < len(raw); {
		if !isDigit(raw[i]) {
			i++
			continue
		}
		j := i
		for j < len(raw) && isDigit(raw[j]) {
			j++
		}
		if j-i >= len(digits) && NormalizeNumber(string(raw[i:j])) == digits {
			return true
		}
		i = j
	}
	return false
}

// purgeQuarantine removes quarantined items last seen before cutoff, in
// transactions of at most EraseBatch items.
func (s *Store) purgeQuarantine(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.Update(ctx, func(t *Tx) error {
			n = 0
			qb, hb := t.tx.Bucket(bucketQuarantine), t.tx.Bucket(bucketQuarantineHash)
			var del []Quarantined
			err := qb.ForEach(func(k, v []byte) error {
				if len(del) == EraseBatch {
					return nil
				}
				var q Quarantined
				if decode(v, &q) == nil && q.LastAt.Before(cutoff) {
					del = append(del, q)
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, q := range del {
				if err := qb.Delete([]byte(q.ID)); err != nil {
					return err
				}
				if sum, err := hex.DecodeString(q.Hash); err == nil {
					if err := hb.Delete(sum); err != nil {
						return err
					}
				}
			}
			n = len(del)
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < EraseBatch {
			return total, nil
		}
	}
}
