package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CheckErased lists what the file still holds of customers it erased, as
// far as it can tell with the HMAC key: messages of an erased number
// stored before its erasure, and parked entries naming it from before
// then. (A customer who writes again after an erasure starts anew; that is
// not residue.) Without the key the audit's hashes cannot be matched and
// nothing is reported.
func CheckErased(db *bolt.DB, key []byte) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if len(key) == 0 {
		return nil
	}
	_ = db.View(func(tx *bolt.Tx) error {
		erased := map[string]time.Time{}
		_ = tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			var l AuditLine
			if decode(v, &l) == nil && l.Action == "erase" && l.NumberHMAC != "" && l.At.After(erased[l.NumberHMAC]) {
				erased[l.NumberHMAC] = l.At
			}
			return nil
		})
		if len(erased) == 0 {
			return nil
		}
		erasedAt := func(number string) (time.Time, bool) {
			if number == "" {
				return time.Time{}, false
			}
			at, ok := erased[NumberHMAC(key, number)]
			return at, ok
		}
		msgs := tx.Bucket(bucketMessages)
		_ = tx.Bucket(bucketConvs).ForEach(func(k, v []byte) error {
			var c Conversation
			if decode(v, &c) != nil {
				return nil
			}
			at, ok := erasedAt(c.Customer)
			if !ok {
				return nil
			}
			prefix := []byte(c.ID)
			cur := tx.Bucket(bucketConvMsgs).Cursor()
			for ck, _ := cur.Seek(prefix); ck != nil && hasPrefix(ck, prefix); ck, _ = cur.Next() {
				var m Message
				if decode(msgs.Get(ck[len(prefix):]), &m) == nil && m.CreatedAt.Before(at) {
					add("conversation %s: message %s was stored before its customer was erased (%s)", c.ID, m.ID, at.Format(time.RFC3339))
				}
			}
			return nil
		})
		_ = tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
			var p Pending
			if decode(v, &p) != nil {
				return nil
			}
			for _, n := range []string{p.From, reactionFrom(p.Reaction)} {
				if at, ok := erasedAt(NormalizeNumber(n)); ok && p.At.Before(at) {
					add("pending %x names a customer erased at %s", k, at.Format(time.RFC3339))
				}
			}
			return nil
		})
		return nil
	})
	return out
}

func reactionFrom(r *Reaction) string {
	if r == nil {
		return ""
	}
	return r.From
}
