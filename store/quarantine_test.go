package store

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// A quarantined item is kept once per route and content: a resend counts
// on it; the same bytes from another route are another item; raw that is
// not JSON is kept as a JSON string; check sees the hash index.
func TestQuarantineDedupeAndList(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	q := func(route, raw string) Quarantined {
		return Quarantined{Provider: ProviderCM, Route: route, Reason: "reference is required", Raw: json.RawMessage(raw)}
	}
	r, err := s.IngestPost(ctx, Post{Quarantine: []Quarantined{q("/webhooks/cm", `{"a":1}`), q("/webhooks/cm", `{"a":1}`)}})
	require.NoError(t, err)
	require.Equal(t, 1, r.QuarantineDups, "the second copy in one post is a resend")
	dups, err := s.QuarantineItems(ctx, []Quarantined{q("/webhooks/cm/status", `{"a":1}`), q("/webhooks/cm", `not json <`)})
	require.NoError(t, err)
	require.Zero(t, dups)
	items, next, err := s.Quarantine(10, "")
	require.NoError(t, err)
	require.Empty(t, next)
	require.Len(t, items, 3)
	require.Equal(t, 3, s.QuarantineCount())
	require.Equal(t, uint64(3), s.Counter(counterQuarantined))
	require.JSONEq(t, `"not json <"`, string(items[0].Raw))
	require.Equal(t, 2, items[2].Count)
	require.True(t, items[2].LastAt.Equal(items[2].At) || items[2].LastAt.After(items[2].At))
	require.Empty(t, s.Check())

	_, err = s.QuarantineItems(ctx, []Quarantined{{Route: "/x", Raw: json.RawMessage(`{}`)}})
	require.ErrorIs(t, err, ErrInvalid, "a reason is required")
}
