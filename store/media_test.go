package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func mediaPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func mediaCount(t *testing.T, s *Store, bucket []byte) int {
	t.Helper()
	n := 0
	require.NoError(t, s.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	}))
	return n
}

func mediaBlob(t *testing.T, s *Store, sha string) *Blob {
	t.Helper()
	sum, err := hex.DecodeString(sha)
	require.NoError(t, err)
	var b *Blob
	require.NoError(t, s.View(func(tx *bolt.Tx) error {
		var err error
		b, err = (&Tx{tx: tx, s: s}).getBlob(sum)
		return err
	}))
	return b
}

func TestMediaPutHostedAndToken(t *testing.T) {
	s := openTemp(t, Options{})
	data := mediaPattern(3*ChunkSize + 1000)
	md := hostTemplate(t, s, "tmpl-1", data, "application/pdf", "offer.pdf")
	require.Equal(t, MediaCached, md.State)
	require.Len(t, md.Token, 43, "32 bytes base64url")
	require.Equal(t, int64(len(data)), md.Size)

	got, err := s.MediaByToken(md.Token)
	require.NoError(t, err)
	require.Equal(t, md.ID, got.ID)
	require.Equal(t, "application/pdf", got.ContentType)
	require.Equal(t, "offer.pdf", got.FileName)

	_, err = s.MediaByToken("nope")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.NewHostedMedia(nil, "image/png", "")
	require.ErrorIs(t, err, ErrInvalid)

	r, err := s.OpenMedia(md)
	require.NoError(t, err)
	all, err := io.ReadAll(r)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, all))
	require.Equal(t, 4, mediaCount(t, s, bucketChunks))
	requireClean(t, s)
}

func TestMediaIdenticalBytesStoredOnce(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	data := mediaPattern(ChunkSize + 5)
	a := hostTemplate(t, s, "tmpl-a", data, "image/webp", "")
	b := hostTemplate(t, s, "tmpl-b", data, "image/webp", "")
	require.NotEqual(t, a.Token, b.Token)
	require.Equal(t, a.SHA256, b.SHA256)
	require.Equal(t, 1, mediaCount(t, s, bucketBlobs))
	require.Equal(t, 2, mediaCount(t, s, bucketChunks))
	require.Equal(t, 2, mediaBlob(t, s, a.SHA256).Refs)
	requireClean(t, s)

	require.NoError(t, s.DeleteMedia(ctx, a.ID))
	require.Equal(t, 1, mediaBlob(t, s, a.SHA256).Refs)
	require.ErrorIs(t, s.DeleteMedia(ctx, a.ID), ErrNotFound)
	requireClean(t, s)

	require.NoError(t, s.DeleteMedia(ctx, b.ID))
	require.Equal(t, 0, mediaCount(t, s, bucketBlobs))
	require.Equal(t, 0, mediaCount(t, s, bucketChunks))
	gone, err := s.Media(b.ID)
	require.NoError(t, err)
	require.Equal(t, MediaDeleted, gone.State)
	_, err = s.OpenMedia(gone)
	require.ErrorIs(t, err, ErrNotFound)
	requireClean(t, s)
}

func TestMediaReconcileType(t *testing.T) {
	for _, c := range []struct{ declared, sniffed, ct, disagree string }{
		{"image/jpeg", "image/jpeg", "image/jpeg", ""},
		{"", "image/png", "image/png", ""},
		{"image/jpeg", "image/png", "image/jpeg", "image/png"},
		{"text/plain", "text/plain; charset=utf-8", "text/plain", ""},
		{"audio/ogg; codecs=opus", "application/octet-stream", "audio/ogg; codecs=opus", ""},
		{"audio/ogg", "application/ogg", "audio/ogg", ""},
		{"audio/mp4", "video/mp4", "audio/mp4", ""},
		{"image/webp", "video/webm", "image/webp", "video/webm"},
	} {
		ct, dis := ReconcileType(c.declared, c.sniffed)
		require.Equal(t, c.ct, ct, c)
		require.Equal(t, c.disagree, dis, c)
	}
}

// The fetch lifecycle through the queue: retry requeues, fetched caches and
// dequeues, a deletion tombstone releases the bytes.
func TestMediaQueueLifecycle(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	m := inbound("wamid.media1", customer, "")
	m.Type = TypeImage
	m.Media = &Media{SourceURL: "https://example.com/a.jpg"}
	r := saveOne(t, s, m)
	msg := mustMessage(t, s, r.MessageID)
	id := msg.Media.ID
	require.Equal(t, MediaPending, msg.Media.State)

	q, err := s.MediaQueue(10)
	require.NoError(t, err)
	require.Len(t, q, 1)
	require.Equal(t, id, q[0].ID)
	require.False(t, q[0].At.After(time.Now()), "due at once")

	next := time.Now().Add(time.Hour)
	require.NoError(t, s.MarkMediaRetry(ctx, id, next, "503 Service Unavailable"))
	q, err = s.MediaQueue(10)
	require.NoError(t, err)
	require.Len(t, q, 1)
	require.Equal(t, next.UnixNano(), q[0].At.UnixNano(), "requeued for the retry")
	requireClean(t, s)

	data := mediaPattern(1000)
	md, err := s.MarkMediaFetched(ctx, id, BytesSource(data), "image/jpeg", "application/octet-stream", nil)
	require.NoError(t, err)
	require.Equal(t, MediaCached, md.State)
	require.Equal(t, 2, md.Attempts)
	q, err = s.MediaQueue(10)
	require.NoError(t, err)
	require.Empty(t, q)
	require.Equal(t, "cached", mustMessage(t, s, r.MessageID).Media.State)
	requireClean(t, s)

	// A late duplicate completion changes nothing.
	_, err = s.MarkMediaFetched(ctx, id, BytesSource(data), "image/jpeg", "", nil)
	require.NoError(t, err)
	require.Equal(t, 1, mediaBlob(t, s, md.SHA256).Refs)

	require.NoError(t, s.DeleteMedia(ctx, id))
	require.Equal(t, 0, mediaCount(t, s, bucketChunks))
	requireClean(t, s)
}

func TestMediaFailedCounter(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	var ids []string
	for i := range 2 {
		m := inbound(extID(i), customer, "")
		m.Type = TypeDocument
		m.Media = &Media{SourceURL: "https://example.com/doc"}
		ids = append(ids, mustMessage(t, s, saveOne(t, s, m).MessageID).Media.ID)
	}
	require.NoError(t, s.MarkMediaFailed(ctx, ids[0], MediaFailed, "404 Not Found"))
	require.NoError(t, s.MarkMediaFailed(ctx, ids[1], MediaTooLarge, "larger than 10 bytes"))
	require.ErrorIs(t, s.MarkMediaFailed(ctx, ids[1], MediaCached, "x"), ErrInvalid)
	require.Equal(t, uint64(1), s.Counter("media_failed"))
	md, err := s.Media(ids[1])
	require.NoError(t, err)
	require.Equal(t, MediaTooLarge, md.State)
	require.Equal(t, "https://example.com/doc", md.SourceURL)
	require.Equal(t, 0, mediaCount(t, s, bucketMediaQueue))
	requireClean(t, s)
}

// The webhook's announced type stands in when the response has none.
func TestMediaFetchedTypeFallsBackToWebhook(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	var ids []string
	for i := range 4 {
		m := inbound(extID(i), customer, "")
		m.Type = TypeAudio
		m.Media = &Media{SourceURL: "https://example.com/voice", ContentType: "audio/ogg"}
		ids = append(ids, mustMessage(t, s, saveOne(t, s, m).MessageID).Media.ID)
	}
	data := []byte("OggS\x00\x02 some opus")
	for i, c := range []struct{ response, want, sniffed string }{
		{"", "audio/ogg", ""},
		{"application/octet-stream", "audio/ogg", ""},
		{"audio/mpeg", "audio/mpeg", "application/ogg"},
		{"audio/ogg; codecs=opus", "audio/ogg; codecs=opus", ""},
	} {
		md, err := s.MarkMediaFetched(ctx, ids[i], BytesSource(data), c.response, "application/ogg", nil)
		require.NoError(t, err)
		require.Equal(t, c.want, md.ContentType, c.response)
		require.Equal(t, c.sniffed, md.SniffedType, c.response)
	}
	requireClean(t, s)
}
