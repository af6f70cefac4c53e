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

// downloadLog remembers the last few whole streams by id, for a day: long
// enough for any check, small enough that nothing grows.
type downloadLog struct {
	mu      sync.Mutex
	entries []download
}

type download struct {
	id   string
	at   time.Time
	size int64
}

const (
	downloadsKept = 16
	downloadTTL   = 24 * time.Hour
)

func (l *downloadLog) add(id string, at time.Time, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, download{id, at, size})
	if len(l.entries) > downloadsKept {
		l.entries = l.entries[len(l.entries)-downloadsKept:]
	}
}

// take returns and forgets the download with id, if it is known and recent.
func (l *downloadLog) take(id string, now time.Time) (download, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, d := range l.entries {
		if d.id == id && now.Sub(d.at) < downloadTTL {
			l.entries = append(l.entries[:i], l.entries[i+1:]...)
			return d, true
		}
	}
	return download{}, false
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
	d, ok := a.downloads.take(req.ID, time.Now())
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
