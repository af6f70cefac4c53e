// Package migrations holds the ordered schema steps of the imchannel bbolt
// file. The list is append-only: a released step is never edited, a change
// is a new step. Each step names its buckets literally, so later renames in
// the store cannot rewrite history.
package migrations

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Step is one schema change.
type Step struct {
	Version     uint64
	Description string
	Apply       func(tx *bolt.Tx) error
}

var (
	metaBucket = []byte("meta")
	versionKey = []byte("schema_version")
)

// Steps returns the ordered steps.
func Steps() []Step {
	return []Step{
		{1, "create the conversation, message, index, outbox and media buckets", v1CreateBuckets},
		{2, "create the quarantine buckets for provider items that could not be understood", v2Quarantine},
		{3, "create the events log and the relay buckets", v3CreateEventBuckets},
		{4, "separate inbound and outbound ids: outbound ids and parked reports move to their own namespace", v4SplitIDNamespaces},
		{5, "index message text; conversation flags and folded names in conv_activity; conversations per business; media_thumbs", v5TextIndex},
	}
}

// Latest is the schema version this binary writes.
func Latest() uint64 {
	s := Steps()
	return s[len(s)-1].Version
}

// Version reads the file's schema version (0 for an empty file).
func Version(tx *bolt.Tx) uint64 {
	b := tx.Bucket(metaBucket)
	if b == nil {
		return 0
	}
	v := b.Get(versionKey)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Pending lists the steps a file at version still needs.
func Pending(version uint64) []Step {
	var out []Step
	for _, s := range Steps() {
		if s.Version > version {
			out = append(out, s)
		}
	}
	return out
}

// Apply runs every pending step in one transaction and records the new
// version. It returns the versions applied.
func Apply(db *bolt.DB) ([]uint64, error) {
	var applied []uint64
	err := db.Update(func(tx *bolt.Tx) error {
		applied = applied[:0]
		v := Version(tx)
		if v > Latest() {
			return fmt.Errorf("schema version %d is newer than this binary's %d", v, Latest())
		}
		for _, s := range Pending(v) {
			if err := s.Apply(tx); err != nil {
				return fmt.Errorf("step %d (%s): %w", s.Version, s.Description, err)
			}
			if err := setVersion(tx, s.Version); err != nil {
				return err
			}
			applied = append(applied, s.Version)
		}
		return nil
	})
	return applied, err
}

func setVersion(tx *bolt.Tx, v uint64) error {
	b, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return fmt.Errorf("meta bucket: %w", err)
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return b.Put(versionKey, buf[:])
}

// v1Buckets is the layout of schema 1 (drawn in the store's package comment).
var v1Buckets = []string{
	"meta", "counters",
	"conversations", "conv_key", "conv_activity", "conv_msgs",
	"messages", "ext", "pending",
	"outbox", "outbox_state",
	"media", "media_queue", "media_token", "blobs", "chunks",
	"tokens", "audit",
}

func v1CreateBuckets(tx *bolt.Tx) error {
	for _, name := range v1Buckets {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// v2Buckets keep provider items that could not be understood (issue 12).
var v2Buckets = []string{"quarantine", "quarantine_hash"}

func v2Quarantine(tx *bolt.Tx) error {
	for _, name := range v2Buckets {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// v3Buckets hold the append-only events log, its per-conversation index,
// and each relay target's cursor and quarantined events.
var v3Buckets = []string{"events", "event_conv", "relay", "relay_quarantine"}

func v3CreateEventBuckets(tx *bolt.Tx) error {
	for _, name := range v3Buckets {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// Namespace bytes between provider and id in ext and pending keys
// (schema 4): inbound ids keep 0x00, outbound ids move to 0x01.
const (
	v4In  byte = 0x00
	v4Out byte = 0x01
)

// v4SplitIDNamespaces moves every outbound message's ids (its externalId
// and aliases) from the shared namespace to the outbound one, and every
// parked report with them (reports only ever name outbound messages).
// Inbound ids, parked replies, reactions and deletions stay. Safe to run
// on a file already split: only keys still in the old place move.
func v4SplitIDNamespaces(tx *bolt.Tx) error {
	msgs, ext, pend := tx.Bucket([]byte("messages")), tx.Bucket([]byte("ext")), tx.Bucket([]byte("pending"))
	if msgs == nil || ext == nil || pend == nil {
		return fmt.Errorf("schema 1 buckets missing")
	}
	type move struct{ from, to, val []byte }
	var moves []move
	key := func(ns byte, provider, id string) []byte {
		k := append([]byte(provider), ns)
		return append(k, id...)
	}
	err := msgs.ForEach(func(k, v []byte) error {
		var m struct {
			ID         string   `json:"id"`
			Direction  string   `json:"direction"`
			Provider   string   `json:"provider"`
			ExternalID string   `json:"externalId"`
			Aliases    []string `json:"aliases"`
		}
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("message %s: %w", k, err)
		}
		if m.Direction != "outbound" {
			return nil
		}
		for _, id := range append([]string{m.ExternalID}, m.Aliases...) {
			if id == "" {
				continue
			}
			old := key(v4In, m.Provider, id)
			if string(ext.Get(old)) == m.ID {
				moves = append(moves, move{old, key(v4Out, m.Provider, id), []byte(m.ID)})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, mv := range moves {
		if err := ext.Delete(mv.from); err != nil {
			return err
		}
		if err := ext.Put(mv.to, mv.val); err != nil {
			return err
		}
	}
	moves = moves[:0]
	err = pend.ForEach(func(k, v []byte) error {
		var p struct {
			Kind   string `json:"kind"`
			Report *struct {
				Provider string `json:"provider"`
			} `json:"report"`
		}
		if json.Unmarshal(v, &p) != nil || p.Kind != "report" || p.Report == nil {
			return nil
		}
		n := len(p.Report.Provider)
		if len(k) <= n || string(k[:n]) != p.Report.Provider || k[n] != v4In {
			return nil // already moved, or not keyed as expected: leave it
		}
		to := append([]byte(nil), k...)
		to[n] = v4Out
		moves = append(moves, move{append([]byte(nil), k...), to, append([]byte(nil), v...)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, mv := range moves {
		if err := pend.Delete(mv.from); err != nil {
			return err
		}
		if err := pend.Put(mv.to, mv.val); err != nil {
			return err
		}
	}
	return nil
}
