package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// eventTypes reads the whole log and answers each event's type and message.
func allEvents(t *testing.T, s *Store) []*EventRecord {
	t.Helper()
	p, err := s.EventsAfter(0, 10000)
	require.NoError(t, err)
	return p.Events
}

func typesOf(evs []*EventRecord) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// Every kind of change lands in the log in commit order, each with its
// conversation and, while it exists, its message.
func TestEventsLogEveryChange(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	in := saveOne(t, s, withMedia("wamid.img", customer, business))
	md := cacheMedia(t, s, in.MessageID, []byte("\xff\xd8\xffjpeg"))
	out := queueOne(t, s, outbound("ct-1", customer, "hello"))
	_, err := s.ApplyReports(ctx, []Report{{Provider: ProviderInfobip, ExternalID: "ct-1", Status: StatusDelivered,
		At: at(5), GroupName: "DELIVERED", Name: "DELIVERED_TO_HANDSET"}})
	require.NoError(t, err)
	_, err = s.SaveInbound(ctx, []*Message{{Provider: ProviderInfobip, ExternalID: "del-1", From: customer, To: business,
		Type: TypeDelete, Target: "wamid.img"}})
	require.NoError(t, err)

	evs := allEvents(t, s)
	require.Equal(t, []string{EventMessageReceived, EventMediaCached, EventMessageQueued, EventMessageStatus, EventMessageDeleted}, typesOf(evs))
	for i, e := range evs {
		require.Equal(t, uint64(i+1), e.Seq, "sequence")
		require.Equal(t, in.ConversationID, e.ConversationID, "event %d", i)
		require.NotNil(t, e.Message, "event %d joins its message", i)
	}
	require.Equal(t, in.MessageID, evs[1].MessageID)
	require.Equal(t, md.ID, evs[0].Message.Media.ID)
	require.Equal(t, out.MessageID, evs[3].MessageID)
	require.Equal(t, StatusDelivered, evs[3].Status.Status)
	require.Equal(t, "DELIVERED_TO_HANDSET", evs[3].Status.Name)
	requireClean(t, s)
}

// A duplicate changes nothing and so logs nothing; a write that fails logs
// nothing either (the log shares the change's transaction).
func TestEventsOnlyForCommittedChanges(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	saveOne(t, s, inbound("a", customer, "one"))
	saveOne(t, s, inbound("a", customer, "one again"))
	err := s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.insert(inbound("b", customer, "two")); err != nil {
			return err
		}
		return Errorf(ErrInvalid, "refused after the insert")
	})
	require.Error(t, err)
	saveOne(t, s, inbound("c", customer, "three"))
	evs := allEvents(t, s)
	require.Len(t, evs, 2)
	require.Equal(t, "one", evs[0].Message.Text)
	require.Equal(t, "three", evs[1].Message.Text)
	require.Less(t, evs[0].Seq, evs[1].Seq)
}

// Sequences survive a restart and are never handed out again, even after
// every event was purged.
func TestEventCursorsSurviveRestartAndAreNeverReused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "imchannel.db")
	clock := newClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	s, err := Open(path, Options{Now: clock.Now})
	require.NoError(t, err)
	for i := range 3 {
		saveOne(t, s, inbound(extID(i), customer, "x"))
	}
	clock.Add(time.Hour)
	n, err := s.PurgeEvents(ctx, clock.Now())
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.NoError(t, s.Close())

	s = openAt(t, path, Options{Now: clock.Now})
	saveOne(t, s, inbound(extID(9), customer, "after"))
	p, err := s.EventsAfter(0, 100)
	require.NoError(t, err)
	require.Equal(t, uint64(3), p.Purged, "the oldest valid cursor")
	require.Len(t, p.Events, 1)
	require.Equal(t, uint64(4), p.Events[0].Seq)
	require.Equal(t, uint64(4), p.Last)
}

// PurgeEvents removes by age only, oldest first, across batches.
func TestPurgeEventsByAge(t *testing.T) {
	ctx := context.Background()
	clock := newClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	s := openTemp(t, Options{Now: clock.Now})
	old := make([]*Message, EraseBatch+10)
	for i := range old {
		old[i] = inbound(extID(i), customer, "old")
	}
	_, err := s.SaveInbound(ctx, old)
	require.NoError(t, err)
	clock.Add(8 * 24 * time.Hour)
	saveOne(t, s, inbound("new", customer, "new"))
	n, err := s.PurgeEvents(ctx, clock.Now().Add(-7*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, len(old), n)
	p, err := s.EventsAfter(0, 100)
	require.NoError(t, err)
	require.Len(t, p.Events, 1)
	require.Equal(t, "new", p.Events[0].Message.Text)
	require.Equal(t, uint64(len(old)), p.Purged)
}

// Erasing a customer erases their events (and what a relay quarantined of
// them), keeps everyone else's, and tells readers with customer.erased.
func TestEraseRemovesTheCustomersEvents(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	gone := saveOne(t, s, inbound("g1", customer, "erase me"))
	saveOne(t, s, inbound("g2", customer, "me too"))
	kept := saveOne(t, s, inbound("k1", "31600000001", "keep me"))
	require.NoError(t, s.SaveRelayState(ctx, "ct", RelayState{Cursor: 3},
		RelayQuarantined{Seq: 1, Type: EventMessageReceived, ConversationID: gone.ConversationID, HTTPStatus: 400},
		RelayQuarantined{Seq: 3, Type: EventMessageReceived, ConversationID: kept.ConversationID, HTTPStatus: 400}))

	_, err := s.EraseNumber(ctx, "+"+customer)
	require.NoError(t, err)
	evs := allEvents(t, s)
	require.Equal(t, []string{EventMessageReceived, EventCustomerErased}, typesOf(evs))
	require.Equal(t, kept.ConversationID, evs[0].ConversationID)
	require.Equal(t, gone.ConversationID, evs[1].ConversationID)
	require.Equal(t, s.NumberHMAC(customer), evs[1].NumberHMAC)
	st, err := s.RelayStatus("ct", 10)
	require.NoError(t, err)
	require.Len(t, st.Quarantine, 1)
	require.Equal(t, kept.ConversationID, st.Quarantine[0].ConversationID)
	requireClean(t, s)
}

// A target's state, lag and quarantine read back as saved; quarantine
// entries of another target are not mixed in.
func TestRelayStateAndStatus(t *testing.T) {
	ctx := context.Background()
	clock := newClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	s := openTemp(t, Options{Now: clock.Now})
	for i := range 5 {
		saveOne(t, s, inbound(extID(i), customer, "x"))
		clock.Add(time.Second)
	}
	st, err := s.RelayStatus("a", 10)
	require.NoError(t, err)
	require.Equal(t, uint64(5), st.LagEvents)
	require.Equal(t, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), st.Oldest)

	require.NoError(t, s.SaveRelayState(ctx, "a", RelayState{Cursor: 3, Delivered: 2, Quarantined: 1},
		RelayQuarantined{Seq: 2, Type: EventMessageReceived, HTTPStatus: 422, Reason: "bad"}))
	require.NoError(t, s.SaveRelayState(ctx, "b", RelayState{Cursor: 5},
		RelayQuarantined{Seq: 4, HTTPStatus: 400}))
	got, err := s.RelayState("a")
	require.NoError(t, err)
	require.Equal(t, uint64(3), got.Cursor)
	st, err = s.RelayStatus("a", 10)
	require.NoError(t, err)
	require.Equal(t, uint64(2), st.LagEvents)
	require.Equal(t, time.Date(2026, 12, 1, 10, 0, 3, 0, time.UTC), st.Oldest)
	require.Len(t, st.Quarantine, 1)
	require.Equal(t, 422, st.Quarantine[0].HTTPStatus)
	st, err = s.RelayStatus("b", 10)
	require.NoError(t, err)
	require.Zero(t, st.LagEvents)
	require.True(t, st.Oldest.IsZero())
}

// PublishMedia mints one token per media and serves it by token.
func TestPublishMedia(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	in := saveOne(t, s, withMedia("wamid.img", customer, business))
	md := cacheMedia(t, s, in.MessageID, []byte("\xff\xd8\xffjpeg"))
	tok, err := s.PublishMedia(ctx, md.ID)
	require.NoError(t, err)
	again, err := s.PublishMedia(ctx, md.ID)
	require.NoError(t, err)
	require.Equal(t, tok, again)
	got, err := s.MediaByToken(tok)
	require.NoError(t, err)
	require.Equal(t, md.ID, got.ID)
	_, err = s.EraseNumber(ctx, customer)
	require.NoError(t, err)
	_, err = s.MediaByToken(tok)
	require.ErrorIs(t, err, ErrNotFound)
}

// A reader waiting on EventsChanged is woken by the next append.
func TestEventsChangedWakesReaders(t *testing.T) {
	s := openTemp(t, Options{})
	ch := s.EventsChanged()
	saveOne(t, s, inbound("a", customer, "x"))
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("not woken by an append")
	}
}

// Check notices an index entry without its event and an event without its
// index entry.
func TestCheckEvents(t *testing.T) {
	s := openTemp(t, Options{})
	r := saveOne(t, s, inbound("a", customer, "x"))
	requireClean(t, s)
	require.NoError(t, s.db.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketEventConv)
		if err := idx.Delete(append([]byte(r.ConversationID), seqKey(1)...)); err != nil {
			return err
		}
		return idx.Put(append([]byte(r.ConversationID), seqKey(7)...), []byte{})
	}))
	problems := s.Check()
	require.Len(t, problems, 2, "%v", problems)
	require.Contains(t, problems[0], "no event_conv entry")
	require.Contains(t, problems[1], "names no event")
}
