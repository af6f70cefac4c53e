package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"imchannel/hmackey"
)

func TestEraseNumber(t *testing.T) {
	ctx := context.Background()
	key := []byte("test-hmac-key-0123456789abcdef01")
	s := openTemp(t, Options{HMACKey: key})
	const (
		erased   = "31612345678"
		other    = "31699999999"
		business = "1234"
		second   = "5678"
	)
	// The customer to erase talks to two business numbers, in several
	// number formats; their image shares its bytes with another customer's.
	a1 := saveOne(t, s, inbound("e-1", "+31 6 1234 5678", "my address is ..."))
	img := withMedia("e-img", "0031612345678", second)
	aImg := saveOne(t, s, img)
	sharedBytes := mediaPattern(ChunkSize + 77)
	cacheMedia(t, s, aImg.MessageID, sharedBytes)
	own := withMedia("e-img-own", erased, business)
	aOwn := saveOne(t, s, own)
	ownBytes := mediaPattern(3 * ChunkSize)
	ownBytes[1] = 9
	cacheMedia(t, s, aOwn.MessageID, ownBytes)
	queueOne(t, s, outbound("e-out", erased, "answer"))
	reactOut := reaction("e-react-pending", "not-yet-here", "❤", false)
	reactOut.From = erased
	saveOne(t, s, reactOut)
	h, err := s.NewHostedMedia(mediaPattern(100), "image/png", "header.png")
	require.NoError(t, err)
	hosted := h.Media
	tmpl := outbound("e-template", erased, "")
	tmpl.Type = TypeTemplate
	tmpl.Outbound = &OutboundSpec{TemplateName: "offer", HeaderMedia: hosted.ID}
	_, err = s.QueueWithHosted(ctx, tmpl, h, QueueOptions{})
	require.NoError(t, err)

	b1 := saveOne(t, s, inbound("o-1", other, "unrelated"))
	bImg := saveOne(t, s, withMedia("o-img", other, business))
	cacheMedia(t, s, bImg.MessageID, sharedBytes)
	otherReact := reaction("o-react-pending", "also-not-here", "👍", false)
	otherReact.From = other
	saveOne(t, s, otherReact)
	requireClean(t, s)
	require.Equal(t, uint64(3), s.Counter(counterConversations))

	n, err := s.EraseNumber(ctx, "+31 (0)6?")
	require.NoError(t, err, "a number nobody has erases nothing")
	require.Zero(t, n)

	n, err = s.EraseNumber(ctx, "+31-6-12345678")
	require.NoError(t, err)
	require.Equal(t, 5, n)
	requireClean(t, s)

	for _, bn := range []string{business, second} {
		_, err := s.ConversationByNumbers(bn, erased)
		require.ErrorIs(t, err, ErrNotFound)
	}
	for _, ext := range []string{"e-1", "e-img", "e-img-own", "e-out", "e-template"} {
		got, err := s.MessagesByExternalID(ext)
		require.NoError(t, err)
		require.Empty(t, got, ext)
	}
	_, err = s.Message(a1.MessageID)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = s.Media(hosted.ID)
	require.ErrorIs(t, err, ErrNotFound, "the template's hosted header belonged to it")
	_, err = s.MediaByToken(hosted.Token)
	require.ErrorIs(t, err, ErrNotFound)

	// The other customer is untouched; the shared bytes stay, once.
	c, err := s.ConversationByNumbers(business, other)
	require.NoError(t, err)
	require.Equal(t, 2, c.MessageCount)
	require.Equal(t, b1.ConversationID, c.ID)
	require.Equal(t, 1, mediaCount(t, s, bucketBlobs))
	require.Equal(t, 2, mediaCount(t, s, bucketChunks))
	require.Equal(t, 1, mediaCount(t, s, bucketPending), "only the other customer's parked reaction")
	require.Zero(t, mediaCount(t, s, bucketOutbox))
	require.Equal(t, uint64(1), s.Counter(counterConversations))
	require.Equal(t, uint64(2), s.Counter(counterMessages))

	// Audit: time, the keyed hash of the digits, the count; never the
	// number, and not its unkeyed SHA-256 (reversible by trying every
	// number: issue 13 item 4).
	lines, err := s.Audit(10)
	require.NoError(t, err)
	require.Len(t, lines, 2)
	sum := sha256.Sum256([]byte(erased))
	require.Equal(t, "erase", lines[0].Action)
	require.Equal(t, hmackey.Sum(key, "erased-number", erased), lines[0].NumberHMAC)
	require.Len(t, lines[0].NumberHMAC, 64)
	require.NoError(t, s.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			require.NotContains(t, string(v), hex.EncodeToString(sum[:]), "the unkeyed hash")
			return nil
		})
	}))
	// The key answers "was this number erased?"; another key does not.
	got, err := s.Erasures("+" + erased)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, 5, got[0].Count)
	none, err := s.Erasures(other)
	require.NoError(t, err)
	require.Empty(t, none)
	require.NotEqual(t, NumberHMAC([]byte("another key"), erased), lines[0].NumberHMAC)
	require.Equal(t, 5, lines[0].Count)
	require.False(t, lines[0].At.IsZero())
	require.Zero(t, lines[1].Count)
	require.NoError(t, s.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
			require.NotContains(t, string(v), erased)
			return nil
		})
	}))

	// Erasing again finds nothing; a number without digits is refused.
	n, err = s.EraseNumber(ctx, erased)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = s.EraseNumber(ctx, "not a number")
	require.ErrorIs(t, err, ErrInvalid)
	requireClean(t, s)
}

// An erasure bigger than one batch spans several transactions and leaves
// the file clean.
func TestEraseNumberManyMessages(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	const n = EraseBatch + 120
	var msgs []*Message
	for i := 0; i < n; i++ {
		m := inbound(extID(i), customer, fmt.Sprint("line ", i))
		if i%4 == 1 {
			m.ReplyTo = &ReplyRef{ExternalID: extID(i - 1)}
		}
		msgs = append(msgs, m)
	}
	_, err := s.SaveInbound(ctx, msgs)
	require.NoError(t, err)
	keep := saveOne(t, s, inbound("keep", "31600000000", "stay"))
	got, err := s.EraseNumber(ctx, customer)
	require.NoError(t, err)
	require.Equal(t, n, got)
	requireClean(t, s)
	require.Equal(t, uint64(1), s.Counter(counterMessages))
	require.Equal(t, 1, mediaCount(t, s, bucketConvMsgs))
	require.Equal(t, keep.MessageID, mustMessage(t, s, keep.MessageID).ID)
}
