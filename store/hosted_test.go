package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Issue 13 item 9: a template's hosted header and its message are stored
// in one transaction. When queueing fails, no bytes are left behind.
func TestQueueWithHostedAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	h, err := s.NewHostedMedia(mediaPattern(2*ChunkSize), "image/png", "h.png")
	require.NoError(t, err)
	// Refused inside the transaction: free-form text outside the window.
	refused := outbound("tmpl-x", "31600000077", "outside the window")
	refused.Outbound = &OutboundSpec{HeaderMedia: h.Media.ID}
	_, err = s.QueueWithHosted(ctx, refused, h, QueueOptions{Window: time.Hour})
	require.ErrorIs(t, err, ErrInvalid, "the message cannot be queued")
	_, err = s.Media(h.Media.ID)
	require.ErrorIs(t, err, ErrNotFound, "so its header was not stored either")
	require.Zero(t, mediaCount(t, s, bucketChunks))
	requireClean(t, s)

	// Stored together, the header names its message.
	md := hostTemplate(t, s, "tmpl-y", mediaPattern(100), "image/png", "h.png")
	msgs, err := s.MessagesByExternalID("tmpl-y")
	require.NoError(t, err)
	require.Equal(t, msgs[0].ID, md.MessageID)
	require.Equal(t, md.ID, msgs[0].Outbound.HeaderMedia)
	requireClean(t, s)
}

// Hosted media left without a message (a crash between the two writes of
// older versions) is reported by check and reclaimed by the retention
// pass's ReclaimOrphanMedia and by compact's ReclaimOrphanMediaIn.
func TestOrphanedHostedMedia(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	kept := hostTemplate(t, s, "tmpl-kept", mediaPattern(300), "image/png", "k.png")
	orphan, err := s.NewHostedMedia(mediaPattern(ChunkSize+9), "image/png", "o.png")
	require.NoError(t, err)
	require.NoError(t, s.Update(ctx, func(t *Tx) error { return t.putHosted(orphan, "") }))

	problems := s.Check()
	require.Len(t, problems, 1)
	require.Contains(t, problems[0], "media "+orphan.Media.ID+": orphaned")

	n, err := s.ReclaimOrphanMedia(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	requireClean(t, s)
	_, err = s.Media(orphan.Media.ID)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.MediaByToken(orphan.Media.Token)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.Media(kept.ID)
	require.NoError(t, err, "a header in use stays")
	n, err = s.ReclaimOrphanMedia(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	// The raw form, on a file no store holds (compact's copy).
	again, err := s.NewHostedMedia(mediaPattern(50), "image/png", "o2.png")
	require.NoError(t, err)
	require.NoError(t, s.Update(ctx, func(t *Tx) error { return t.putHosted(again, "") }))
	n, err = ReclaimOrphanMediaIn(s.db)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	requireClean(t, s)
}
