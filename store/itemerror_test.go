package store

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

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
			require.True(t, errors.As(err, &ie), "%v", err)
			require.Equal(t, 1, ie.Index)
			require.ErrorIs(t, err, c.kind)
			require.Contains(t, err.Error(), "message 1: ")
		})
	}
}
