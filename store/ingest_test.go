package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func TestIngestMixedPostIsOneTransaction(t *testing.T) {
	s := openTemp(t, Options{})
	out := queueOne(t, s, outbound("out-1", customer, "hello"))
	rs, reps, err := s.Ingest(context.Background(), []*Message{inbound("in-1", customer, "hi")}, []Report{
		{Provider: ProviderInfobip, ExternalID: "out-1", Status: StatusDelivered, At: at(10)},
		{Provider: ProviderInfobip, ExternalID: "out-unknown", Status: StatusSeen, At: at(11)},
	})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.False(t, rs[0].Duplicate)
	require.Equal(t, []ReportResult{{MessageID: out.MessageID}, {Parked: true}}, reps)
	require.Equal(t, StatusDelivered, mustMessage(t, s, out.MessageID).Status)
	requireClean(t, s)
}

func TestIngestRefusesWholePost(t *testing.T) {
	s := openTemp(t, Options{})
	_, _, err := s.Ingest(context.Background(), []*Message{inbound("in-1", customer, "hi")},
		[]Report{{Provider: ProviderInfobip, ExternalID: "out-1"}})
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "report 0: status is required")
	ms, err := s.MessagesByExternalID("in-1")
	require.NoError(t, err)
	require.Empty(t, ms, "nothing from a refused post is stored")
}

// The read-only fast path names the stored message for every resent one.
func TestIngestKnownPostFastPath(t *testing.T) {
	s := openTemp(t, Options{})
	first, _, err := s.Ingest(context.Background(), []*Message{inbound("in-1", customer, "hi"), inbound("in-2", customer, "again")}, nil)
	require.NoError(t, err)
	again, _, err := s.Ingest(context.Background(), []*Message{inbound("in-1", customer, "hi"), inbound("in-2", customer, "again")}, nil)
	require.NoError(t, err)
	for i := range first {
		require.True(t, again[i].Duplicate)
		require.Equal(t, first[i].MessageID, again[i].MessageID)
		require.Equal(t, first[i].ExternalID, again[i].ExternalID)
	}
	require.Zero(t, s.Counter("dup:"+ProviderInfobip), "the fast path did not write")
	// One unknown message sends the whole post through the write path.
	mixed, _, err := s.Ingest(context.Background(), []*Message{inbound("in-1", customer, "hi"), inbound("in-3", customer, "new")}, nil)
	require.NoError(t, err)
	require.True(t, mixed[0].Duplicate)
	require.False(t, mixed[1].Duplicate)
	require.EqualValues(t, 1, s.Counter("dup:"+ProviderInfobip))
	requireClean(t, s)
}

func TestIngestReportWithoutTimeGetsCommitTime(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openTemp(t, Options{Now: func() time.Time { return now }})
	out := queueOne(t, s, outbound("out-1", customer, "hello"))
	_, _, err := s.Ingest(context.Background(), nil, []Report{{Provider: ProviderInfobip, ExternalID: "out-1", Status: StatusSent}})
	require.NoError(t, err)
	m := mustMessage(t, s, out.MessageID)
	require.Equal(t, StatusSent, m.Status)
	var found bool
	for _, e := range m.Timeline {
		if e.Status == StatusSent {
			found = e.At.Equal(now)
		}
	}
	require.True(t, found, "timeline %v", m.Timeline)
}

// bbolt shows a commit to new readers as soon as its meta page is written,
// before that page is fsynced. A resend answered "duplicate" from such a
// snapshot would acknowledge a message a crash could still lose, so the
// fast path answers only from commits the group committer has seen reach
// the disk; otherwise the resend goes through a commit of its own.
func TestIngestFastPathOnlyTrustsDurableCommits(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	// A commit the committer has not (yet) confirmed: written straight
	// through bbolt, as a group commit is while its fsync is under way.
	require.NoError(t, s.DB().Update(func(btx *bolt.Tx) error {
		_, err := (&Tx{tx: btx, s: s, now: s.Now()}).insert(&Message{Provider: ProviderInfobip, ExternalID: "in-1",
			Direction: Inbound, From: customer, To: business, Type: TypeText, Text: "hi"})
		return err
	}))
	rs, _, err := s.Ingest(ctx, []*Message{inbound("in-1", customer, "hi")}, nil)
	require.NoError(t, err)
	require.True(t, rs[0].Duplicate)
	require.EqualValues(t, 1, s.Counter("dup:"+ProviderInfobip), "answered through a durable commit, not the fast path")

	// Once a group commit has reached the disk, resends are read-only again.
	rs, _, err = s.Ingest(ctx, []*Message{inbound("in-1", customer, "hi")}, nil)
	require.NoError(t, err)
	require.True(t, rs[0].Duplicate)
	require.EqualValues(t, 1, s.Counter("dup:"+ProviderInfobip), "the fast path")
	requireClean(t, s)
}
