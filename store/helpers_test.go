package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	business = "1234"
	customer = "31612345678"
)

// openTemp opens a store on a fresh file in t.TempDir and closes it at the
// end of the test.
func openTemp(t *testing.T, opts Options) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "imchannel.db"), opts)
}

func openAt(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// inbound is a seed-000-shaped text message from the customer.
func inbound(ext, from, text string) *Message {
	return &Message{
		Provider:   ProviderInfobip,
		ExternalID: ext,
		From:       from,
		To:         business,
		Type:       TypeText,
		Text:       text,
		ReceivedAt: time.Date(2019, 7, 19, 11, 21, 27, 861e6, time.UTC),
	}
}

// outbound is an agent's text to the customer.
func outbound(ext, to, text string) *Message {
	return &Message{
		Provider:   ProviderInfobip,
		ExternalID: ext,
		From:       business,
		To:         to,
		Type:       TypeText,
		Text:       text,
	}
}

func saveOne(t *testing.T, s *Store, m *Message) Result {
	t.Helper()
	rs, err := s.SaveInbound(context.Background(), []*Message{m})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	return rs[0]
}

// hostTemplate stores data as the hosted header of a new template message
// (QueueWithHosted), as the template endpoint does, and returns the media.
func hostTemplate(t *testing.T, s *Store, ext string, data []byte, contentType, fileName string) *Media {
	t.Helper()
	h, err := s.NewHostedMedia(data, contentType, fileName)
	require.NoError(t, err)
	m := outbound(ext, customer, "")
	m.Type = TypeTemplate
	m.Outbound = &OutboundSpec{TemplateName: "offer", HeaderMedia: h.Media.ID}
	_, err = s.QueueWithHosted(context.Background(), m, h, QueueOptions{})
	require.NoError(t, err)
	md, err := s.Media(h.Media.ID)
	require.NoError(t, err)
	return md
}

func queueOne(t *testing.T, s *Store, m *Message) Result {
	t.Helper()
	rs, err := s.QueueOutbound(context.Background(), []*Message{m}, QueueOptions{})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	return rs[0]
}

func mustMessage(t *testing.T, s *Store, id string) *Message {
	t.Helper()
	m, err := s.Message(id)
	require.NoError(t, err)
	return m
}

func mustConversation(t *testing.T, s *Store, id string) *Conversation {
	t.Helper()
	c, err := s.Conversation(id)
	require.NoError(t, err)
	return c
}

// requireClean fails the test with Check's findings.
func requireClean(t *testing.T, s *Store) {
	t.Helper()
	require.Empty(t, s.Check(), "store invariants")
}

// allMessages reads a whole conversation, oldest first, through the pager.
func allMessages(t *testing.T, s *Store, convID string) []*Message {
	t.Helper()
	var out []*Message
	before := ""
	for i := 0; ; i++ {
		require.Less(t, i, 10000, "pager does not end")
		page, next, err := s.ConversationMessages(convID, 7, before)
		require.NoError(t, err)
		out = append(page, out...)
		if next == "" {
			return out
		}
		before = next
	}
}

func ids(ms []*Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func at(sec int) time.Time {
	return time.Date(2024, 5, 1, 12, 0, sec, 0, time.UTC)
}

func extID(i int) string { return fmt.Sprintf("wamid.%06d", i) }

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
