package store

import (
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

// keyLastBackup holds the last backup that was written and checked (a
// scheduled one, or `backup --url` once it has checked its file) in the
// meta bucket, so it survives restarts; keyLastDownload the last
// /admin/backup stream sent whole, which nobody is known to have kept.
var (
	keyLastBackup   = []byte("last_backup")
	keyLastDownload = []byte("last_download")
)

// AuditLine is one operator action kept in the audit bucket. An erasure
// records a keyed hash of the normalised number (NumberHMAC), never the
// number: without the key, which is not in the database, the hash cannot
// be tested against guesses.
type AuditLine struct {
	At         time.Time `json:"at"`
	Action     string    `json:"action"` // erase
	NumberHMAC string    `json:"numberHmac,omitempty"`
	Count      int       `json:"count"`
}

// appendAudit adds a line under t8(now)+sequence, so lines sort by time.
func (t *Tx) appendAudit(l AuditLine) error {
	b := t.tx.Bucket(bucketAudit)
	if l.At.IsZero() {
		l.At = t.now.UTC()
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	v, err := encode(l)
	if err != nil {
		return err
	}
	k := make([]byte, 16)
	copy(k, t8(l.At))
	binary.BigEndian.PutUint64(k[8:], seq)
	return b.Put(k, v)
}

// Audit returns up to limit audit lines, newest first.
func (s *Store) Audit(limit int) ([]AuditLine, error) {
	var out []AuditLine
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var l AuditLine
			if err := decode(v, &l); err != nil {
				return err
			}
			out = append(out, l)
		}
		return nil
	})
	return out, err
}

// backupRecord is the meta bucket's last_backup value.
type backupRecord struct {
	At   time.Time `json:"at"`
	Size int64     `json:"size"`
}

// RecordBackup remembers a checked backup's time and size.
func (s *Store) RecordBackup(ctx context.Context, at time.Time, size int64) error {
	return s.putRecord(ctx, keyLastBackup, at, size)
}

// RecordDownload remembers a whole /admin/backup stream's time and size.
func (s *Store) RecordDownload(ctx context.Context, at time.Time, size int64) error {
	return s.putRecord(ctx, keyLastDownload, at, size)
}

func (s *Store) putRecord(ctx context.Context, key []byte, at time.Time, size int64) error {
	v, err := encode(backupRecord{At: at.UTC(), Size: size})
	if err != nil {
		return err
	}
	return s.Update(ctx, func(t *Tx) error {
		return t.tx.Bucket(bucketMeta).Put(key, v)
	})
}

// LastBackup is the time and size of the last checked backup, zero when
// there was none. It reads the meta bucket (memory-mapped, so cheap enough
// for every status page).
func (s *Store) LastBackup() (time.Time, int64) { return s.record(keyLastBackup) }

// LastDownload is the time and size of the last /admin/backup stream sent
// whole, checked or not; zero when there was none.
func (s *Store) LastDownload() (time.Time, int64) { return s.record(keyLastDownload) }

func (s *Store) record(key []byte) (time.Time, int64) {
	var r backupRecord
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(key); v != nil {
			_ = decode(v, &r)
		}
		return nil
	})
	return r.At, r.Size
}
