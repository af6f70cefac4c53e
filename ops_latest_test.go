package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// After each scheduled backup imchannel-latest.db is the newest backup
// itself (a hard link, the same inode), checked, and pruning older
// backups never touches it.
func TestOpsLatestLink(t *testing.T) {
	ctx := context.Background()
	clk := &opsClock{t: time.Date(2024, 6, 1, 3, 0, 0, 0, time.UTC)}
	now := clk.now
	st, err := store.Open(filepath.Join(t.TempDir(), "imchannel.db"), store.Options{Now: now})
	require.NoError(t, err)
	defer st.Close()
	dir := filepath.Join(t.TempDir(), "backups")
	latest := filepath.Join(dir, latestName)

	// A temp link a crash left behind an hour ago is cleaned up.
	require.NoError(t, os.MkdirAll(dir, 0o700))
	stale := filepath.Join(dir, "."+latestName+".tmp-imchannel-20240101T000000Z.db")
	require.NoError(t, os.WriteFile(stale, []byte("crashed"), 0o600))
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))

	for i := range 3 {
		_, err := st.SaveInbound(ctx, []*store.Message{{Provider: store.ProviderInfobip,
			ExternalID: fmt.Sprintf("latest-%d", i), From: opsCustomerNum1, To: opsBusinessNum,
			Type: store.TypeText, Text: "hello"}})
		require.NoError(t, err)
		path, _, err := scheduledBackup(ctx, st, dir, 2)
		require.NoError(t, err)
		a, err := os.Stat(path)
		require.NoError(t, err)
		b, err := os.Stat(latest)
		require.NoError(t, err)
		require.True(t, os.SameFile(a, b), "run %d: %s is %s", i, latestName, path)
		problems, err := checkFile(latest)
		require.NoError(t, err)
		require.Empty(t, problems)
		require.Equal(t, i+1, messageCount(t, latest), "run %d: the newest data", i)
		clk.add(time.Hour)
	}
	require.ElementsMatch(t, []string{"imchannel-20240601T040000Z.db", "imchannel-20240601T050000Z.db", latestName},
		dirNames(t, dir), "keep 2 plus the link; the stale temp link is gone")
}

// A backup that fails its check never becomes imchannel-latest.db.
func TestOpsLatestLinkOnlyChecked(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "imchannel-20240601T040000Z.db")
	require.NoError(t, os.WriteFile(good, []byte("first"), 0o600))
	require.NoError(t, linkLatest(dir, good))
	// scheduledBackup on a closed store: backupOnce fails before writing.
	st, err := store.Open(filepath.Join(t.TempDir(), "imchannel.db"), store.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	path, _, err := scheduledBackup(context.Background(), st, dir, 2)
	require.Error(t, err)
	require.Empty(t, path)
	b, err := os.ReadFile(filepath.Join(dir, latestName))
	require.NoError(t, err)
	require.Equal(t, "first", string(b), "the previous backup is still the latest")

	// A copy that is written but fails its check: writeChecked refuses it
	// and leaves nothing under the final name, so backupOnce returns no
	// path and scheduledBackup never links it.
	bad := filepath.Join(dir, "imchannel-20240601T050000Z.db")
	_, err = writeChecked(bad, func(w io.Writer) error {
		_, err := w.Write(make([]byte, 8192)) // zero pages: not a bbolt file
		return err
	})
	require.ErrorIs(t, err, errCheckFailed)
	require.NoFileExists(t, bad)
	b, err = os.ReadFile(filepath.Join(dir, latestName))
	require.NoError(t, err)
	require.Equal(t, "first", string(b))
}
