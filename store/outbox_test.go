package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// obClock is a settable clock for outbox tests.
type obClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *obClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *obClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func obOpen(t *testing.T, path string, clk *obClock) *Store {
	t.Helper()
	s, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func obMsg(ext, to string, sendAt time.Time) *Message {
	return &Message{Provider: ProviderInfobip, ExternalID: ext, From: "1234", To: to, Type: TypeText, Text: "hi " + ext,
		Outbound: &OutboundSpec{SendAt: sendAt}}
}

func obQueue(t *testing.T, s *Store, ms ...*Message) []Result {
	t.Helper()
	rs, err := s.QueueOutbound(context.Background(), ms, QueueOptions{})
	require.NoError(t, err)
	return rs
}

func dueIDs(t *testing.T, s *Store, now time.Time, busy func(string) bool) ([]string, time.Time) {
	t.Helper()
	res, err := s.DueOutbox(now, 100, busy)
	require.NoError(t, err)
	var out []string
	for _, it := range res.Items {
		require.Equal(t, it.State.MessageID, it.Message.ID)
		out = append(out, it.Message.ExternalID)
	}
	return out, res.Next
}

func TestOutboxHeadOfLineAndSent(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	clk := &obClock{t: t0}
	s := obOpen(t, filepath.Join(t.TempDir(), "db"), clk)

	rs := obQueue(t, s, obMsg("a1", "+31611111111", time.Time{}), obMsg("a2", "31611111111", time.Time{}), obMsg("b1", "0031622222222", time.Time{}))
	got, next := dueIDs(t, s, t0, nil)
	require.Equal(t, []string{"a1", "b1"}, got, "only the head of each customer's queue is due")
	require.True(t, next.IsZero())

	// A busy head still holds its customer's queue back.
	got, _ = dueIDs(t, s, t0, func(id string) bool { return id == rs[0].MessageID })
	require.Equal(t, []string{"b1"}, got)

	// a1 fails an attempt: a2 must still wait behind it.
	retryAt := t0.Add(time.Minute)
	clk.Set(t0.Add(time.Second))
	require.NoError(t, s.MarkRetry(ctx, rs[0].MessageID, retryAt, "provider answered 500"))
	got, next = dueIDs(t, s, t0.Add(2*time.Second), nil)
	require.Equal(t, []string{"b1"}, got)
	require.True(t, next.Equal(retryAt), "next wake is a1's retry, got %s", next)
	st, err := s.OutboxEntry(rs[0].MessageID)
	require.NoError(t, err)
	require.Equal(t, 1, st.Attempts)
	require.Equal(t, "provider answered 500", st.LastError)
	require.True(t, st.FirstTry.Equal(t0.Add(time.Second)))
	require.Empty(t, s.Check())

	got, _ = dueIDs(t, s, retryAt, nil)
	require.Equal(t, []string{"b1", "a1"}, got, "due order")

	require.NoError(t, s.MarkSent(ctx, rs[0].MessageID, "prov-a1", Event{Status: StatusSent, At: retryAt, GroupName: "PENDING"}))
	m, err := s.Message(rs[0].MessageID)
	require.NoError(t, err)
	require.Equal(t, StatusSent, m.Status)
	require.Equal(t, []string{"prov-a1"}, m.Aliases)
	_, err = s.OutboxEntry(rs[0].MessageID)
	require.ErrorIs(t, err, ErrNotFound)
	byAlias, err := s.MessagesByExternalID("prov-a1")
	require.NoError(t, err)
	require.Len(t, byAlias, 1)
	require.Equal(t, rs[0].MessageID, byAlias[0].ID)

	// A report for the alias now reaches the message.
	_, err = s.ApplyReports(ctx, []Report{{Provider: ProviderInfobip, ExternalID: "prov-a1", Status: StatusDelivered, At: retryAt.Add(time.Second)}})
	require.NoError(t, err)
	m, _ = s.Message(rs[0].MessageID)
	require.Equal(t, StatusDelivered, m.Status)

	got, _ = dueIDs(t, s, retryAt, nil)
	require.Equal(t, []string{"a2", "b1"}, got, "a2 is released once a1 left; same due time, queue order")

	// Marking again is harmless: the message is no longer in the outbox.
	require.NoError(t, s.MarkSent(ctx, rs[0].MessageID, "other", Event{}))
	require.NoError(t, s.MarkFailed(ctx, rs[0].MessageID, "late"))
	m, _ = s.Message(rs[0].MessageID)
	require.Equal(t, StatusDelivered, m.Status)
	require.Equal(t, []string{"prov-a1"}, m.Aliases)
	require.Empty(t, s.Check())
}

func TestOutboxFailed(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	clk := &obClock{t: t0}
	s := obOpen(t, filepath.Join(t.TempDir(), "db"), clk)
	rs := obQueue(t, s, obMsg("f1", "31611111111", time.Time{}))
	require.NoError(t, s.MarkFailed(ctx, rs[0].MessageID, "provider refused: invalid destination"))
	m, err := s.Message(rs[0].MessageID)
	require.NoError(t, err)
	require.Equal(t, StatusFailed, m.Status)
	require.Equal(t, "provider refused: invalid destination", m.Error)
	c, err := s.Conversation(m.ConversationID)
	require.NoError(t, err)
	require.Equal(t, 1, c.FailedCount)
	got, next := dueIDs(t, s, t0.Add(time.Hour), nil)
	require.Empty(t, got)
	require.True(t, next.IsZero())
	require.Empty(t, s.Check())
}

func TestOutboxScheduled(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	clk := &obClock{t: t0}
	s := obOpen(t, filepath.Join(t.TempDir(), "db"), clk)
	sendAt := t0.Add(time.Hour)
	rs := obQueue(t, s, obMsg("s1", "31611111111", sendAt), obMsg("s2", "31611111111", time.Time{}))
	require.Equal(t, StatusScheduled, rs[0].Status)
	require.Equal(t, StatusQueued, rs[1].Status)

	// The immediate message does not wait for the scheduled one queued before it.
	got, next := dueIDs(t, s, t0, nil)
	require.Equal(t, []string{"s2"}, got)
	require.True(t, next.IsZero(), "the scheduled one is not the head")
	require.NoError(t, s.MarkSent(ctx, rs[1].MessageID, "", Event{}))
	got, next = dueIDs(t, s, t0, nil)
	require.Empty(t, got)
	require.True(t, next.Equal(sendAt))

	clk.Set(sendAt)
	got, _ = dueIDs(t, s, sendAt, nil)
	require.Equal(t, []string{"s1"}, got)
	require.NoError(t, s.MarkSent(ctx, rs[0].MessageID, "", Event{}))
	m, err := s.Message(rs[0].MessageID)
	require.NoError(t, err)
	require.Equal(t, StatusSent, m.Status)
	var sts []string
	for _, e := range m.Timeline {
		sts = append(sts, e.Status)
	}
	require.Equal(t, []string{StatusScheduled, StatusQueued, StatusSent}, sts)
	require.True(t, m.Timeline[1].At.Equal(sendAt))
}

func TestOutboxSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	clk := &obClock{t: t0}
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	rs := obQueue(t, s, obMsg("r1", "31611111111", time.Time{}))
	next := t0.Add(30 * time.Second)
	require.NoError(t, s.MarkRetry(ctx, rs[0].MessageID, next, "timeout"))
	require.NoError(t, s.MarkRetry(ctx, rs[0].MessageID, next.Add(time.Minute), "timeout again"))
	require.NoError(t, s.Close())

	s = obOpen(t, path, clk)
	st, err := s.OutboxEntry(rs[0].MessageID)
	require.NoError(t, err)
	require.Equal(t, 2, st.Attempts)
	require.True(t, st.Due.Equal(next.Add(time.Minute)))
	require.Equal(t, "timeout again", st.LastError)
	got, n := dueIDs(t, s, next, nil)
	require.Empty(t, got)
	require.True(t, n.Equal(next.Add(time.Minute)))
	require.Empty(t, s.Check())
}

func TestOutboxDrop(t *testing.T) {
	ctx := context.Background()
	clk := &obClock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	s := obOpen(t, filepath.Join(t.TempDir(), "db"), clk)
	rs := obQueue(t, s, obMsg("d1", "31611111111", time.Time{}))
	require.NoError(t, s.DropOutbox(ctx, rs[0].MessageID))
	_, err := s.OutboxEntry(rs[0].MessageID)
	require.ErrorIs(t, err, ErrNotFound)
	m, err := s.Message(rs[0].MessageID)
	require.NoError(t, err)
	require.Equal(t, StatusQueued, m.Status)
	require.Empty(t, s.Check())
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	clk := &obClock{t: t0}
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, Options{Now: clk.Now})
	require.NoError(t, err)
	require.NoError(t, s.SaveToken(ctx, "tok-1", t0.Add(time.Hour), "fp-1"))
	require.Error(t, s.SaveToken(ctx, "", t0.Add(time.Hour), "fp-1"))
	require.True(t, s.TokenValid("tok-1", t0, "fp-1"))
	require.False(t, s.TokenValid("tok-1", t0, "fp-2"), "issued under other credentials")
	require.False(t, s.TokenValid("tok-1", t0, ""), "no binding")
	require.False(t, s.TokenValid("tok-2", t0, "fp-1"))
	require.False(t, s.TokenValid("", t0, "fp-1"))
	require.NoError(t, s.Close())

	s = obOpen(t, path, clk)
	require.True(t, s.TokenValid("tok-1", t0.Add(59*time.Minute), "fp-1"), "tokens survive a restart")
	require.False(t, s.TokenValid("tok-1", t0.Add(time.Hour), "fp-1"), "expired")

	// Saving another token prunes the expired one.
	clk.Set(t0.Add(2 * time.Hour))
	require.NoError(t, s.SaveToken(ctx, "tok-2", t0.Add(3*time.Hour), "fp-1"))
	n := 0
	require.NoError(t, s.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketTokens).Stats().KeyN; return nil }))
	require.Equal(t, 1, n)
	require.True(t, s.TokenValid("tok-2", t0.Add(2*time.Hour), "fp-1"))
}

// OutboxOldest is the earliest release among waiting messages: scheduled
// ones count from their time, sent ones stop counting.
func TestOutboxOldest(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	clk := &obClock{t: t0}
	s := obOpen(t, filepath.Join(t.TempDir(), "db"), clk)
	oldest := func(now time.Time) time.Time {
		t.Helper()
		o, err := s.OutboxOldest(now)
		require.NoError(t, err)
		return o
	}
	require.True(t, oldest(t0).IsZero(), "empty outbox")

	later := obQueue(t, s, obMsg("later", "31611111111", t0.Add(time.Hour)))
	require.True(t, oldest(t0).IsZero(), "a scheduled message is not waiting yet")
	clk.Set(t0.Add(10 * time.Minute))
	now := obQueue(t, s, obMsg("now", "31622222222", time.Time{}))
	require.True(t, oldest(t0.Add(20*time.Minute)).Equal(t0.Add(10*time.Minute)))
	require.True(t, oldest(t0.Add(2*time.Hour)).Equal(t0.Add(10*time.Minute)))

	require.NoError(t, s.MarkSent(ctx, now[0].MessageID, "", Event{}))
	require.True(t, oldest(t0.Add(2*time.Hour)).Equal(t0.Add(time.Hour)), "the scheduled one became due at its time")
	require.NoError(t, s.MarkSent(ctx, later[0].MessageID, "", Event{}))
	require.True(t, oldest(t0.Add(2*time.Hour)).IsZero())
}

// Readers see where the outbox stands with a message while it holds it:
// attempts, the last error and the next try; nothing once it is sent.
func TestMessageCarriesDeliveryWhileQueued(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	r := queueOne(t, s, outbound("d1", customer, "hello"))
	m := mustMessage(t, s, r.MessageID)
	require.NotNil(t, m.Delivery, "a queued message is in the outbox")
	require.Zero(t, m.Delivery.Attempts)

	next := time.Date(2030, 1, 2, 21, 29, 0, 0, time.UTC)
	require.NoError(t, s.MarkRetry(ctx, r.MessageID, next, "provider answered 503: busy"))
	require.NoError(t, s.MarkRetry(ctx, r.MessageID, next, "provider answered 503: still busy"))
	m = mustMessage(t, s, r.MessageID)
	require.Equal(t, &Delivery{Attempts: 2, LastError: "provider answered 503: still busy", NextAttemptAt: next}, m.Delivery)

	require.NoError(t, s.MarkSent(ctx, r.MessageID, "prov-1", Event{Status: StatusSent, At: time.Now()}))
	require.Nil(t, mustMessage(t, s, r.MessageID).Delivery, "sent: the outbox no longer holds it")
	in := saveOne(t, s, inbound("i1", customer, "hi"))
	require.Nil(t, mustMessage(t, s, in.MessageID).Delivery)
}

// A refused message of a batch comes back as an *ItemError naming its
// place in the slice, with the kind still reachable by errors.Is: the send
// API names it as destinations[i] from the index, not from the text.
func TestItemErrorIndex(t *testing.T) {
	s := openTemp(t, Options{})
	for _, c := range []struct {
		name string
		bad  func(*Message)
		kind error
	}{
		{"no type", func(m *Message) { m.Type = "" }, ErrInvalid},
		{"no externalId", func(m *Message) { m.ExternalID = "" }, ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			ms := []*Message{outbound("ie-0-"+c.name, customer, "ok"), outbound("ie-1-"+c.name, customer, "bad")}
			c.bad(ms[1])
			_, err := s.QueueOutbound(context.Background(), ms, QueueOptions{})
			var ie *ItemError
			require.ErrorAs(t, err, &ie)
			require.Equal(t, 1, ie.Index)
			require.ErrorIs(t, err, c.kind)
			require.Contains(t, err.Error(), "message 1: ")
		})
	}
}
