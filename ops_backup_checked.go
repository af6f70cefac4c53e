package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"imchannel/httpx"
	"imchannel/store"
)

// "Last backup" (status page, metrics, the schedule) counts only backups
// that were written and checked: the scheduled ones, and `backup --url`
// once it has checked its file. A bare GET /admin/backup (a browser, curl)
// is a download: nobody is known to have kept it, so it is recorded apart
// as "last download". Each stream carries an id; `backup --url` sends it
// back to POST /admin/backup/checked after its check passes.

// backupIDHeader names the id of one /admin/backup stream.
const backupIDHeader = "X-Imchannel-Backup-Id"

// downloadLog remembers the last few streams by id, for a day: long
// enough for any check, small enough that nothing grows. A stream is noted
// when it starts, so that a client which has read its last byte, checked
// the file and confirmed it before the handler has got round to noting its
// end (a small file is checked in a millisecond) waits for that end
// instead of getting "no such download".
type downloadLog struct {
	mu      sync.Mutex
	entries []*download
}

type download struct {
	id   string
	at   time.Time
	done chan struct{} // closed when the stream has ended
	// Set before done is closed.
	size  int64
	whole bool // every byte was written
}

const (
	downloadsKept = 16
	downloadTTL   = 24 * time.Hour
	// How long a confirmation waits for its stream to end. The client has
	// read every byte by then, so the end is a moment away.
	downloadEndWait = time.Minute
)

// begin notes a stream with id that starts at at; end it with end.
func (l *downloadLog) begin(id string, at time.Time) *download {
	d := &download{id: id, at: at, done: make(chan struct{})}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, d)
	if len(l.entries) > downloadsKept {
		l.entries = l.entries[len(l.entries)-downloadsKept:]
	}
	return d
}

// end says how the stream ended: size bytes, whole or cut off.
func (d *download) end(size int64, whole bool) {
	d.size, d.whole = size, whole
	close(d.done)
}

// take waits for the stream with id to end (at most until ctx is done) and
// returns and forgets it when it is known, recent and was whole.
func (l *downloadLog) take(ctx context.Context, id string, now time.Time) (download, bool) {
	l.mu.Lock()
	var d *download
	for _, e := range l.entries {
		if e.id == id && now.Sub(e.at) < downloadTTL {
			d = e
			break
		}
	}
	l.mu.Unlock()
	if d == nil {
		return download{}, false
	}
	select {
	case <-d.done:
	case <-ctx.Done():
		return download{}, false
	}
	if !d.whole {
		return download{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.entries {
		if e == d {
			l.entries = append(l.entries[:i], l.entries[i+1:]...)
			return download{id: d.id, at: d.at, size: d.size, whole: true}, true
		}
	}
	return download{}, false // taken meanwhile by another confirmation
}

// serveBackupChecked is POST /admin/backup/checked {"id": "…"}: the client
// wrote the stream with that id to a file and it passed every check, so it
// is now the last backup (at the time the stream started).
func (a *app) serveBackupChecked(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID string `json:"id"`
	}
	if err := httpx.DecodeJSON(w, r, httpx.SmallBody, &req); err != nil {
		httpx.WriteError(w, r, a.log, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), downloadEndWait)
	d, ok := a.downloads.take(ctx, req.ID, time.Now())
	cancel()
	if !ok {
		httpx.WriteError(w, r, a.log, store.Errorf(store.ErrNotFound, "no recent /admin/backup download with id %q", req.ID))
		return
	}
	if err := a.store.RecordBackup(r.Context(), d.at, d.size); err != nil {
		httpx.WriteError(w, r, a.log, err)
		return
	}
	a.log.Info("backup checked by its client", "component", "backup", "bytes", d.size)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"recorded": true, "at": d.at.UTC(), "size": d.size})
}

// confirmBackup tells the service that the stream with id was written and
// checked (backup --url), so that it counts as the last backup.
func confirmBackup(ctx context.Context, backup *url.URL, user, password, id string) error {
	u := *backup
	u.Path = strings.TrimSuffix(u.Path, "/") + "/checked"
	body, _ := json.Marshal(map[string]string{"id": id})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s answered %s: %s", u.Redacted(), resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
