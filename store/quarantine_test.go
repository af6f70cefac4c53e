package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

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
	r, err = s.IngestPost(ctx, Post{Quarantine: []Quarantined{q("/webhooks/cm/status", `{"a":1}`), q("/webhooks/cm", `not json <`)}})
	require.NoError(t, err)
	require.Zero(t, r.QuarantineDups)
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

	_, err = s.IngestPost(ctx, Post{Quarantine: []Quarantined{{Route: "/x", Raw: json.RawMessage(`{}`)}}})
	require.ErrorIs(t, err, ErrInvalid, "a reason is required")
}

// Erasing a customer removes the quarantined items holding their number
// (not one holding a longer number that contains it); retention drops
// items last seen before its cutoff.
func TestQuarantineErasureAndRetention(t *testing.T) {
	s := openTemp(t, Options{})
	ctx := context.Background()
	q := func(raw string) Quarantined {
		return Quarantined{Provider: ProviderCM, Route: "/webhooks/cm", Reason: "r", Raw: json.RawMessage(raw)}
	}
	_, err := s.IngestPost(ctx, Post{Quarantine: []Quarantined{
		q(`{"from":{"number":"+31612345678"},"text":"mine"}`),
		q(`{"from":{"number":"0031612345678"}}`),
		q(`{"from":{"number":"316123456789"}}`),
		q(`{"from":{"number":"31699999999"}}`),
	}})
	require.NoError(t, err)
	_, err = s.EraseNumber(ctx, "+31 6 12345678")
	require.NoError(t, err)
	items, _, err := s.Quarantine(10, "")
	require.NoError(t, err)
	require.Len(t, items, 2)
	for _, it := range items {
		require.NotContains(t, []string{`{"from":{"number":"+31612345678"},"text":"mine"}`, `{"from":{"number":"0031612345678"}}`}, string(it.Raw))
	}
	require.Empty(t, s.Check())

	res, err := s.PurgeBefore(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 2, res.Quarantine)
	require.Zero(t, s.QuarantineCount())
	require.Empty(t, s.Check())
}
