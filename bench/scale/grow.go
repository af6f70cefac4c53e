package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"imchannel/store"
)

// grower adds messages to the file between steps. Its state (which
// conversation said what last) lives across steps, so replies keep quoting
// messages of their own thread.
type grower struct {
	path string
	rnd  *rand.Rand
	n    int   // messages generated so far
	last []int // per conversation: index of its latest message, -1 none
	base time.Time
}

func newGrower(path string) *grower {
	return &grower{path: path, rnd: rand.New(rand.NewPCG(16, 16)),
		base: time.Now().Add(-400 * 24 * time.Hour)}
}

// customersAt is how many customers a file of n messages has: 10,000 up to
// 1M messages, then one per 100 messages, at most 100,000.
func customersAt(n int) int { return min(100_000, max(10_000, n/100)) }

var (
	names = []string{"Frank", "Aïcha", "Bob", "Marta", "Jan de Vries", "Yusuf", "Lena", "Pieter", "Sofia", ""}
	words = []string{"hello", "order", "delivery", "where", "is", "my", "parcel", "please", "thanks", "invoice",
		"refund", "today", "tomorrow", "help", "account", "number", "the", "can", "you", "check", "status", "still"}
	businesses = []string{"3120123456", "3130765432", "1234"}
)

func customer(c int) string { return fmt.Sprintf("316%08d", 10_000_000+c*7919%90_000_000) }

// extID looks like a provider's id: random to the ext index, as real ones are.
func extID(i int) string {
	h := uint64(i)*0x9E3779B97F4A7C15 ^ 0xD1B54A32D192ED03
	return fmt.Sprintf("wamid.HBgL%016x%08d", h, i)
}

// growTo bulk-loads messages until the store counts target of them. The
// mix: 1% of customers are busy (a tenth of all messages, so threads of
// hundreds); per message 56% inbound text, 30% our replies (sent, then a
// delivered and a seen report in their timeline), 7% inbound images (a
// media reference; the bytes are not fetched), 7% inbound quoting the
// thread's previous message.
func (g *grower) growTo(ctx context.Context, st *store.Store, target int) error {
	have := int(st.Counter("messages"))
	if have >= target {
		return nil
	}
	custs := customersAt(target)
	for len(g.last) < custs {
		g.last = append(g.last, -1)
	}
	busy := max(1, custs/100)
	const batch = 20000
	pending := make([]*store.Message, 0, batch)
	for left := target - have; left > 0; left-- {
		var c int
		if g.rnd.IntN(10) == 0 {
			c = g.rnd.IntN(busy)
		} else {
			c = busy + g.rnd.IntN(custs-busy)
		}
		i := g.n
		g.n++
		at := g.base.Add(time.Duration(i) * 3 * time.Second)
		var text strings.Builder
		for w := 2 + g.rnd.IntN(20); w > 0; w-- {
			text.WriteString(words[g.rnd.IntN(len(words))])
			text.WriteByte(' ')
		}
		m := &store.Message{Provider: store.ProviderInfobip, ExternalID: extID(i), Type: store.TypeText,
			Text: strings.TrimSpace(text.String())}
		switch r := g.rnd.IntN(100); {
		case r < 30:
			m.Direction, m.From, m.To = store.Outbound, businesses[c%3], customer(c)
			m.Status = store.StatusSeen
			m.Timeline = []store.Event{{Status: store.StatusQueued, At: at}, {Status: store.StatusSent, At: at.Add(time.Second)},
				{Status: store.StatusDelivered, At: at.Add(2 * time.Second), GroupName: "DELIVERED", Name: "DELIVERED_TO_HANDSET"},
				{Status: store.StatusSeen, At: at.Add(9 * time.Second)}}
		default:
			m.Direction, m.From, m.To = store.Inbound, customer(c), businesses[c%3]
			m.ContactName = names[c%len(names)]
			m.ReceivedAt = at
			switch {
			case r < 37:
				m.Type, m.Text, m.Caption = store.TypeImage, "", "photo "+strconv.Itoa(i)
				m.Media = &store.Media{State: store.MediaFailed, Error: "bench: not fetched", ContentType: "image/jpeg",
					SourceURL: "https://api.infobip.com/whatsapp/1/senders/" + businesses[c%3] + "/media/" + extID(i)}
			case r < 44 && g.last[c] >= 0:
				m.ReplyTo = &store.ReplyRef{ExternalID: extID(g.last[c])}
			}
		}
		g.last[c] = i
		pending = append(pending, m)
		if len(pending) == batch || left == 1 {
			if err := st.BulkLoad(ctx, pending); err != nil {
				return fmt.Errorf("bulk load: %w", err)
			}
			pending = pending[:0]
		}
	}
	return nil
}

// openGrowing opens the file with a clock that walks forward from a year
// ago, so grown messages are older than what serve stores later.
func (g *grower) open() (*store.Store, error) {
	var tick atomic.Int64
	start := g.base.Add(time.Duration(g.n) * 3 * time.Second)
	return store.Open(g.path, store.Options{Now: func() time.Time {
		return start.Add(time.Duration(tick.Add(1)) * time.Millisecond)
	}})
}

// pageTargets picks what the agents open: the 20 largest conversations
// with at least 200 messages (the largest ones when no thread is that long,
// as in a quick run) and 50 customer numbers.
func pageTargets(st *store.Store) (big, numbers []string, err error) {
	var all []*store.Conversation
	cursor := ""
	for {
		cs, next, err := st.ListConversations("", 500, cursor)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, cs...)
		if next == "" {
			break
		}
		cursor = next
	}
	for _, c := range all[:min(50, len(all))] {
		numbers = append(numbers, c.Customer)
	}
	slices.SortFunc(all, func(a, b *store.Conversation) int { return b.MessageCount - a.MessageCount })
	for _, c := range all[:min(20, len(all))] {
		if c.MessageCount >= 200 || len(big) < 5 {
			big = append(big, c.ID)
		}
	}
	return big, numbers, nil
}
