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

// A caller may change anything in the message it gets, through any read
// path, without the next reader seeing it: the cache hands out copies that
// share no slice element and no pointed-to struct.
func TestReadCacheCopiesShareNothing(t *testing.T) {
	s := openTemp(t, Options{})
	saveOne(t, s, inbound("target", customer, "the original"))
	m := inbound("in-1", customer, "hi")
	m.Location = &Location{Latitude: 1, Name: "here"}
	m.Interactive = &Interactive{Type: "button_reply", Title: "yes"}
	m.ReplyTo = &ReplyRef{ExternalID: "target"}
	m.Contacts = []byte(`[{"name":"x"}]`)
	in := saveOne(t, s, m)
	saveOne(t, s, reaction("r-1", "in-1", "👍", false))

	reads := map[string]func() *Message{
		"Message": func() *Message { return mustMessage(t, s, in.MessageID) },
		"ConversationMessages": func() *Message {
			msgs, _, err := s.ConversationMessages(in.ConversationID, 10, "")
			require.NoError(t, err)
			return msgs[len(msgs)-1]
		},
		"MessagesByExternalID": func() *Message {
			msgs, err := s.MessagesByExternalID("in-1")
			require.NoError(t, err)
			return msgs[0]
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			want := read()
			wantReply, wantLoc, wantIt, wantReact := *want.ReplyTo, *want.Location, *want.Interactive, want.Reactions[0]
			a := read()
			a.ReplyTo.ID = "changed"
			a.Location.Name = "changed"
			a.Interactive.Title = "changed"
			a.Reactions[0].Emoji = "changed"
			a.Contacts[0] = 'X'
			b := read()
			require.Equal(t, wantReply, *b.ReplyTo)
			require.Equal(t, wantLoc, *b.Location)
			require.Equal(t, wantIt, *b.Interactive)
			require.Equal(t, wantReact, b.Reactions[0])
			require.JSONEq(t, `[{"name":"x"}]`, string(b.Contacts))
		})
	}
}
