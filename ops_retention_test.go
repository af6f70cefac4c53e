package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/config"
	"imchannel/metrics"
	"imchannel/store"
)

// The retention worker, as serve runs it, purges messages older than
// [retention] days at start and leaves newer ones and a clean file.
func TestOpsRetentionWorker(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2024, 1, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st, err := store.Open(filepath.Join(t.TempDir(), "imchannel.db"), store.Options{Now: clock})
	require.NoError(t, err)
	defer st.Close()
	prefill(t, st, 120)
	mu.Lock()
	now = now.Add(40 * 24 * time.Hour)
	mu.Unlock()
	fresh, err := st.SaveInbound(context.Background(), []*store.Message{{Provider: store.ProviderInfobip,
		ExternalID: "fresh", From: "31600000001", To: opsBusinessNum, Type: store.TypeText, Text: "new"}})
	require.NoError(t, err)

	cfg := config.Default()
	cfg.Retention.Days = 30
	logs := &opsBuffer{}
	a := &app{cfg: cfg, log: slog.New(slog.NewTextHandler(logs, nil)), store: st, metrics: metrics.New()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.retentionWorker(ctx) }()
	// The pass is over when it reports; the counter reaches 1 a little
	// before that, while the pass still tidies up.
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "messages=120") }, 20*time.Second, 10*time.Millisecond)
	cancel()
	<-done
	require.Empty(t, st.Check())
	m, err := st.Message(fresh[0].MessageID)
	require.NoError(t, err)
	require.Equal(t, "new", m.Text)
	s, err := st.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(1), s.Conversations)

	// The worker is only scheduled when retention is on.
	off := &app{cfg: config.Default(), log: slog.New(slog.NewTextHandler(io.Discard, nil)), store: st, metrics: metrics.New()}
	require.Len(t, a.workers(), len(off.workers())+1)
}
