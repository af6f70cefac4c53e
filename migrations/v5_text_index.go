package migrations

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"imchannel/words"
)

// v5TextIndex builds what finding conversations and messages reads:
//
//   - msg_words: token+0x00+16-byte message ULID → "" for every word of
//     every message's text and caption (deleted messages have none);
//   - conv_activity values become a flags byte (1 unanswered, 2 has failed
//     sends) followed by "customer business folded-name" (accents and case
//     dropped), so filters and totals read the index alone;
//   - counters "biz:NUMBER" count each business number's conversations;
//   - media_thumbs (media id → preview bytes) is created, empty: previews
//     are made when media is cached from now on.
//
// It runs in the one migration transaction: on a file with a million
// messages it writes some ten million small keys, which that transaction
// holds in memory until it commits (see docs/agents.md, "Upgrading").
func v5TextIndex(tx *bolt.Tx) error {
	wb, err := tx.CreateBucketIfNotExists([]byte("msg_words"))
	if err != nil {
		return fmt.Errorf("create bucket msg_words: %w", err)
	}
	// Image previews, made from now on when media is cached.
	if _, err := tx.CreateBucketIfNotExists([]byte("media_thumbs")); err != nil {
		return fmt.Errorf("create bucket media_thumbs: %w", err)
	}
	// The keys are collected and put in key order: bbolt splits nodes only
	// at commit, so keys put in message order would each move the tail of
	// one ever-growing node (quadratic); in key order each lands at the end.
	var keys [][]byte
	type message struct {
		ID      string `json:"id"`
		Text    string `json:"text"`
		Caption string `json:"caption"`
		Deleted bool   `json:"deleted"`
	}
	err = tx.Bucket([]byte("messages")).ForEach(func(k, v []byte) error {
		var m message
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("message %s: %w", k, err)
		}
		if m.Deleted || (m.Text == "" && m.Caption == "") {
			return nil
		}
		id, err := ulid.ParseStrict(m.ID)
		if err != nil {
			return fmt.Errorf("message %s: id: %w", k, err)
		}
		for _, tok := range words.Tokens(m.Text + "\n" + m.Caption) {
			key := make([]byte, 0, len(tok)+17)
			keys = append(keys, append(append(append(key, tok...), 0), id[:]...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(keys, bytes.Compare)
	for _, k := range keys {
		if err := wb.Put(k, []byte{}); err != nil {
			return err
		}
	}
	keys = nil

	type conversation struct {
		ID             string    `json:"id"`
		Business       string    `json:"business"`
		Customer       string    `json:"customer"`
		Name           string    `json:"name"`
		LastActivity   time.Time `json:"lastActivity"`
		LastInboundAt  time.Time `json:"lastInboundAt"`
		LastOutboundAt time.Time `json:"lastOutboundAt"`
		FailedCount    int       `json:"failedCount"`
	}
	act := tx.Bucket([]byte("conv_activity"))
	counters := tx.Bucket([]byte("counters"))
	biz := map[string]uint64{}
	return tx.Bucket([]byte("conversations")).ForEach(func(k, v []byte) error {
		var c conversation
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("conversation %s: %w", k, err)
		}
		var flags byte
		if !c.LastInboundAt.IsZero() && c.LastInboundAt.After(c.LastOutboundAt) {
			flags |= 1
		}
		if c.FailedCount > 0 {
			flags |= 2
		}
		// The activity key: big-endian unix nanoseconds, then the id.
		var t8 [8]byte
		n := c.LastActivity.UnixNano()
		if n < 0 {
			n = 0
		}
		binary.BigEndian.PutUint64(t8[:], uint64(n))
		key := append(t8[:], c.ID...)
		val := append([]byte{flags}, c.Customer+" "+c.Business+" "+words.Fold(c.Name)...)
		if err := act.Put(key, val); err != nil {
			return err
		}
		biz[c.Business]++
		var cnt [8]byte
		binary.BigEndian.PutUint64(cnt[:], biz[c.Business])
		return counters.Put([]byte("biz:"+c.Business), cnt[:])
	})
}
