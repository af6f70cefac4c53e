package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func searchIDs(t *testing.T, s *Store, q string, limit int, cursor string) ([]string, MessagePage) {
	t.Helper()
	p, err := s.SearchMessages(q, limit, cursor)
	require.NoError(t, err)
	var ids []string
	for _, m := range p.Messages {
		ids = append(ids, m.ExternalID)
	}
	return ids, p
}

func TestSearchMessages(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	saveOne(t, s, inbound("m1", customer, "Where is my order A-12345?"))
	img := inbound("m2", customer, "")
	img.Type, img.Caption = TypeImage, "Rechnung für Herrn Müller, order 12345"
	img.Media = &Media{SourceURL: "https://provider.example/x.jpg"}
	saveOne(t, s, img)
	saveOne(t, s, inbound("m3", "31600000002", "another customer's order 999"))
	queueOne(t, s, outbound("o1", customer, "Your order 12345 ships today"))
	saveOne(t, s, inbound("m4", customer, "delete me: order 12345"))
	_, err := s.SaveInbound(ctx, []*Message{{Provider: ProviderInfobip, ExternalID: "del", From: customer, To: business,
		Type: TypeDelete, Target: "m4"}})
	require.NoError(t, err)

	cases := []struct {
		q    string
		want []string
	}{
		{"12345", []string{"o1", "m2", "m1"}},         // text, caption, ours and theirs; not the deleted one
		{"ORDER 12345", []string{"o1", "m2", "m1"}},   // every word, any case
		{"order a-12345", []string{"o1", "m2", "m1"}}, // one-letter words are not searched
		{"muller", []string{"m2"}},                    // accents ignored
		{"MÜLLER rechnung", []string{"m2"}},           // folded the same way as the text
		{"order", []string{"o1", "m3", "m2", "m1"}},   // every conversation
		{"ord", nil},       // whole words
		{"12345 999", nil}, // all words in one message
		{"delete", nil},    // a deleted message's words are gone
	}
	for _, c := range cases {
		t.Run(c.q, func(t *testing.T) {
			ids, p := searchIDs(t, s, c.q, 10, "")
			require.Equal(t, c.want, ids)
			require.Equal(t, len(c.want), p.Total)
			require.False(t, p.TotalCapped)
			for _, m := range p.Messages {
				require.NotEmpty(t, m.ConversationID)
			}
		})
	}

	// Paging: newest first, the total on every page.
	ids, p := searchIDs(t, s, "order", 3, "")
	require.Equal(t, []string{"o1", "m3", "m2"}, ids)
	require.NotEmpty(t, p.Next)
	ids, p2 := searchIDs(t, s, "order", 3, p.Next)
	require.Equal(t, []string{"m1"}, ids)
	require.Empty(t, p2.Next)
	require.Equal(t, 4, p2.Total)

	for _, bad := range []struct{ q, cursor string }{{"", ""}, {"a !", ""}, {"order", "nope"}} {
		_, err := s.SearchMessages(bad.q, 10, bad.cursor)
		require.ErrorIs(t, err, ErrInvalid, "%q %q", bad.q, bad.cursor)
	}

	// Erasing a customer takes their words out of the index.
	_, err = s.EraseNumber(ctx, customer)
	require.NoError(t, err)
	ids, _ = searchIDs(t, s, "order", 10, "")
	require.Equal(t, []string{"m3"}, ids)
}

// The total stops counting at MessageSearchCap and says so.
func TestSearchMessagesTotalIsCapped(t *testing.T) {
	s := openTemp(t, Options{})
	var ms []*Message
	for i := 0; i < MessageSearchCap+5; i++ {
		m := inbound(fmt.Sprintf("w%d", i), customer, fmt.Sprintf("parcel %d", i))
		m.Direction = Inbound
		ms = append(ms, m)
	}
	require.NoError(t, s.BulkLoad(context.Background(), ms))
	ids, p := searchIDs(t, s, "parcel", 2, "")
	require.Equal(t, []string{fmt.Sprintf("w%d", MessageSearchCap+4), fmt.Sprintf("w%d", MessageSearchCap+3)}, ids)
	require.Equal(t, MessageSearchCap, p.Total)
	require.True(t, p.TotalCapped)
	ids, _ = searchIDs(t, s, "parcel 77", 5, "")
	require.Equal(t, []string{"w77"}, ids, "a rare word with a common one")
}

func TestFindConversations(t *testing.T) {
	ctx := context.Background()
	clk := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	s := openTemp(t, Options{Now: func() time.Time { clk = clk.Add(time.Minute); return clk }})
	named := func(ext, from, to, name string) *Message {
		m := inbound(ext, from, "hi")
		m.To, m.ContactName = to, name
		return m
	}
	saveOne(t, s, named("a", "4917012345678", "1234", "Jürgen Müller")) // unanswered
	saveOne(t, s, named("b", "31611111111", "1234", "Aïcha"))
	queueOne(t, s, outbound("b-re", "31611111111", "answered")) // answered
	saveOne(t, s, named("c", "31622222222", "5678", "Bob"))
	fails := outbound("c-re", "31622222222", "fails")
	fails.From = "5678"
	f := queueOne(t, s, fails)
	require.NoError(t, s.MarkFailed(ctx, f.MessageID, "provider answered 400: no"))

	names := func(p ConvPage) []string {
		var out []string
		for _, c := range p.Conversations {
			out = append(out, c.Customer)
		}
		return out
	}
	cases := []struct {
		name  string
		q     ConvQuery
		want  []string
		total int
	}{
		{"all", ConvQuery{}, []string{"31622222222", "31611111111", "4917012345678"}, 3},
		{"unanswered", ConvQuery{Filter: FilterUnanswered}, []string{"4917012345678"}, 1},
		{"failed", ConvQuery{Filter: FilterFailed}, []string{"31622222222"}, 1},
		{"business", ConvQuery{Business: "+1234"}, []string{"31611111111", "4917012345678"}, 2},
		{"business and filter", ConvQuery{Business: "1234", Filter: FilterFailed}, nil, 0},
		{"name without accents", ConvQuery{Q: "jurgen"}, []string{"4917012345678"}, 1},
		{"name in capitals", ConvQuery{Q: "MULLER"}, []string{"4917012345678"}, 1},
		{"name with accents", ConvQuery{Q: "aïcha"}, []string{"31611111111"}, 1},
		{"digits", ConvQuery{Q: "0031 6111"}, []string{"31611111111"}, 1},
		{"a national number read in its region", ConvQuery{Q: "017012345678", Numbers: []string{"4917012345678"}}, []string{"4917012345678"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := s.FindConversations(c.q, 10, "")
			require.NoError(t, err)
			require.Equal(t, c.want, names(p))
			require.Equal(t, c.total, p.Total)
		})
	}

	// A filtered list pages with its total on every page.
	p, err := s.FindConversations(ConvQuery{Business: "1234"}, 1, "")
	require.NoError(t, err)
	require.Equal(t, []string{"31611111111"}, names(p))
	p, err = s.FindConversations(ConvQuery{Business: "1234"}, 1, p.Next)
	require.NoError(t, err)
	require.Equal(t, []string{"4917012345678"}, names(p))
	require.Equal(t, 2, p.Total)
	require.Empty(t, p.Next)
	p, err = s.FindConversations(ConvQuery{}, 2, "")
	require.NoError(t, err)
	p, err = s.FindConversations(ConvQuery{}, 2, p.Next)
	require.NoError(t, err)
	require.Equal(t, []string{"4917012345678"}, names(p))

	_, err = s.FindConversations(ConvQuery{Filter: "bogus"}, 10, "")
	require.ErrorIs(t, err, ErrInvalid)

	bs, err := s.Businesses()
	require.NoError(t, err)
	require.Equal(t, []BusinessCount{{"1234", 2}, {"5678", 1}}, bs)
	_, err = s.EraseNumber(ctx, "31622222222")
	require.NoError(t, err)
	bs, err = s.Businesses()
	require.NoError(t, err)
	require.Equal(t, []BusinessCount{{"1234", 2}}, bs, "an erased conversation leaves its business count")
}

// A conversation can hold CM and Infobip messages: a reply quoting the
// other provider's message resolves.
func TestQuoteAcrossProviders(t *testing.T) {
	s := openTemp(t, Options{})
	cm := inbound("cm-ref-1", customer, "sent through CM")
	cm.Provider = ProviderCM
	q := saveOne(t, s, cm)
	reply := inbound("ib-2", customer, "answering it")
	reply.ReplyTo = &ReplyRef{ExternalID: "cm-ref-1"}
	r := saveOne(t, s, reply)
	require.Equal(t, q.MessageID, mustMessage(t, s, r.MessageID).ReplyTo.ID)

	// Not another customer's message, though.
	other := inbound("ib-3", "31699999999", "someone else")
	other.ReplyTo = &ReplyRef{ExternalID: "cm-ref-1"}
	o := saveOne(t, s, other)
	require.Empty(t, mustMessage(t, s, o.MessageID).ReplyTo.ID)
}

// check finds a text index out of step with the messages, both ways.
func TestCheckFindsTheTextIndexOutOfStep(t *testing.T) {
	s := openTemp(t, Options{})
	r := saveOne(t, s, inbound("c1", customer, "parcel 4711"))
	require.Empty(t, s.Check())
	require.NoError(t, s.db.Update(func(tx *bolt.Tx) error {
		id, err := ulid.ParseStrict(r.MessageID)
		require.NoError(t, err)
		b := tx.Bucket(bucketWords)
		require.NoError(t, b.Delete(wordKey("4711", id)))
		return b.Put(wordKey("stale", id), []byte{})
	}))
	problems := s.Check()
	require.Contains(t, problems, fmt.Sprintf("msg_words: message %s lacks word %q", r.MessageID, "4711"))
	require.Contains(t, problems, fmt.Sprintf("msg_words: %q names message %s, which does not hold it", "stale", r.MessageID))
}
