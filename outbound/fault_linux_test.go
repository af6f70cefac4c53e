//go:build linux

package outbound_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// countHandler counts log records whose message contains substr.
type countHandler struct {
	substr string
	n      *atomic.Int64
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.substr) {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

const unlimited = ^uint64(0) // RLIM_INFINITY

// setFileSizeLimit sets this process's RLIMIT_FSIZE: writes at or beyond
// limit fail with EFBIG (Go ignores SIGXFSZ), so with 8192 only bbolt's
// two meta pages stay writable and no transaction can commit.
func setFileSizeLimit(t *testing.T, limit uint64) {
	t.Helper()
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: unlimited}))
}

// A message the provider accepted is not sent again when recording the
// acceptance fails (the disk refuses writes): the dispatcher keeps trying
// to record it, and once the disk recovers the message is sent, having
// reached the provider exactly once.
func TestAcceptedNotResentWhenRecordingFails(t *testing.T) {
	var limited atomic.Bool
	t.Cleanup(func() {
		if limited.Load() {
			setFileSizeLimit(t, unlimited)
		}
	})
	prov := newFake(t, func(n int, b []byte) (int, http.Header, string) {
		if n == 0 {
			// The provider takes the message; from now on writes fail.
			limited.Store(true)
			setFileSizeLimit(t, 8192)
		}
		return infobipOK(n, b)
	})
	var failures atomic.Int64
	e := newEnv(t, testConfig("infobip", prov.URL), prov)
	e.log = slog.New(countHandler{substr: "recording the send outcome failed", n: &failures})
	e.send(text("ack-1", "41793026727", "hello"))
	e.dispatch()
	require.Eventually(t, func() bool { return failures.Load() >= 5 }, 10*time.Second, time.Millisecond,
		"the dispatcher keeps trying to record the acceptance")
	require.Equal(t, []string{"ack-1"}, destinationIDs(t, prov.requests()), "an accepted message is not sent again")

	setFileSizeLimit(t, unlimited)
	limited.Store(false)
	m := e.waitStatus("ack-1", store.StatusSent)
	require.Equal(t, []string{"ib-ack-1"}, m.Aliases)
	require.Equal(t, []string{"ack-1"}, destinationIDs(t, prov.requests()))
	require.Equal(t, 0, e.outboxDepth())
	require.Empty(t, e.st.Check())
}
