package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// BulkLoad keeps the status each message comes with; the counters and the
// conversation's failed count must agree with it, as Check verifies.
func TestBulkLoadKeepsCountersConsistent(t *testing.T) {
	cases := []struct {
		name   string
		status string
		failed uint64
	}{
		{"queued", StatusQueued, 0},
		{"delivered", StatusDelivered, 0},
		{"failed", StatusFailed, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t, Options{})
			in := inbound("in-1", customer, "hi")
			in.Direction = Inbound
			out := outbound("out-1", customer, "hello")
			out.Direction = Outbound
			out.Status = tc.status
			out.Timeline = []Event{{Status: tc.status, At: at(1)}}
			require.NoError(t, s.BulkLoad(context.Background(), []*Message{in, out}))
			require.EqualValues(t, 2, s.Counter(counterMessages))
			require.Equal(t, tc.failed, s.Counter(counterFailedSends))
			requireClean(t, s)
		})
	}
}
