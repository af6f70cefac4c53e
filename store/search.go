package store

import (
	"bytes"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"imchannel/words"
)

// ---- the message text index ----
//
// msg_words holds one key per (token, message): token+0x00+the message's
// 16-byte binary ULID, empty value. A token's keys sort by message id, so
// by time: a search walks them backwards, newest first. Every write that
// changes a message's text keeps it in step in the same transaction:
// insert adds, tombstone and removeMessage take away.

// MessageSearchCap bounds how far a search counts: beyond it the total
// says "at least" (TotalCapped), so a common word costs no more than a rare one.
const MessageSearchCap = 1000

func wordPrefix(token string) []byte {
	k := make([]byte, 0, len(token)+1+16)
	k = append(k, token...)
	return append(k, 0)
}

func wordKey(token string, id ulid.ULID) []byte {
	return append(wordPrefix(token), id[:]...)
}

// messageTokens are the words a message is found by: its text and caption,
// none once it is deleted.
func messageTokens(m *Message) []string {
	if m.Deleted || (m.Text == "" && m.Caption == "") {
		return nil
	}
	return words.Tokens(m.Text + "\n" + m.Caption)
}

// indexWords adds m's words to the index.
func (t *Tx) indexWords(m *Message) error {
	toks := messageTokens(m)
	if len(toks) == 0 {
		return nil
	}
	id, err := ulid.ParseStrict(m.ID)
	if err != nil {
		return Errorf(ErrInternal, "message id %q: %v", m.ID, err)
	}
	if t.words != nil {
		for _, tok := range toks {
			*t.words = append(*t.words, wordKey(tok, id))
		}
		return nil
	}
	b := t.tx.Bucket(bucketWords)
	for _, tok := range toks {
		if err := b.Put(wordKey(tok, id), []byte{}); err != nil {
			return err
		}
	}
	return nil
}

// collectWords makes indexWords collect its keys until flushWords puts
// them. bbolt splits a node only at commit, so thousands of keys put in
// random order into one transaction's node move its tail on every put
// (quadratic); put in key order, each lands at the end.
func (t *Tx) collectWords() { t.words = new([][]byte) }

// flushWords puts the collected keys in key order and stops collecting.
func (t *Tx) flushWords() error {
	if t.words == nil {
		return nil
	}
	keys := *t.words
	t.words = nil
	slices.SortFunc(keys, bytes.Compare)
	b := t.tx.Bucket(bucketWords)
	for _, k := range keys {
		if err := b.Put(k, []byte{}); err != nil {
			return err
		}
	}
	return nil
}

// unindexWords takes m's words (as m holds them now) out of the index.
func (t *Tx) unindexWords(m *Message) error {
	toks := messageTokens(m)
	if len(toks) == 0 {
		return nil
	}
	if err := t.flushWords(); err != nil { // what is collected must be there to take away
		return err
	}
	id, err := ulid.ParseStrict(m.ID)
	if err != nil {
		return nil // never indexed
	}
	b := t.tx.Bucket(bucketWords)
	for _, tok := range toks {
		if err := b.Delete(wordKey(tok, id)); err != nil {
			return err
		}
	}
	return nil
}

// MessagePage is one page of a message search.
type MessagePage struct {
	Messages []*Message
	// Next is the cursor of the next page, empty on the last.
	Next string
	// Total counts every match, up to MessageSearchCap; TotalCapped says
	// there are more.
	Total       int
	TotalCapped bool
	// Tokens are the words searched for (folded), for highlighting.
	Tokens []string
}

// SearchMessages finds the messages whose text or caption holds every word
// of q (whole words, accents and case ignored), newest first. cursor is the
// previous page's Next.
func (s *Store) SearchMessages(q string, limit int, cursor string) (MessagePage, error) {
	var page MessagePage
	if limit <= 0 || limit > 500 {
		return page, Errorf(ErrInvalid, "limit must be between 1 and 500")
	}
	toks := words.Tokens(q)
	if len(toks) == 0 {
		return page, Errorf(ErrInvalid, "q has no word of at least %d letters or digits to search for", words.MinLen)
	}
	if len(toks) > 16 {
		toks = toks[:16]
	}
	page.Tokens = toks
	var start []byte
	if cursor != "" {
		id, err := ulid.ParseStrict(cursor)
		if err != nil {
			return page, Errorf(ErrInvalid, "cursor %q is not one this server issued", cursor)
		}
		start = below(id[:])
		if start == nil {
			return page, nil
		}
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWords)
		lists := make([]*postings, len(toks))
		for i, tok := range toks {
			lists[i] = &postings{c: b.Cursor(), prefix: wordPrefix(tok)}
		}
		var ids [][16]byte
		collect := func(id [16]byte) bool {
			ids = append(ids, id)
			return len(ids) <= limit
		}
		// The total counts from the newest match; the page starts at the cursor.
		page.Total = intersect(lists, nil, func(id [16]byte) bool {
			if start == nil && len(ids) <= limit {
				collect(id)
			}
			return true
		}, MessageSearchCap+1)
		if page.Total > MessageSearchCap {
			page.Total, page.TotalCapped = MessageSearchCap, true
		}
		if start != nil {
			intersect(lists, start, collect, limit+1)
		}
		if len(ids) > limit {
			ids = ids[:limit]
			page.Next = ulid.ULID(ids[limit-1]).String()
		}
		r := newReadTx(tx, s.reads)
		for _, id := range ids {
			m, err := r.message(ulid.ULID(id).String())
			if err != nil {
				return err
			}
			page.Messages = append(page.Messages, m)
		}
		return nil
	})
	return page, err
}

// postings walks one token's message ids.
type postings struct {
	c      *bolt.Cursor
	prefix []byte
}

// atOrBefore returns the largest id in the list that is at most bound
// (the largest of all with a nil bound), or false when there is none.
func (p *postings) atOrBefore(bound []byte) ([16]byte, bool) {
	var id [16]byte
	var k []byte
	if bound == nil {
		k, _ = p.c.Seek(append(append([]byte(nil), p.prefix[:len(p.prefix)-1]...), 1))
	} else {
		k, _ = p.c.Seek(append(append([]byte(nil), p.prefix...), bound...))
		if k != nil && len(k) == len(p.prefix)+16 && bytes.HasPrefix(k, p.prefix) && bytes.Equal(k[len(p.prefix):], bound) {
			copy(id[:], k[len(p.prefix):])
			return id, true
		}
	}
	if k == nil {
		k, _ = p.c.Last()
	} else {
		k, _ = p.c.Prev()
	}
	if k == nil || len(k) != len(p.prefix)+16 || !bytes.HasPrefix(k, p.prefix) {
		return id, false
	}
	copy(id[:], k[len(p.prefix):])
	return id, true
}

// intersect walks the ids every list holds, newest first, from bound
// (inclusive; nil: the newest) by leapfrogging: each list seeks to the
// largest id not above the current candidate, so a rare word skips a
// common one's long runs. It calls emit for each until emit says stop or
// max ids were seen, and returns how many it saw.
func intersect(lists []*postings, bound []byte, emit func([16]byte) bool, max int) int {
	n := 0
	for n < max {
		cand, ok := lists[0].atOrBefore(bound)
		if !ok {
			return n
		}
		agree, i := 1, 1%len(lists)
		for agree < len(lists) {
			x, ok := lists[i].atOrBefore(cand[:])
			if !ok {
				return n
			}
			if x == cand {
				agree++
			} else {
				cand, agree = x, 1
			}
			i = (i + 1) % len(lists)
		}
		n++
		if !emit(cand) {
			return n
		}
		if bound = below(cand[:]); bound == nil {
			return n
		}
	}
	return n
}

// below is the id just before id (big-endian minus one), nil for zero.
func below(id []byte) []byte {
	out := append([]byte(nil), id...)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] > 0 {
			out[i]--
			return out
		}
		out[i] = 0xff
	}
	return nil
}

// ---- conversations: filters, totals, search ----

// Conversation filters.
const (
	FilterUnanswered = "unanswered"
	FilterFailed     = "failed"
)

// Flags kept in a conversation's activity-index entry, so filters and
// totals read the index alone.
const (
	flagUnanswered = 1 << iota
	flagFailed
)

// activityValue is a conversation's entry in conv_activity: a flags byte,
// then "customer business folded-name".
func activityValue(c *Conversation) []byte {
	var f byte
	if c.Unanswered() {
		f |= flagUnanswered
	}
	if c.FailedCount > 0 {
		f |= flagFailed
	}
	v := make([]byte, 0, 1+len(c.Customer)+len(c.Business)+len(c.Name)+2)
	v = append(v, f)
	v = append(append(v, c.Customer...), ' ')
	v = append(append(v, c.Business...), ' ')
	return append(v, words.Fold(c.Name)...)
}

// ConvQuery is what a conversation list asks for; zero lists everything.
type ConvQuery struct {
	// Q is a number (any format, partial digits) or a piece of a name.
	Q string
	// Numbers are more digit forms of Q that match whole (a national
	// number read in the configured region, as international digits).
	Numbers []string
	// Filter is "", FilterUnanswered or FilterFailed.
	Filter string
	// Business keeps one business number's conversations (digits).
	Business string
}

// ConvPage is one page of conversations, most recent activity first.
type ConvPage struct {
	Conversations []*Conversation
	Next          string // cursor of the next page, empty on the last
	Total         int    // every conversation matching, on all pages
}

// FindConversations pages the conversations matching q, most recent
// activity first, with their total. cursor is the previous page's Next.
func (s *Store) FindConversations(q ConvQuery, limit int, cursor string) (ConvPage, error) {
	var page ConvPage
	if limit <= 0 || limit > 500 {
		return page, Errorf(ErrInvalid, "limit must be between 1 and 500")
	}
	switch q.Filter {
	case "", FilterUnanswered, FilterFailed:
	default:
		return page, Errorf(ErrInvalid, "filter %q: must be %q or %q", q.Filter, FilterUnanswered, FilterFailed)
	}
	var start []byte
	if cursor != "" {
		var err error
		start, err = hex.DecodeString(cursor)
		if err != nil || len(start) < 9 {
			return page, Errorf(ErrInvalid, "cursor %q is not one this server issued", cursor)
		}
	}
	digits, lower := parseQuery(q.Q)
	var alts [][]byte
	for _, n := range q.Numbers {
		if n = NormalizeNumber(n); n != "" && n != digits {
			alts = append(alts, []byte(n))
		}
	}
	business := NormalizeNumber(q.Business)
	all := digits == "" && lower == "" && q.Filter == "" && business == ""
	var want byte
	switch q.Filter {
	case FilterUnanswered:
		want = flagUnanswered
	case FilterFailed:
		want = flagFailed
	}
	match := func(v []byte) bool {
		if len(v) == 0 {
			return false
		}
		if want != 0 && v[0]&want == 0 {
			return false
		}
		text := v[1:]
		if business != "" && !bytes.Equal(numberField(text, 1), []byte(business)) {
			return false
		}
		if digits == "" && lower == "" {
			return true
		}
		if matchQuery(text, digits, lower) {
			return true
		}
		for _, a := range alts {
			if bytes.Contains(numberField(text, 0), a) {
				return true
			}
		}
		return false
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		r := readTx{tx: tx}
		c := tx.Bucket(bucketConvActivity).Cursor()
		if all {
			page.Total = int(u64(tx.Bucket(bucketCounters).Get([]byte(counterConversations))))
		}
		onPage := start == nil
		k, v := c.Last()
		if all && start != nil {
			// Nothing to count: go straight to the page.
			k, v = c.Seek(start)
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && bytes.Compare(k, start) >= 0 {
				k, v = c.Prev()
			}
		}
		for ; k != nil; k, v = c.Prev() {
			if !onPage && bytes.Compare(k, start) < 0 {
				onPage = true
			}
			if !match(v) {
				continue
			}
			if !all {
				page.Total++
			}
			if !onPage || page.Next != "" {
				continue
			}
			if len(page.Conversations) == limit {
				page.Next = hex.EncodeToString(page.Conversations[limit-1].activityKey())
				if all {
					return nil // the total is known; nothing more to count
				}
				continue
			}
			cv, err := r.conversation(string(k[8:]))
			if err != nil {
				return err
			}
			page.Conversations = append(page.Conversations, cv)
		}
		return nil
	})
	return page, err
}

// numberField is the i-th space-separated field of an activity entry's
// text (0: customer, 1: business).
func numberField(text []byte, i int) []byte {
	for ; i > 0; i-- {
		j := bytes.IndexByte(text, ' ')
		if j < 0 {
			return nil
		}
		text = text[j+1:]
	}
	if j := bytes.IndexByte(text, ' '); j >= 0 {
		return text[:j]
	}
	return text
}

// Businesses lists the business numbers that have conversations, with how
// many each, in number order.
func (s *Store) Businesses() ([]BusinessCount, error) {
	var out []BusinessCount
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCounters).Cursor()
		p := []byte(counterBusiness)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if n := u64(v); n > 0 {
				out = append(out, BusinessCount{Number: strings.TrimPrefix(string(k), counterBusiness), Conversations: int(n)})
			}
		}
		return nil
	})
	return out, err
}

// BusinessCount is one business number and its number of conversations.
type BusinessCount struct {
	Number        string
	Conversations int
}

// checkWords verifies the text index both ways: every word of every
// message is there, and every entry names a message that holds that word.
func checkWords(tx *bolt.Tx, add addFunc) {
	wb, msgs := tx.Bucket(bucketWords), tx.Bucket(bucketMessages)
	n := 0
	_ = msgs.ForEach(func(k, v []byte) error {
		var m Message
		if decode(v, &m) != nil {
			return nil // checkMessages reports it
		}
		id, err := ulid.ParseStrict(m.ID)
		if err != nil {
			return nil
		}
		for _, tok := range messageTokens(&m) {
			if wb.Get(wordKey(tok, id)) == nil {
				add("msg_words: message %s lacks word %q", m.ID, tok)
			} else {
				n++
			}
		}
		return nil
	})
	if total := wb.Stats().KeyN; total != n {
		// More entries than the messages' words found: some entry names a
		// message that is gone or no longer holds that word.
		_ = wb.ForEach(func(k, _ []byte) error {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) != i+17 {
				add("msg_words: malformed key %q", k)
				return nil
			}
			var id ulid.ULID
			copy(id[:], k[i+1:])
			v := msgs.Get([]byte(id.String()))
			var m Message
			if v == nil || decode(v, &m) != nil || !slices.Contains(messageTokens(&m), string(k[:i])) {
				add("msg_words: %q names message %s, which does not hold it", k[:i], id)
			}
			return nil
		})
	}
}
