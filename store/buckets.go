package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names (drawn in doc.go). Migrations create them.
var (
	bucketMeta           = []byte("meta")
	bucketCounters       = []byte("counters")
	bucketConvs          = []byte("conversations")
	bucketConvKey        = []byte("conv_key")
	bucketConvActivity   = []byte("conv_activity")
	bucketConvMsgs       = []byte("conv_msgs")
	bucketMessages       = []byte("messages")
	bucketExt            = []byte("ext")
	bucketPending        = []byte("pending")
	bucketOutbox         = []byte("outbox")
	bucketOutboxState    = []byte("outbox_state")
	bucketMedia          = []byte("media")
	bucketMediaQueue     = []byte("media_queue")
	bucketMediaToken     = []byte("media_token")
	bucketBlobs          = []byte("blobs")
	bucketChunks         = []byte("chunks")
	bucketTokens         = []byte("tokens")
	bucketAudit          = []byte("audit")
	bucketQuarantine     = []byte("quarantine")
	bucketQuarantineHash = []byte("quarantine_hash")
	bucketWords          = []byte("msg_words")
	bucketThumbs         = []byte("media_thumbs")

	keyHealth = []byte("health")
)

// appendedFill lists the buckets that take new keys at their end (ULIDs,
// or a time first) with the fill their pages get when they split. bbolt's
// default splits at half, and a page of an appended tree is never written
// into again below the split: half of every page stays empty. Messages
// leave a fifth free because our replies are rewritten after they land
// (delivered and seen reports each add to the timeline); measured on 60%
// inbound and 40% with two reports, 0.8 stores a message in 843 bytes of
// pages, 0.5 in 1,394 and 0.9 in 1,010 (docs/scale.md). The other buckets'
// values never grow.
var appendedFill = []struct {
	name []byte
	fill float64
}{
	{bucketMessages, 0.8},
	{bucketConvActivity, 0.95},
	{bucketOutbox, 0.95},
	{bucketMediaQueue, 0.95},
	{bucketAudit, 0.95},
	{bucketEvents, 0.95},
	{bucketQuarantine, 0.95},
}

// fillAppended sets the fill of the appended buckets for a write
// transaction (bbolt keeps the setting on the bucket handle, which the
// transaction caches, not in the file).
func fillAppended(tx *bolt.Tx) {
	for _, a := range appendedFill {
		if b := tx.Bucket(a.name); b != nil {
			b.FillPercent = a.fill
		}
	}
}

// dirtyPages counts, per bucket, the pages a write transaction will write
// when it commits. bbolt materialises a node for every page on the path to
// each key written or deleted and writes each as a new page; those nodes
// sit in the Bucket's unexported node cache, read here by reflection
// (benchmarks only: Options.OnCommitPages). An unknown bbolt layout counts
// nothing rather than failing.
func dirtyPages(tx *bolt.Tx) map[string]int {
	out := map[string]int{}
	_ = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		v := reflect.ValueOf(b).Elem().FieldByName("nodes")
		if v.IsValid() && v.Kind() == reflect.Map && v.Len() > 0 {
			out[string(name)] = v.Len()
		}
		return nil
	})
	return out
}

// Counter names.
const (
	counterMessages      = "messages"
	counterConversations = "conversations"
	counterFailedSends   = "failed_sends"
	counterQuarantined   = "quarantined"
	// counterBusiness+number counts a business number's conversations.
	counterBusiness = "biz:"
)

// ---- codecs, kept apart from the transaction logic ----

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %T: %v", ErrInternal, v, err)
	}
	return b, nil
}

func decode(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: decode %T: %v", ErrInternal, v, err)
	}
	return nil
}

func t8(t time.Time) []byte {
	var b [8]byte
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return b[:]
}

func timeKey(t time.Time, id string) []byte {
	k := make([]byte, 0, 8+len(id))
	k = append(k, t8(t)...)
	return append(k, id...)
}

// Namespaces of external ids: the byte between provider and id in the ext
// and pending keys. Inbound ids (the provider's message ids, CM references)
// and outbound ids (CTLive's messageIds, the provider's ids for our sends)
// never meet: a send may reuse an inbound id, an inbound message may reuse
// one of ours, and reports only ever find outbound messages (schema 4).
const (
	nsIn  byte = 0x00
	nsOut byte = 0x01
)

func nsKey(ns byte, provider, externalID string) []byte {
	k := make([]byte, 0, len(provider)+1+len(externalID))
	k = append(k, provider...)
	k = append(k, ns)
	return append(k, externalID...)
}

// extKey keys an inbound id (and inbound actions: reactions, deletions).
func extKey(provider, externalID string) []byte { return nsKey(nsIn, provider, externalID) }

// outKey keys an outbound id.
func outKey(provider, externalID string) []byte { return nsKey(nsOut, provider, externalID) }

// dirKey keys an id of a message of direction dir.
func dirKey(dir, provider, externalID string) []byte {
	if dir == Outbound {
		return outKey(provider, externalID)
	}
	return extKey(provider, externalID)
}

func convKey(business, customer string) []byte {
	return []byte(business + "/" + customer)
}

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putU64(b *bolt.Bucket, key string, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return b.Put([]byte(key), buf[:])
}

// addCounter adds delta (which may be negative) to a named counter.
func (t *Tx) addCounter(name string, delta int64) error {
	b := t.tx.Bucket(bucketCounters)
	v := int64(u64(b.Get([]byte(name)))) + delta
	if v < 0 {
		v = 0
	}
	return putU64(b, name, uint64(v))
}

// Counter reads a named counter.
func (s *Store) Counter(name string) uint64 {
	var v uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		v = u64(tx.Bucket(bucketCounters).Get([]byte(name)))
		return nil
	})
	return v
}
