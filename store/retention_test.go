package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// withMedia is an inbound image message whose bytes the test then caches.
func withMedia(ext, from, to string) *Message {
	m := inbound(ext, from, "")
	m.To = to
	m.Type = TypeImage
	m.Media = &Media{SourceURL: "http://origin.test/" + ext, ContentType: "image/jpeg"}
	return m
}

// cacheMedia stores data as the fetched bytes of a saved message's media.
func cacheMedia(t *testing.T, s *Store, msgID string, data []byte) *Media {
	t.Helper()
	m := mustMessage(t, s, msgID)
	require.NotNil(t, m.Media)
	md, err := s.MarkMediaFetched(context.Background(), m.Media.ID, BytesSource(data), "image/jpeg", "image/jpeg", nil)
	require.NoError(t, err)
	require.Equal(t, MediaCached, md.State)
	return md
}

// bucketsEmpty asserts that every per-message bucket is empty.
func requireNoMessageData(t *testing.T, s *Store) {
	t.Helper()
	for _, b := range [][]byte{bucketMessages, bucketConvMsgs, bucketConvs, bucketConvKey, bucketConvActivity,
		bucketOutbox, bucketOutboxState, bucketMedia, bucketMediaQueue, bucketBlobs, bucketChunks, bucketPending} {
		require.Zero(t, mediaCount(t, s, b), "bucket %s", b)
	}
	require.Zero(t, s.Counter(counterMessages))
	require.Zero(t, s.Counter(counterConversations))
	require.Zero(t, s.Counter(counterFailedSends))
}

func TestPurgeBefore(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	clk := newClock(t0)
	s := openTemp(t, Options{Now: clk.Now})

	// Day 0: two customers. Alice has a text, an image (bytes cached), a
	// reaction on it, a reply to a message that never arrives, an outbound
	// message still in the outbox and one that failed. Bob has one
	// message whose image bytes Alice's later image shares.
	const alice, bob = "31600000001", "31600000002"
	old1 := saveOne(t, s, inbound("a-old-1", alice, "old hello"))
	oldImg := saveOne(t, s, withMedia("a-old-img", alice, business))
	oldBytes := mediaPattern(2*ChunkSize + 10)
	oldMedia := cacheMedia(t, s, oldImg.MessageID, oldBytes)
	react := reaction("a-react", "a-old-img", "👍", false)
	react.From = alice // a reaction counts only from the conversation's own customer
	saveOne(t, s, react)
	r := inbound("a-old-reply", alice, "about that")
	r.ReplyTo = &ReplyRef{ExternalID: "never-arrives"}
	saveOne(t, s, r)
	queueOne(t, s, outbound("a-out-queued", alice, "we will call you"))
	failed := queueOne(t, s, outbound("a-out-failed", alice, "bounced"))
	require.NoError(t, s.AddEvent(ctx, failed.MessageID, Event{Status: StatusFailed, At: t0, Reason: "blocked"}))
	_, err := s.ApplyReports(ctx, []Report{{Provider: ProviderInfobip, ExternalID: "unknown-out", Status: StatusDelivered, At: t0}})
	require.NoError(t, err)
	bobImg := saveOne(t, s, withMedia("b-old-img", bob, business))
	shared := mediaPattern(ChunkSize + 3)
	shared[0] = 42
	cacheMedia(t, s, bobImg.MessageID, shared)
	requireClean(t, s)

	// Day 10: Alice replies to her old text and sends Bob's picture again.
	clk.Add(10 * 24 * time.Hour)
	nr := inbound("a-new-reply", alice, "still waiting")
	nr.ReplyTo = &ReplyRef{ExternalID: "a-old-1"}
	newReply := saveOne(t, s, nr)
	require.Equal(t, old1.MessageID, mustMessage(t, s, newReply.MessageID).ReplyTo.ID)
	newImg := saveOne(t, s, withMedia("a-new-img", alice, business))
	newMedia := cacheMedia(t, s, newImg.MessageID, shared)
	require.Equal(t, 2, mediaBlob(t, s, newMedia.SHA256).Refs)
	requireClean(t, s)

	res, err := s.PurgeBefore(ctx, t0.Add(5*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 6, res.Messages)
	require.Equal(t, 1, res.Pending, "the parked report (the parked reply went with its message)")
	requireClean(t, s)

	// Bob's conversation is gone; Alice's keeps the two new messages.
	_, err = s.ConversationByNumbers(business, bob)
	require.ErrorIs(t, err, ErrNotFound)
	c, err := s.ConversationByNumbers(business, alice)
	require.NoError(t, err)
	require.Equal(t, 2, c.MessageCount)
	require.Zero(t, c.FailedCount)
	require.Equal(t, []string{newReply.MessageID, newImg.MessageID}, ids(allMessages(t, s, c.ID)))
	reply := mustMessage(t, s, newReply.MessageID)
	require.Equal(t, &ReplyRef{ExternalID: "a-old-1"}, reply.ReplyTo, "the quoted message is gone; its external id stays")

	// Old bytes gone, shared bytes kept once for the new image.
	require.Equal(t, 1, mediaCount(t, s, bucketBlobs))
	require.Equal(t, 2, mediaCount(t, s, bucketChunks))
	require.Equal(t, 1, mediaBlob(t, s, newMedia.SHA256).Refs)
	_, err = s.Media(oldMedia.ID)
	require.ErrorIs(t, err, ErrNotFound)
	require.Zero(t, mediaCount(t, s, bucketOutbox))
	require.Zero(t, mediaCount(t, s, bucketOutboxState))
	require.Zero(t, mediaCount(t, s, bucketPending))
	require.Equal(t, 2, mediaCount(t, s, bucketExt), "only the two new messages' external ids")
	require.Equal(t, uint64(2), s.Counter(counterMessages))
	require.Equal(t, uint64(1), s.Counter(counterConversations))
	require.Zero(t, s.Counter(counterFailedSends))

	// The old external ids are free again, and a second pass finds nothing.
	got, err := s.MessagesByExternalID("a-old-1")
	require.NoError(t, err)
	require.Empty(t, got)
	res, err = s.PurgeBefore(ctx, t0.Add(5*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, PurgeResult{}, res)

	// Everything expires in the end.
	res, err = s.PurgeBefore(ctx, clk.Now().Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, 2, res.Messages)
	requireClean(t, s)
	requireNoMessageData(t, s)
}

// A purge larger than one transaction's batch is cut into several commits;
// replies across batch boundaries and a conversation that keeps a newer
// message come out consistent.
func TestPurgeBeforeBatches(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	clk := newClock(t0)
	var commits int
	s := openTemp(t, Options{Now: clk.Now, OnCommit: func(int, time.Duration) { commits++ }})
	const n = 2*EraseBatch + 37
	msgs := make([]*Message, 0, n)
	for i := 0; i < n; i++ {
		m := inbound(extID(i), fmt.Sprintf("3161000%04d", i%50), "old")
		if i > 0 && i%3 == 0 {
			m.ReplyTo = &ReplyRef{ExternalID: extID(i - 1)}
		}
		msgs = append(msgs, m)
	}
	_, err := s.SaveInbound(ctx, msgs)
	require.NoError(t, err)
	clk.Add(48 * time.Hour)
	keep := saveOne(t, s, inbound("fresh", "31610000007", "new"))

	before := commits
	res, err := s.PurgeBefore(ctx, t0.Add(24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, n, res.Messages)
	require.GreaterOrEqual(t, commits-before, 3, "at least three message batches")
	requireClean(t, s)
	c := mustConversation(t, s, keep.ConversationID)
	require.Equal(t, 1, c.MessageCount)
	require.Equal(t, keep.MessageID, c.LastMessageID)
	require.Equal(t, uint64(1), s.Counter(counterConversations))
}
