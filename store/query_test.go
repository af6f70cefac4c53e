package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the zones TestStatsInZone loads

	"github.com/stretchr/testify/require"
)

func TestQueueOutboundWindow(t *testing.T) {
	ctx := context.Background()
	clk := newClock(at(0))
	s := openTemp(t, Options{Now: clk.Now})
	win := QueueOptions{Window: 24 * time.Hour}

	// No inbound message yet: only a template may go out.
	_, err := s.QueueOutbound(ctx, []*Message{outbound("o1", customer, "hi")}, win)
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "window")
	require.ErrorContains(t, err, "never")
	tmpl := outbound("t1", customer, "")
	tmpl.Type = TypeTemplate
	_, err = s.QueueOutbound(ctx, []*Message{tmpl}, win)
	require.NoError(t, err)

	in := inbound("i1", customer, "hello")
	in.ReceivedAt = clk.Now()
	saveOne(t, s, in)
	clk.Add(23 * time.Hour)
	_, err = s.QueueOutbound(ctx, []*Message{outbound("o2", customer, "inside")}, win)
	require.NoError(t, err)

	clk.Add(2 * time.Hour)
	_, err = s.QueueOutbound(ctx, []*Message{outbound("o3", customer, "outside")}, win)
	require.ErrorIs(t, err, ErrInvalid)
	// A refused message leaves no trace, so it can be retried as a template.
	got, err := s.MessagesByExternalID("o3")
	require.NoError(t, err)
	require.Empty(t, got)

	// No window option: no check.
	_, err = s.QueueOutbound(ctx, []*Message{outbound("o3", customer, "unchecked")}, QueueOptions{})
	require.NoError(t, err)

	// A provider's receivedAt in the future counts as now, not later.
	in = inbound("i2", customer, "clock skew")
	in.ReceivedAt = clk.Now().Add(100 * time.Hour)
	saveOne(t, s, in)
	clk.Add(25 * time.Hour)
	_, err = s.QueueOutbound(ctx, []*Message{outbound("o4", customer, "late")}, win)
	require.ErrorIs(t, err, ErrInvalid)
	requireClean(t, s)
}

func TestQueueOutboundIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	first := queueOne(t, s, outbound("req-1", customer, "hello"))
	require.False(t, first.Duplicate)
	require.Equal(t, StatusQueued, first.Status)

	again := queueOne(t, s, outbound("req-1", customer, "a retried request"))
	require.True(t, again.Duplicate)
	require.Equal(t, first.MessageID, again.MessageID)
	require.Equal(t, first.ConversationID, again.ConversationID)
	require.Equal(t, "hello", mustMessage(t, s, first.MessageID).Text)

	// In one request, too.
	rs, err := s.QueueOutbound(ctx, []*Message{outbound("req-2", customer, "a"), outbound("req-2", customer, "b")}, QueueOptions{})
	require.NoError(t, err)
	require.False(t, rs[0].Duplicate)
	require.True(t, rs[1].Duplicate)

	st, err := s.Stats()
	require.NoError(t, err)
	require.Equal(t, 2, st.OutboxDepth, "one outbox entry per message")
	require.EqualValues(t, 2, st.Messages)
	require.EqualValues(t, 2, st.OutToday)

	// Scheduled for later.
	later := outbound("req-3", customer, "tomorrow")
	later.Outbound = &OutboundSpec{SendAt: time.Now().Add(24 * time.Hour)}
	require.Equal(t, StatusScheduled, queueOne(t, s, later).Status)
	requireClean(t, s)
}

func TestQueueWelcomeAtMostOnce(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	ok, err := s.QueueWelcome(ctx, outbound("welcome-1", "+31612345678", "Welcome!"))
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.QueueWelcome(ctx, outbound("welcome-2", "0031612345678", "Welcome!"))
	require.NoError(t, err)
	require.False(t, ok, "a second welcome for the same customer")

	// Another customer gets one.
	ok, err = s.QueueWelcome(ctx, outbound("welcome-3", "31699999999", "Welcome!"))
	require.NoError(t, err)
	require.True(t, ok)

	c, err := s.ConversationByNumbers(business, customer)
	require.NoError(t, err)
	require.True(t, c.WelcomeSent)
	require.Equal(t, 1, c.MessageCount)
	require.Len(t, allMessages(t, s, c.ID), 1)
	got, err := s.MessagesByExternalID("welcome-2")
	require.NoError(t, err)
	require.Empty(t, got)
	require.EqualValues(t, 2, s.Counter(counterConversations))

	// Many at once: still one.
	results := make(chan bool, 16)
	for i := range 16 {
		go func() {
			ok, err := s.QueueWelcome(ctx, outbound(fmt.Sprintf("w-%d", i), "31688888888", "Welcome!"))
			results <- err == nil && ok
		}()
	}
	n := 0
	for range 16 {
		if <-results {
			n++
		}
	}
	require.Equal(t, 1, n)
	requireClean(t, s)
}

// convFixture makes conversations 0..n-1, each with one inbound message,
// conversation i active at second i (so n-1 is the most recent).
func convFixture(t *testing.T, s *Store, clk *testClock, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range n {
		m := inbound(extID(i), fmt.Sprintf("+31 6 %08d", 10000000+i), "hello")
		m.ContactName = fmt.Sprintf("Customer %d", i)
		if i == 3 {
			m.ContactName = "Frank de Vries"
		}
		out[i] = saveOne(t, s, m).ConversationID
		clk.Add(time.Second)
	}
	return out
}

func listAll(t *testing.T, s *Store, q string, limit int) []string {
	t.Helper()
	var out []string
	cursor := ""
	for i := 0; ; i++ {
		require.Less(t, i, 1000)
		page, next, err := s.ListConversations(q, limit, cursor)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), limit)
		for _, c := range page {
			out = append(out, c.ID)
		}
		if next == "" {
			return out
		}
		require.Len(t, page, limit, "a page before the last is full")
		cursor = next
	}
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func TestListConversations(t *testing.T) {
	clk := newClock(at(0))
	s := openTemp(t, Options{Now: clk.Now})
	convs := convFixture(t, s, clk, 12)

	for _, limit := range []int{1, 5, 12, 500} {
		require.Equal(t, reversed(convs), listAll(t, s, "", limit), "limit %d", limit)
	}
	page, next, err := s.ListConversations("", 12, "")
	require.NoError(t, err)
	require.Len(t, page, 12)
	require.Empty(t, next, "no next on the last page")

	// New activity moves a conversation to the top.
	saveOne(t, s, inbound("again", "31610000002", "me again"))
	got := listAll(t, s, "", 5)
	require.Equal(t, convs[2], got[0])
	require.Len(t, got, 12)

	// Search by number in any format, partial digits.
	for _, q := range []string{"+31 6 10000005", "0031610000005", "31610000005", "10000005", "1000000 5"} {
		require.Equal(t, []string{convs[5]}, listAll(t, s, q, 5), "q=%q", q)
	}
	require.Len(t, listAll(t, s, "3161000000", 5), 10, "a prefix matches 0..9")
	require.Len(t, listAll(t, s, "1234", 5), 12, "the business number matches too")
	require.Empty(t, listAll(t, s, "999999", 5))

	// Search by name, case-insensitive, partial.
	for _, q := range []string{"Frank", "FRANK", "ank de v", "vries"} {
		require.Equal(t, []string{convs[3]}, listAll(t, s, q, 5), "q=%q", q)
	}
	require.Len(t, listAll(t, s, "customer", 2), 11)

	// Bad input.
	for _, limit := range []int{0, -1, 501} {
		_, _, err := s.ListConversations("", limit, "")
		require.ErrorIs(t, err, ErrInvalid)
	}
	for _, cur := range []string{"zz", "00", "not hex at all"} {
		_, _, err := s.ListConversations("", 5, cur)
		require.ErrorIs(t, err, ErrInvalid, "cursor %q", cur)
	}
}

func TestConversationMessagesPaging(t *testing.T) {
	s := openTemp(t, Options{})
	var want []string
	var conv string
	for i := range 20 {
		var r Result
		if i%3 == 2 {
			r = queueOne(t, s, outbound(fmt.Sprintf("out-%d", i), customer, fmt.Sprintf("answer %d", i)))
		} else {
			r = saveOne(t, s, inbound(extID(i), customer, fmt.Sprintf("question %d", i)))
		}
		want = append(want, r.MessageID)
		conv = r.ConversationID
	}
	// Another conversation's messages must not leak in.
	saveOne(t, s, inbound("other", "31699999999", "elsewhere"))

	page, next, err := s.ConversationMessages(conv, 7, "")
	require.NoError(t, err)
	require.Equal(t, want[13:], ids(page), "the newest page, oldest first")
	require.Equal(t, want[13], next)
	page, next, err = s.ConversationMessages(conv, 7, next)
	require.NoError(t, err)
	require.Equal(t, want[6:13], ids(page))
	page, next, err = s.ConversationMessages(conv, 7, next)
	require.NoError(t, err)
	require.Equal(t, want[:6], ids(page))
	require.Empty(t, next)

	require.Equal(t, want, ids(allMessages(t, s, conv)))
	page, next, err = s.ConversationMessages(conv, 1000, "")
	require.NoError(t, err)
	require.Equal(t, want, ids(page))
	require.Empty(t, next)

	_, _, err = s.ConversationMessages("01ARZ3NDEKTSV4RRFFQ69G5FAV", 5, "")
	require.ErrorIs(t, err, ErrNotFound)
	_, _, err = s.ConversationMessages("../etc", 5, "")
	require.ErrorIs(t, err, ErrNotFound)
	_, _, err = s.ConversationMessages(conv, 0, "")
	require.ErrorIs(t, err, ErrInvalid)
}

// docs/agents.md#message-json: fields that do not apply are left out, times included.
func TestMessageJSONLeavesOutZeroTimes(t *testing.T) {
	s := openTemp(t, Options{})
	r := queueOne(t, s, outbound("o1", customer, "hi"))
	b, err := json.Marshal(mustMessage(t, s, r.MessageID))
	require.NoError(t, err)
	require.NotContains(t, string(b), "0001-01-01")
	require.NotContains(t, string(b), `"receivedAt"`)
	b, err = json.Marshal(mustConversation(t, s, r.ConversationID))
	require.NoError(t, err)
	require.NotContains(t, string(b), "0001-01-01")
}

// "Messages today" follows the configured zone: a message at 23:30 UTC is
// yesterday's in UTC but today's in Berlin (UTC+1 in winter).
func TestStatsInZone(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 23, 30, 0, 0, time.UTC)
	s := openTemp(t, Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	set := func(t2 time.Time) { mu.Lock(); now = t2; mu.Unlock() }
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	kolkata, err := time.LoadLocation("Asia/Kolkata") // UTC+5:30
	require.NoError(t, err)

	saveOne(t, s, inbound("a", customer, "late on the 1st, UTC")) // Berlin: 00:30 on the 2nd
	set(time.Date(2026, 12, 2, 0, 10, 0, 0, time.UTC))
	saveOne(t, s, inbound("b", customer, "early on the 2nd"))
	queueOne(t, s, outbound("c", customer, "answer"))

	cases := []struct {
		name    string
		loc     *time.Location
		in, out uint64
	}{
		{"UTC: the 2nd began at 00:00 UTC", time.UTC, 1, 1},
		{"Berlin: the 2nd began at 23:00 UTC", berlin, 2, 1},
		{"Kolkata: the 2nd began at 18:30 UTC on the 1st", kolkata, 2, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := s.StatsIn(c.loc)
			require.NoError(t, err)
			require.Equal(t, c.in, st.InToday)
			require.Equal(t, c.out, st.OutToday)
		})
	}
	// Midnight in Kolkata (18:30 UTC) starts a new day there.
	set(time.Date(2026, 12, 2, 18, 31, 0, 0, time.UTC))
	st, err := s.StatsIn(kolkata)
	require.NoError(t, err)
	require.Zero(t, st.InToday)
}
