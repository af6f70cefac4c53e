package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"imchannel/migrations"
)

// Issue 12 item 6: inbound and outbound ids are apart. A send may reuse an
// inbound id and is queued; an inbound message may reuse one of ours and
// is stored; reports never land on an inbound message.
func TestInboundAndOutboundIDsAreApart(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	in := saveOne(t, s, inbound("shared-1", customer, "hello"))

	out := queueOne(t, s, outbound("shared-1", customer, "a send reusing the inbound id"))
	require.False(t, out.Duplicate, "the send is queued, not taken for the inbound message")
	require.NotEqual(t, in.MessageID, out.MessageID)

	out2 := queueOne(t, s, outbound("shared-2", customer, "ours first"))
	in2 := saveOne(t, s, inbound("shared-2", customer, "an inbound message reusing our id"))
	require.False(t, in2.Duplicate)
	require.NotEqual(t, out2.MessageID, in2.MessageID)

	// Reports name outbound messages only.
	_, err := s.ApplyReports(ctx, []Report{
		{Provider: ProviderInfobip, ExternalID: "shared-1", Status: StatusDelivered},
		{Provider: ProviderInfobip, ExternalID: "shared-2", Status: StatusSeen},
	})
	require.NoError(t, err)
	require.Equal(t, StatusDelivered, mustMessage(t, s, out.MessageID).Status)
	require.Equal(t, StatusSeen, mustMessage(t, s, out2.MessageID).Status)
	for _, id := range []string{in.MessageID, in2.MessageID} {
		m := mustMessage(t, s, id)
		require.Equal(t, StatusReceived, m.Status)
		require.Empty(t, m.Timeline)
	}

	// A report naming only an inbound id waits for an outbound message.
	saveOne(t, s, inbound("only-in", customer, "x"))
	rs, err := s.ApplyReports(ctx, []Report{{Provider: ProviderInfobip, ExternalID: "only-in", Status: StatusSeen}})
	require.NoError(t, err)
	require.True(t, rs[0].Parked)

	// Both are found by their id; a quote finds the customer's message first.
	ms, err := s.MessagesByExternalID("shared-1")
	require.NoError(t, err)
	require.Len(t, ms, 2)
	q := inbound("quote-1", customer, "quoting")
	q.ReplyTo = &ReplyRef{ExternalID: "shared-2"}
	rq := saveOne(t, s, q)
	require.Equal(t, in2.MessageID, mustMessage(t, s, rq.MessageID).ReplyTo.ID)
	requireClean(t, s)
}

// A file written before the split (schema 3, one namespace) is migrated
// when opened: its outbound ids still dedupe sends and take reports, and an
// inbound message may now reuse them.
func TestOpenMigratesSharedNamespace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		for _, st := range migrations.Steps()[:3] {
			if err := st.Apply(tx); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Close())
	// Write data the way schema 3 did, through today's code, then put the
	// keys back where schema 3 kept them.
	s := openAt(t, path, Options{})
	o := queueOne(t, s, outbound("ctlive-9", customer, "sent before the upgrade"))
	require.NoError(t, s.Close())
	db, err = bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		ext := tx.Bucket(bucketExt)
		require.NoError(t, ext.Delete(outKey(ProviderInfobip, "ctlive-9")))
		require.NoError(t, ext.Put(extKey(ProviderInfobip, "ctlive-9"), []byte(o.MessageID)))
		meta := tx.Bucket([]byte("meta"))
		return meta.Put([]byte("schema_version"), []byte{0, 0, 0, 0, 0, 0, 0, 3})
	}))
	require.NoError(t, db.Close())

	s = openAt(t, path, Options{})
	requireClean(t, s)
	again := queueOne(t, s, outbound("ctlive-9", customer, "a retried send"))
	require.True(t, again.Duplicate)
	require.Equal(t, o.MessageID, again.MessageID)
	_, err = s.ApplyReports(context.Background(), []Report{{Provider: ProviderInfobip, ExternalID: "ctlive-9", Status: StatusDelivered}})
	require.NoError(t, err)
	require.Equal(t, StatusDelivered, mustMessage(t, s, o.MessageID).Status)
	in := saveOne(t, s, inbound("ctlive-9", customer, "same id, other direction"))
	require.False(t, in.Duplicate)
	requireClean(t, s)
}
