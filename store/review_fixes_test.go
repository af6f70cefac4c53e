package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The customer-service window must still be open when a scheduled message
// leaves, not only when it is queued.
func TestWindowCheckedAtSendTime(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))
	s := openTemp(t, Options{Now: clk.Now})
	in := inbound("in-1", customer, "hi")
	in.ReceivedAt = clk.Now()
	saveOne(t, s, in)
	clk.Add(20 * time.Hour)
	opts := QueueOptions{Window: 24 * time.Hour}

	now := outbound("out-now", customer, "now")
	_, err := s.QueueOutbound(ctx, []*Message{now}, opts)
	require.NoError(t, err, "20 h after the customer wrote, the window is open")

	later := outbound("out-later", customer, "later")
	later.Outbound = &OutboundSpec{SendAt: clk.Now().Add(10 * time.Hour)}
	_, err = s.QueueOutbound(ctx, []*Message{later}, opts)
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "window at send time")
}

// A reaction or deletion counts only from the customer of the conversation
// the message belongs to, whether it arrives before or after its target.
func TestActionsOnlyFromTheConversationsCustomer(t *testing.T) {
	const other = "31699999999"
	for _, early := range []bool{false, true} {
		s := openTemp(t, Options{})
		if !early {
			saveOne(t, s, inbound("m1", customer, "mine"))
		}
		r := reaction("r-other", "m1", "😡", false)
		r.From = other
		saveOne(t, s, r)
		d := deletion("d-other", "m1")
		d.From = other
		saveOne(t, s, d)
		own := reaction("r-own", "m1", "👍", false)
		saveOne(t, s, own)
		res := saveOne(t, s, inbound("m1", customer, "mine"))
		m := mustMessage(t, s, res.MessageID)
		require.False(t, m.Deleted, "early=%v: another customer cannot delete it", early)
		require.Equal(t, "mine", m.Text)
		require.Len(t, m.Reactions, 1, "early=%v", early)
		require.Equal(t, "👍", m.Reactions[0].Emoji)
		// Resending the ignored actions stays a duplicate.
		require.True(t, saveOne(t, s, r).Duplicate)
		requireClean(t, s)
	}
}

func TestSearchWithoutDigitsOrLettersMatchesNothing(t *testing.T) {
	s := openTemp(t, Options{})
	saveOne(t, s, inbound("m1", customer, "hi"))
	for _, q := range []string{"+", "()", " - "} {
		cs, _, err := s.ListConversations(q, 10, "")
		require.NoError(t, err)
		require.Empty(t, cs, "q=%q", q)
	}
	cs, _, err := s.ListConversations("+31 6", 10, "")
	require.NoError(t, err)
	require.Len(t, cs, 1)
}

func TestMediaWithoutSourceIsFailedNotPending(t *testing.T) {
	s := openTemp(t, Options{})
	m := inbound("m1", customer, "")
	m.Type = TypeImage
	m.Media = &Media{ContentType: "image/jpeg"}
	res := saveOne(t, s, m)
	got := mustMessage(t, s, res.MessageID)
	require.Equal(t, MediaFailed, got.Media.State)
	require.Equal(t, "no source URL", got.Media.Error)
	requireClean(t, s)
}

// NUL separates an id from what follows it in the index keys, so an id
// holding one could reach another id's parked reports.
func TestIDsWithNULAreRefused(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	_, err := s.ApplyReports(ctx, []Report{{Provider: ProviderInfobip, ExternalID: "abc\x00zzz", Status: StatusSeen}})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = s.SaveInbound(ctx, []*Message{inbound("abc\x00zzz", customer, "x")})
	require.ErrorIs(t, err, ErrInvalid)
	q := inbound("q1", customer, "x")
	q.ReplyTo = &ReplyRef{ExternalID: "a\x00b"}
	_, err = s.SaveInbound(ctx, []*Message{q})
	require.ErrorIs(t, err, ErrInvalid)
}

// A report with no time of its own gets the commit's time; resent, it is
// still the same report and recorded once, parked or not.
func TestUntimedReportResentIsRecordedOnce(t *testing.T) {
	ctx := context.Background()
	for _, parked := range []bool{false, true} {
		clk := newClock(time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))
		s := openTemp(t, Options{Now: clk.Now})
		if !parked {
			queueOne(t, s, outbound("out-1", customer, "hi"))
		}
		rep := Report{Provider: ProviderInfobip, ExternalID: "out-1", Status: StatusDelivered, Name: "DELIVERED_TO_HANDSET"}
		for range 2 {
			_, err := s.ApplyReports(ctx, []Report{rep})
			require.NoError(t, err)
			clk.Add(time.Minute)
		}
		res := queueOne(t, s, outbound("out-1", customer, "hi"))
		m := mustMessage(t, s, res.MessageID)
		require.Len(t, m.Timeline, 2, "parked=%v: queued + one delivered: %+v", parked, m.Timeline)
		require.Equal(t, StatusDelivered, m.Status)
	}
}

// A worker subscribed to one kind is not crowded out by the others: a burst
// of inbound messages cannot fill its buffer and drop the outbox wake-up.
func TestSubscribeByKind(t *testing.T) {
	s := openTemp(t, Options{})
	outbox, stop := s.Subscribe(1, "outbox")
	defer stop()
	all, stopAll := s.Subscribe(1)
	defer stopAll()
	for i := range 20 {
		saveOne(t, s, inbound(extID(i), customer, "busy"))
	}
	require.Len(t, all, 1, "an unfiltered subscriber's buffer fills up")
	require.Empty(t, outbox, "no outbox change yet")
	queueOne(t, s, outbound("out-1", customer, "reply"))
	// Changes are published right after the commit that made them.
	select {
	case c := <-outbox:
		require.Equal(t, "outbox", c.Kind)
	case <-time.After(5 * time.Second):
		t.Fatal("the outbox change was dropped")
	}
}
