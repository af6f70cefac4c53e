package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// The read cache must never show a message as it was: every change to the
// stored bytes is seen by the next read, through every read path.
func TestReadCacheNeverStale(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	out := queueOne(t, s, outbound("out-1", customer, "hello"))
	in := saveOne(t, s, inbound("in-1", customer, "hi"))

	// Warm the cache through both read paths.
	require.Equal(t, StatusQueued, mustMessage(t, s, out.MessageID).Status)
	msgs, _, err := s.ConversationMessages(out.ConversationID, 10, "")
	require.NoError(t, err)
	require.Len(t, msgs, 2)

	_, err = s.ApplyReports(ctx, []Report{{Provider: ProviderInfobip, ExternalID: "out-1", Status: StatusDelivered, At: at(5)}})
	require.NoError(t, err)
	require.Equal(t, StatusDelivered, mustMessage(t, s, out.MessageID).Status)
	msgs, _, err = s.ConversationMessages(out.ConversationID, 10, "")
	require.NoError(t, err)
	require.Equal(t, StatusDelivered, msgs[0].Status)
	require.Len(t, msgs[0].Timeline, 2)

	// A deletion is seen at once, too.
	_, err = s.SaveInbound(ctx, []*Message{{Provider: ProviderInfobip, ExternalID: "del-1", Type: TypeDelete, Target: "in-1"}})
	require.NoError(t, err)
	got := mustMessage(t, s, in.MessageID)
	require.True(t, got.Deleted)
	require.Empty(t, got.Text)
}

// A reader appending to a returned message cannot change what the next
// reader gets.
func TestReadCacheCopiesAreIndependent(t *testing.T) {
	s := openTemp(t, Options{})
	out := queueOne(t, s, outbound("out-1", customer, "hello"))
	a := mustMessage(t, s, out.MessageID)
	a.Timeline = append(a.Timeline, Event{Status: StatusSeen})
	a.Text = "changed"
	b := mustMessage(t, s, out.MessageID)
	require.Len(t, b.Timeline, 1)
	require.Equal(t, "hello", b.Text)
}
