package store

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// 64 writers post the same provider message at once: one message, 63
// duplicates, and the duplicates change nothing.
func TestSaveInboundSameIDConcurrently(t *testing.T) {
	s := openTemp(t, Options{})
	const writers = 64
	results := make([]Result, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			m := inbound("ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ", "385919998888", "Support hello")
			if i > 0 {
				m.Text = "a resend must not change the first"
			}
			var rs []Result
			rs, errs[i] = s.SaveInbound(context.Background(), []*Message{m})
			if errs[i] == nil {
				results[i] = rs[0]
			}
		}()
	}
	close(start)
	wg.Wait()

	created, dups := 0, 0
	var id string
	for i, r := range results {
		require.NoError(t, errs[i])
		if r.Duplicate {
			dups++
		} else {
			created++
		}
		if id == "" {
			id = r.MessageID
		}
		require.Equal(t, id, r.MessageID, "every writer is told the same message id")
	}
	require.Equal(t, 1, created)
	require.Equal(t, writers-1, dups)

	m := mustMessage(t, s, id)
	msgs := allMessages(t, s, m.ConversationID)
	require.Len(t, msgs, 1)
	require.Equal(t, id, msgs[0].ID)
	require.Equal(t, 1, mustConversation(t, s, m.ConversationID).MessageCount)
	require.EqualValues(t, 1, s.Counter(counterMessages))
	require.EqualValues(t, writers-1, s.Counter("dup:"+ProviderInfobip))
	byExt, err := s.MessagesByExternalID("ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ")
	require.NoError(t, err)
	require.Len(t, byExt, 1)
	requireClean(t, s)
}

// The same reaction posted by many writers at once (so several land in one
// shared commit) is applied once and the rest are duplicates.
func TestSaveInboundSameActionConcurrently(t *testing.T) {
	s := openTemp(t, Options{})
	target := saveOne(t, s, inbound("target", customer, "hi"))
	const writers = 64
	results := make([]Result, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rs, err := s.SaveInbound(context.Background(), []*Message{{
				Provider: ProviderInfobip, ExternalID: "reaction-1", From: customer, To: business,
				Type: TypeReaction, Target: "target", ReactionEmoji: "👍",
			}})
			if err == nil {
				results[i] = rs[0]
			}
		}()
	}
	close(start)
	wg.Wait()
	dups := 0
	for _, r := range results {
		require.True(t, r.Action)
		if r.Duplicate {
			dups++
		}
	}
	require.Equal(t, writers-1, dups, "the same reaction in one commit must be a duplicate")
	require.Len(t, mustMessage(t, s, target.MessageID).Reactions, 1)

	// Twice in one post, too.
	rs, err := s.SaveInbound(context.Background(), []*Message{
		{Provider: ProviderInfobip, ExternalID: "del-1", Type: TypeDelete, Target: "target"},
		{Provider: ProviderInfobip, ExternalID: "del-1", Type: TypeDelete, Target: "target"},
	})
	require.NoError(t, err)
	require.False(t, rs[0].Duplicate)
	require.True(t, rs[1].Duplicate)
	requireClean(t, s)
}

func TestNumberFormatsAreOneConversation(t *testing.T) {
	s := openTemp(t, Options{})
	var conv string
	for i, from := range []string{"+31612345678", "0031612345678", "31612345678", "+31 6-1234 5678"} {
		r := saveOne(t, s, inbound(extID(i), from, "hello"))
		if conv == "" {
			conv = r.ConversationID
		}
		require.Equal(t, conv, r.ConversationID, "number %q", from)
	}
	// An outbound message to the customer in yet another format joins too.
	r := queueOne(t, s, outbound("out-1", "+31612345678", "hi"))
	require.Equal(t, conv, r.ConversationID)

	c := mustConversation(t, s, conv)
	require.Equal(t, "31612345678", c.Customer)
	require.Equal(t, business, c.Business)
	require.Equal(t, 5, c.MessageCount)
	require.EqualValues(t, 1, s.Counter(counterConversations))
	got, err := s.ConversationByNumbers("1234", "0031 612 345 678")
	require.NoError(t, err)
	require.Equal(t, conv, got.ID)
	requireClean(t, s)
}

func TestContactNameAndDomain(t *testing.T) {
	s := openTemp(t, Options{})
	m := inbound("a", customer, "hi")
	r := saveOne(t, s, m)
	c := mustConversation(t, s, r.ConversationID)
	require.Equal(t, DefaultDomain, c.Domain)
	require.Empty(t, c.Name)

	m = inbound("b", customer, "again")
	m.ContactName = "Frank"
	m.Domain = "acme"
	saveOne(t, s, m)
	c = mustConversation(t, s, r.ConversationID)
	require.Equal(t, "Frank", c.Name)
	require.Equal(t, "acme", c.Domain)

	// A later message without a name keeps the latest known one.
	saveOne(t, s, inbound("c", customer, "more"))
	require.Equal(t, "Frank", mustConversation(t, s, r.ConversationID).Name)
}

// A reply stored before the message it quotes links up when that arrives.
func TestReplyBeforeTarget(t *testing.T) {
	s := openTemp(t, Options{})
	reply := inbound("reply-1", customer, "yes, that one")
	reply.ReplyTo = &ReplyRef{ExternalID: "original-1"}
	rr := saveOne(t, s, reply)
	got := mustMessage(t, s, rr.MessageID)
	require.NotNil(t, got.ReplyTo)
	require.Empty(t, got.ReplyTo.ID, "the target is not here yet")
	require.Equal(t, "original-1", got.ReplyTo.ExternalID)
	requireClean(t, s)

	ro := saveOne(t, s, inbound("original-1", customer, "which one?"))
	got = mustMessage(t, s, rr.MessageID)
	require.Equal(t, ro.MessageID, got.ReplyTo.ID)

	// A reply to a message already here links at once.
	r2 := inbound("reply-2", customer, "and again")
	r2.ReplyTo = &ReplyRef{ExternalID: "original-1", ID: "bogus: callers cannot set it"}
	got = mustMessage(t, s, saveOne(t, s, r2).MessageID)
	require.Equal(t, ro.MessageID, got.ReplyTo.ID)

	// A reply whose target never arrives keeps an empty id.
	r3 := inbound("reply-3", customer, "?")
	r3.ReplyTo = &ReplyRef{ExternalID: "never"}
	got = mustMessage(t, s, saveOne(t, s, r3).MessageID)
	require.Empty(t, got.ReplyTo.ID)
	requireClean(t, s)
}

// A quote links only to a message of the same conversation: a provider
// naming another customer's message must not show that customer's words in
// this thread, nor leave a dangling link when that customer is erased. A
// target stored earlier in the same post links like any other.
func TestReplyLinksWithinItsConversationOnly(t *testing.T) {
	const other = "31699999999"
	ctx := context.Background()
	cases := []struct {
		name        string
		targetFrom  string
		targetFirst bool // the target is stored before the reply
		samePost    bool
		linked      bool
	}{
		{"same conversation, target first", customer, true, false, true},
		{"same conversation, target later", customer, false, false, true},
		{"same conversation, same post", customer, true, true, true},
		{"other conversation, target first", other, true, false, false},
		{"other conversation, target later", other, false, false, false},
		{"other conversation, same post", other, true, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t, Options{})
			target := inbound("target", tc.targetFrom, "private words")
			reply := inbound("reply", customer, "about that")
			reply.ReplyTo = &ReplyRef{ExternalID: "target"}
			var rr Result
			switch {
			case tc.samePost:
				rs, err := s.SaveInbound(ctx, []*Message{target, reply})
				require.NoError(t, err)
				rr = rs[1]
			case tc.targetFirst:
				saveOne(t, s, target)
				rr = saveOne(t, s, reply)
			default:
				rr = saveOne(t, s, reply)
				saveOne(t, s, target)
			}
			tr, err := s.MessagesByExternalID("target")
			require.NoError(t, err)
			require.Len(t, tr, 1)
			got := mustMessage(t, s, rr.MessageID)
			if tc.linked {
				require.Equal(t, tr[0].ID, got.ReplyTo.ID)
			} else {
				require.Empty(t, got.ReplyTo.ID)
				require.Equal(t, "target", got.ReplyTo.ExternalID)
			}
			requireClean(t, s)
			_, err = s.EraseNumber(ctx, other)
			require.NoError(t, err)
			requireClean(t, s)
		})
	}
}

// The customer quotes our outbound message by the provider's id for it (an
// alias), before or after the alias is known.
func TestReplyToOutboundViaAlias(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	out := queueOne(t, s, outbound("our-1", customer, "how can we help?"))

	early := inbound("in-1", customer, "quoting before the alias is known")
	early.ReplyTo = &ReplyRef{ExternalID: "provider-1"}
	re := saveOne(t, s, early)
	require.Empty(t, mustMessage(t, s, re.MessageID).ReplyTo.ID)

	require.NoError(t, s.Update(ctx, func(t *Tx) error { return t.AddAlias(out.MessageID, ProviderInfobip, "provider-1") }))
	require.Equal(t, out.MessageID, mustMessage(t, s, re.MessageID).ReplyTo.ID)

	late := inbound("in-2", customer, "quoting after")
	late.ReplyTo = &ReplyRef{ExternalID: "provider-1"}
	require.Equal(t, out.MessageID, mustMessage(t, s, saveOne(t, s, late).MessageID).ReplyTo.ID)

	// And by our own external id.
	own := inbound("in-3", customer, "quoting our id")
	own.ReplyTo = &ReplyRef{ExternalID: "our-1"}
	require.Equal(t, out.MessageID, mustMessage(t, s, saveOne(t, s, own).MessageID).ReplyTo.ID)

	got, err := s.MessagesByExternalID("provider-1")
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, out.MessageID, got[0].ID)
	require.Contains(t, got[0].Aliases, "provider-1")
	requireClean(t, s)
}

func reaction(ext, target, emoji string, removed bool) *Message {
	return &Message{Provider: ProviderInfobip, ExternalID: ext, From: customer, To: business,
		Type: TypeReaction, Target: target, ReactionEmoji: emoji, ReactionRemoved: removed}
}

func deletion(ext, target string) *Message {
	return &Message{Provider: ProviderInfobip, ExternalID: ext, From: customer, To: business,
		Type: TypeDelete, Target: target}
}

func TestReactionsAndDeletions(t *testing.T) {
	ctx := context.Background()
	t.Run("reaction after its target, replaced, removed", func(t *testing.T) {
		s := openTemp(t, Options{})
		tr := saveOne(t, s, inbound("m1", customer, "hi"))
		r := saveOne(t, s, reaction("r1", "m1", "👍", false))
		require.True(t, r.Action)
		require.Equal(t, tr.MessageID, r.MessageID)
		got := mustMessage(t, s, tr.MessageID)
		require.Len(t, got.Reactions, 1)
		require.Equal(t, "👍", got.Reactions[0].Emoji)
		require.Equal(t, customer, got.Reactions[0].From)

		saveOne(t, s, reaction("r2", "m1", "❤️", false))
		got = mustMessage(t, s, tr.MessageID)
		require.Len(t, got.Reactions, 1, "one reaction per person")
		require.Equal(t, "❤️", got.Reactions[0].Emoji)

		saveOne(t, s, reaction("r3", "m1", "", true))
		require.Empty(t, mustMessage(t, s, tr.MessageID).Reactions)

		// A reaction is no message of its own.
		require.Len(t, allMessages(t, s, tr.ConversationID), 1)
		require.True(t, saveOne(t, s, reaction("r1", "m1", "👍", false)).Duplicate)
		require.Empty(t, mustMessage(t, s, tr.MessageID).Reactions, "a resent reaction changes nothing")
		requireClean(t, s)
	})
	t.Run("reaction before its target", func(t *testing.T) {
		s := openTemp(t, Options{})
		r := saveOne(t, s, reaction("r1", "m1", "🎉", false))
		require.True(t, r.Action)
		require.Empty(t, r.MessageID, "parked")
		tr := saveOne(t, s, inbound("m1", customer, "hi"))
		got := mustMessage(t, s, tr.MessageID)
		require.Len(t, got.Reactions, 1)
		require.Equal(t, "🎉", got.Reactions[0].Emoji)
		requireClean(t, s)
	})
	t.Run("deletion after its target keeps its place", func(t *testing.T) {
		s := openTemp(t, Options{})
		a := saveOne(t, s, inbound("a", customer, "first"))
		b := saveOne(t, s, inbound("b", customer, "secret"))
		c := saveOne(t, s, inbound("c", customer, "third"))
		saveOne(t, s, deletion("d1", "b"))
		msgs := allMessages(t, s, a.ConversationID)
		require.Equal(t, []string{a.MessageID, b.MessageID, c.MessageID}, ids(msgs))
		tomb := msgs[1]
		require.True(t, tomb.Deleted)
		require.Equal(t, StatusDeleted, tomb.Status)
		require.Empty(t, tomb.Text)
		require.Equal(t, "b", tomb.ExternalID, "the tombstone still answers to its id")
		require.True(t, saveOne(t, s, inbound("b", customer, "secret")).Duplicate, "a deleted message is not stored again")
		require.Empty(t, mustMessage(t, s, b.MessageID).Text)
		requireClean(t, s)
	})
	t.Run("deletion before its target", func(t *testing.T) {
		s := openTemp(t, Options{})
		saveOne(t, s, deletion("d1", "b"))
		b := saveOne(t, s, inbound("b", customer, "secret"))
		got := mustMessage(t, s, b.MessageID)
		require.True(t, got.Deleted)
		require.Empty(t, got.Text)
		c := mustConversation(t, s, b.ConversationID)
		require.Equal(t, "message deleted", c.LastPreview)
		require.Equal(t, 1, c.MessageCount)
		requireClean(t, s)
	})
	t.Run("deleting a failed outbound message fixes the failed count", func(t *testing.T) {
		s := openTemp(t, Options{})
		o := queueOne(t, s, outbound("o1", customer, "oops"))
		_, err := s.ApplyReports(ctx, []Report{{Provider: ProviderInfobip, ExternalID: "o1", Status: StatusFailed, At: at(1), Reason: "blocked"}})
		require.NoError(t, err)
		require.Equal(t, 1, mustConversation(t, s, o.ConversationID).FailedCount)
		require.NoError(t, s.Update(ctx, func(t *Tx) error {
			m, err := t.getMessage(o.MessageID)
			if err != nil {
				return err
			}
			return t.tombstone(m)
		}))
		require.Equal(t, 0, mustConversation(t, s, o.ConversationID).FailedCount)
		require.EqualValues(t, 0, s.Counter(counterFailedSends))
		requireClean(t, s)
	})
	t.Run("actions need a target", func(t *testing.T) {
		s := openTemp(t, Options{})
		_, err := s.SaveInbound(ctx, []*Message{reaction("r", "", "👍", false)})
		require.ErrorIs(t, err, ErrInvalid)
	})
}

func TestSaveInboundIsAllOrNothing(t *testing.T) {
	s := openTemp(t, Options{})
	_, err := s.SaveInbound(context.Background(), []*Message{
		inbound("ok-1", customer, "fine"),
		{Provider: ProviderInfobip, ExternalID: "bad", Type: TypeText, To: business}, // no from
	})
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "message 1")
	require.EqualValues(t, 0, s.Counter(counterMessages))
	got, err := s.MessagesByExternalID("ok-1")
	require.NoError(t, err)
	require.Empty(t, got)
}
