package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// eraseFixture stores one customer's data, each field carrying a marker,
// beside another customer's, and erases the first. It returns the markers
// that must not survive.
func eraseFixture(t *testing.T, s *Store) []string {
	t.Helper()
	ctx := context.Background()
	const number = "31655501234"
	markers := []string{number, "ERASED-TEXT-MARK", "ERASED-NAME-MARK", "ERASED-CAPTION-MARK", "ERASED-URL-MARK", "ERASED-BYTES-MARK"}
	for i := 0; i < 40; i++ {
		m := inbound("r-text-"+string(rune('a'+i%26))+string(rune('a'+i/26)), number, "ERASED-TEXT-MARK "+strings.Repeat("x", i*20))
		m.ContactName = "ERASED-NAME-MARK"
		saveOne(t, s, m)
	}
	img := withMedia("r-img", number, business)
	img.Caption = "ERASED-CAPTION-MARK"
	img.Media.SourceURL = "http://origin.test/ERASED-URL-MARK.jpg"
	r := saveOne(t, s, img)
	cacheMedia(t, s, r.MessageID, bytes.Repeat([]byte("ERASED-BYTES-MARK"), 20000))
	// A CM deletion parked for a message that never arrives keeps its
	// sender's number (issue 13 item 3a).
	del := &Message{Provider: ProviderCM, ExternalID: "r-del", From: number, To: business, Type: TypeDelete, Target: "never-arrives"}
	saveOne(t, s, del)

	saveOne(t, s, inbound("keep-1", "31699990000", "KEPT-TEXT"))
	n, err := s.EraseNumber(ctx, "+"+number)
	require.NoError(t, err)
	require.Equal(t, 41, n)
	requireClean(t, s)
	return markers
}

// Issue 13 item 3: after an erasure, a backup holds no byte of the
// customer's data, although the live file's freed pages still do.
func TestBackupHoldsNoErasedData(t *testing.T) {
	s := openTemp(t, Options{HMACKey: []byte("k")})
	markers := eraseFixture(t, s)

	// Nothing parked names the number any more (item 3a).
	require.NoError(t, s.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
			require.NotContains(t, string(v), markers[0], "pending %q", k)
			return nil
		})
	}))

	// A raw page copy (what every backup route wrote before) still holds
	// the erased data in freed pages: this is what the fix is about.
	var raw bytes.Buffer
	require.NoError(t, s.View(func(tx *bolt.Tx) error { _, err := tx.WriteTo(&raw); return err }))
	residue := 0
	for _, m := range markers {
		if bytes.Contains(raw.Bytes(), []byte(m)) {
			residue++
		}
	}
	require.Positive(t, residue, "the raw copy shows no residue: the test would prove nothing")

	// Every form of backup the store writes is clean.
	var streamed bytes.Buffer
	n, err := s.Backup(&streamed)
	require.NoError(t, err)
	require.EqualValues(t, raw.Len(), n, "same size as the raw copy: Content-Length still holds")
	out := filepath.Join(t.TempDir(), "copy.db")
	_, err = BackupDB(s.db, out)
	require.NoError(t, err)
	fromFile, err := os.ReadFile(out)
	require.NoError(t, err)
	for _, b := range [][]byte{streamed.Bytes(), fromFile} {
		for _, m := range markers {
			require.False(t, bytes.Contains(b, []byte(m)), "the backup holds %q", m)
		}
	}

	// check sees the live file's residue, and none in the backup.
	live, err := FreePageResidue(s.db)
	require.NoError(t, err)
	require.Positive(t, live)

	// The copy is a sound database with the other customer in it.
	cp, err := Open(out, Options{ReadOnly: true, NoMigrate: true})
	require.NoError(t, err)
	defer cp.Close()
	require.Empty(t, cp.Check())
	inCopy, err := FreePageResidue(cp.db)
	require.NoError(t, err)
	require.Zero(t, inCopy, "no freed page of the backup holds data")
	kept, err := cp.MessagesByExternalID("keep-1")
	require.NoError(t, err)
	require.Len(t, kept, 1)
	require.Equal(t, "KEPT-TEXT", kept[0].Text)
}

// check, given the HMAC key, reports what it can see of an erased
// customer: messages or parked entries from before the erasure. A customer
// who writes again afterwards is not residue.
func TestCheckErased(t *testing.T) {
	ctx := context.Background()
	key := []byte("check-key")
	s := openTemp(t, Options{HMACKey: key})
	const number = "31655509999"
	saveOne(t, s, inbound("ce-1", number, "before"))
	_, err := s.EraseNumber(ctx, number)
	require.NoError(t, err)
	require.Empty(t, CheckErased(s.db, key), "a clean erasure leaves nothing check can see")

	// The customer writes again: a new conversation, not residue.
	saveOne(t, s, inbound("ce-2", number, "after"))
	require.Empty(t, CheckErased(s.db, key))

	// Residue planted as a faulty erasure would leave it: a message dated
	// before the erasure in that customer's conversation, and a parked
	// deletion naming the number.
	lines, err := s.Audit(1)
	require.NoError(t, err)
	before := lines[0].At.Add(-time.Hour)
	m := mustMessage(t, s, saveOne(t, s, inbound("ce-3", number, "left behind")).MessageID)
	require.NoError(t, s.Update(ctx, func(tx *Tx) error {
		m.CreatedAt = before
		if err := tx.putMessage(m); err != nil {
			return err
		}
		return tx.park(extKey(ProviderCM, "gone"), Pending{Kind: "delete", From: number, At: before})
	}))
	got := CheckErased(s.db, key)
	require.Len(t, got, 2, "%v", got)
	require.Contains(t, got[0], "was stored before its customer was erased")
	require.Contains(t, got[1], "names a customer erased at")
	require.Empty(t, CheckErased(s.db, []byte("another key")), "without the right key nothing matches")
}
