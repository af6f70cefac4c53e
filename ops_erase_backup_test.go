package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// Issue 13 item 3: after DELETE /api/v1/customers/{n} returns, no backup
// taken afterwards by any route — online /admin/backup, backup --url,
// scheduled, backup --db — nor the file `compact` writes contains any byte
// of that customer's data: number, name, texts, captions, media URLs and
// media bytes. The live file still does until it is compacted, and
// `check` says so.
func TestErasedDataInNoBackup(t *testing.T) {
	ctx := context.Background()
	e := opsNewEnv(t)
	st := e.app.store
	const number = "31655507777"
	markers := []string{number, "ERASED-TEXT-MARK", "ERASED-NAME-MARK", "ERASED-CAPTION-MARK", "ERASED-URL-MARK", "ERASED-BYTES-MARK"}
	var msgs []*store.Message
	for i := 0; i < 60; i++ {
		msgs = append(msgs, &store.Message{Provider: store.ProviderInfobip, ExternalID: "ebk-" + strings.Repeat("x", i%7) + string(rune('A'+i%26)) + string(rune('a'+i/26)),
			From: number, To: opsBusinessNum, Type: store.TypeText, ContactName: "ERASED-NAME-MARK", Text: "ERASED-TEXT-MARK " + strings.Repeat("t", i*10)})
	}
	msgs = append(msgs, &store.Message{Provider: store.ProviderInfobip, ExternalID: "ebk-img", From: number, To: opsBusinessNum,
		Type: store.TypeImage, Caption: "ERASED-CAPTION-MARK", Media: &store.Media{SourceURL: "https://origin.example/ERASED-URL-MARK.jpg"}})
	_, err := st.SaveInbound(ctx, msgs)
	require.NoError(t, err)
	img, err := st.MessagesByExternalID("ebk-img")
	require.NoError(t, err)
	_, err = st.MarkMediaFetched(ctx, img[0].Media.ID, store.BytesSource(bytes.Repeat([]byte("ERASED-BYTES-MARK"), 30000)), "image/jpeg", "image/jpeg", nil)
	require.NoError(t, err)
	require.NoError(t, e.postInbound(ctx, e.srv.Client(), "bystander", opsCustomerNum1, "KEPT-TEXT"))

	code, body := e.do(t, http.MethodDelete, "/api/v1/customers/+"+number, nil, asAgent)
	require.Equal(t, 200, code, "%s", body)

	dir := t.TempDir()
	copies := map[string][]byte{}
	// Online: GET /admin/backup.
	code, copies["GET /admin/backup"] = e.do(t, http.MethodGet, "/admin/backup", nil, asAgent)
	require.Equal(t, 200, code)
	// backup --url.
	t.Setenv("IMCHANNEL_USER", opsAgentUser)
	t.Setenv("IMCHANNEL_PASSWORD", opsAgentPass)
	_, se, err := runCLI(ctx, "backup", "--url", e.srv.URL, "--quiet", filepath.Join(dir, "url.db"))
	require.NoError(t, err, se)
	copies["backup --url"] = mustRead(t, filepath.Join(dir, "url.db"))
	// Scheduled.
	path, _, err := backupOnce(ctx, st, filepath.Join(dir, "scheduled"), 3)
	require.NoError(t, err)
	copies["scheduled"] = mustRead(t, path)
	// The live file still holds erased bytes in freed pages until compact.
	live := mustRead(t, st.Path())
	residue := 0
	for _, m := range markers {
		if bytes.Contains(live, []byte(m)) {
			residue++
		}
	}
	require.Positive(t, residue, "the live file shows no residue: this test would prove nothing")

	// Offline: backup --db and compact, with the service stopped.
	db := st.Path()
	require.NoError(t, st.Close())
	so, se, err := runCLI(ctx, "check", "--db", db)
	require.NoError(t, err, se)
	require.Contains(t, so, "freed page(s) still hold old data", "check reports the residue it can see")
	_, se, err = runCLI(ctx, "backup", "--db", db, "--quiet", filepath.Join(dir, "db.db"))
	require.NoError(t, err, se)
	copies["backup --db"] = mustRead(t, filepath.Join(dir, "db.db"))
	_, se, err = runCLI(ctx, "compact", "--db", db, "--quiet", filepath.Join(dir, "compact.db"))
	require.NoError(t, err, se)
	copies["compact"] = mustRead(t, filepath.Join(dir, "compact.db"))

	for route, b := range copies {
		require.NotEmpty(t, b, route)
		for _, m := range markers {
			require.False(t, bytes.Contains(b, []byte(m)), "%s holds %q", route, m)
		}
		require.True(t, bytes.Contains(b, []byte("KEPT-TEXT")), "%s lost the other customer", route)
		p := filepath.Join(dir, "verify-"+strings.NewReplacer(" ", "", "/", "", "-", "").Replace(route)+".db")
		require.NoError(t, os.WriteFile(p, b, 0o600))
		so, se, err := runCLI(ctx, "check", "--db", p)
		require.NoError(t, err, "%s: %s %s", route, so, se)
		if route != "compact" {
			require.NotContains(t, so, "freed page(s)", "%s: a backup has no residue", route)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// Issue 13 item 10: "last backup" (page, metrics, schedule) counts only
// backups that were written and checked; a discarded /admin/backup
// download is shown apart as the last download.
func TestLastBackupOnlyWhenChecked(t *testing.T) {
	ctx := context.Background()
	e := opsNewEnv(t)
	require.NoError(t, e.postInbound(ctx, e.srv.Client(), "lb-1", opsCustomerNum1, "hello"))

	// A download thrown away.
	code, body := e.do(t, http.MethodGet, "/admin/backup", nil, asAgent)
	require.Equal(t, 200, code)
	require.NotEmpty(t, body)
	// The handler records the download once the last byte is written,
	// which may be just after the client has read it.
	require.Eventually(t, func() bool { dl, _ := e.app.store.LastDownload(); return !dl.IsZero() }, 10*time.Second, 5*time.Millisecond)
	_, size := e.app.store.LastDownload()
	require.EqualValues(t, len(body), size)
	at, _ := e.app.store.LastBackup()
	require.True(t, at.IsZero(), "a discarded download is not a backup")
	code, page := e.do(t, http.MethodGet, "/", nil, asAgent)
	require.Equal(t, 200, code)
	require.Contains(t, string(page), `id="ov-backup">never<`)
	require.Contains(t, string(page), `id="ov-download">`)
	code, metrics := e.do(t, http.MethodGet, "/metrics", nil, asAgent)
	require.Equal(t, 200, code)
	require.Contains(t, string(metrics), "\nimchannel_last_backup_timestamp_seconds 0\n")
	require.NotContains(t, string(metrics), "\nimchannel_last_download_timestamp_seconds 0\n")

	// Confirming an id nobody was given, or without credentials, records nothing.
	code, body = e.do(t, http.MethodPost, "/admin/backup/checked", []byte(`{"id":"01HZZZZZZZZZZZZZZZZZZZZZZZ"}`), asAgent)
	require.Equal(t, 404, code, "%s", body)
	code, _ = e.do(t, http.MethodPost, "/admin/backup/checked", []byte(`{"id":"x"}`), nil)
	require.Equal(t, 401, code)
	at, _ = e.app.store.LastBackup()
	require.True(t, at.IsZero())

	// backup --url checks its file, then the service records the backup.
	t.Setenv("IMCHANNEL_USER", opsAgentUser)
	t.Setenv("IMCHANNEL_PASSWORD", opsAgentPass)
	out := filepath.Join(t.TempDir(), "checked.db")
	_, se, err := runCLI(ctx, "backup", "--url", e.srv.URL, "--quiet", out)
	require.NoError(t, err, se)
	require.NotContains(t, se, "warning")
	at, size = e.app.store.LastBackup()
	require.False(t, at.IsZero(), "backup --url, checked, is the last backup")
	require.EqualValues(t, len(mustRead(t, out)), size)
	code, page = e.do(t, http.MethodGet, "/", nil, asAgent)
	require.Equal(t, 200, code)
	require.NotContains(t, string(page), `id="ov-backup">never<`)
}

// A confirmation that comes before the handler has noted the end of its
// stream (the client read the last byte and checked a small file at once;
// TestLastBackupOnlyWhenChecked then failed now and then with "no recent
// /admin/backup download") waits for that end instead of being refused.
// A cut-off stream, an unknown or day-old id, a second confirmation and a
// stream that never ends within the wait are refused.
func TestDownloadLogConfirmBeforeEnd(t *testing.T) {
	ctx := context.Background()
	l := &downloadLog{}
	at := time.Now()
	d := l.begin("s1", at)
	got := make(chan download)
	go func() {
		dl, ok := l.take(ctx, "s1", at)
		if !ok {
			dl.id = "refused"
		}
		got <- dl
	}()
	d.end(100, true)
	dl := <-got
	require.Equal(t, "s1", dl.id)
	require.EqualValues(t, 100, dl.size)
	require.True(t, dl.at.Equal(at))
	_, ok := l.take(ctx, "s1", at)
	require.False(t, ok, "confirmed once only")

	l.begin("s2", at).end(10, false)
	_, ok = l.take(ctx, "s2", at)
	require.False(t, ok, "a cut-off stream is no backup")
	_, ok = l.take(ctx, "unknown", at)
	require.False(t, ok)
	l.begin("s3", at.Add(-25*time.Hour)).end(1, true)
	_, ok = l.take(ctx, "s3", at)
	require.False(t, ok, "older than a day")

	l.begin("s4", at) // never ends
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, ok = l.take(done, "s4", at)
	require.False(t, ok, "the wait ends with the request")
}
