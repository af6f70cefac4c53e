package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"imchannel/store"
)

// errCheckFailed marks a copy that was written but failed its check.
var errCheckFailed = errors.New("copy failed its check")

// writeChecked writes a database copy to a temp file beside out, fsyncs
// it, runs every check `imchannel check` runs on it, and only then renames
// it to out and fsyncs the directory. A copy that fails is deleted: out is
// either the previous file or a checked new one, never a broken one.
func writeChecked(out string, write func(w io.Writer) error) (int64, error) {
	var size int64
	err := store.WriteFileAtomic(out, write, func(tmp string) error {
		st, err := os.Stat(tmp)
		if err != nil {
			return err
		}
		size = st.Size()
		problems, err := checkFile(tmp)
		if err != nil {
			return fmt.Errorf("%w: %v", errCheckFailed, err)
		}
		if len(problems) > 0 {
			return fmt.Errorf("%w (%d problem(s), first: %s); %s was not written", errCheckFailed, len(problems), problems[0], out)
		}
		return nil
	})
	return size, err
}

// backupURL turns the --url argument into the /admin/backup URL and the
// credentials it may carry (which are then removed from it, so no error
// message can show them).
func backupURL(raw string) (*url.URL, *url.Userinfo, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("--url %q must be http://HOST:PORT or https://HOST:PORT", redactURL(raw))
	}
	ui := u.User
	u.User = nil
	if !strings.HasSuffix(u.Path, "/admin/backup") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/admin/backup"
	}
	u.RawQuery, u.Fragment = "", ""
	return u, ui, nil
}

// redactURL drops user info from a URL string for messages.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + raw[i+1:]
		}
	}
	return raw
}

// fetchBackup streams GET /admin/backup into w. The server sends the exact
// size as Content-Length; a shorter stream is an error. *id gets the
// stream's id, for confirmBackup once the file is checked.
func fetchBackup(ctx context.Context, u *url.URL, user, password string, w io.Writer, prog *progress, id *string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Minute,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized && user == "" && password == "" {
			msg += " (set IMCHANNEL_USER and IMCHANNEL_PASSWORD to an agent login)"
		}
		return fmt.Errorf("backup: %s answered %s: %s", u.Redacted(), resp.Status, msg)
	}
	*id = resp.Header.Get(backupIDHeader)
	prog.begin(resp.ContentLength)
	n, err := io.Copy(prog.writer(w), resp.Body)
	if err != nil {
		return fmt.Errorf("backup: stream cut off after %d bytes: %w", n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("backup: stream cut off after %d of %d bytes", n, resp.ContentLength)
	}
	prog.finish()
	return nil
}

// ---- scheduled backups ----

// backupName is a scheduled backup's file name; the time sorts as text.
const backupLayout = "20060102T150405Z"

var backupFile = regexp.MustCompile(`^imchannel-\d{8}T\d{6}Z\.db$`)

// backupOnce writes one checked backup into dir, records it, and prunes
// the directory to keep files. Only files named like scheduled backups are
// ever removed.
func backupOnce(ctx context.Context, st *store.Store, dir string, keep int) (string, int64, error) {
	if err := store.MkdirAll(dir, 0o700); err != nil {
		return "", 0, fmt.Errorf("backup dir: %w", err)
	}
	at := st.Now().UTC()
	out := filepath.Join(dir, "imchannel-"+at.Format(backupLayout)+".db")
	size, err := writeChecked(out, func(w io.Writer) error {
		_, err := st.Backup(store.PacedWriter(ctx, w, store.DefaultBackupRate))
		return err
	})
	if err != nil {
		return "", 0, err
	}
	if err := st.RecordBackup(ctx, at, size); err != nil {
		return out, size, fmt.Errorf("record backup: %w", err)
	}
	return out, size, pruneBackups(dir, keep)
}

// pruneBackups removes the oldest scheduled backups beyond keep, and temp
// files a crash left behind.
func pruneBackups(dir string, keep int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	var errs []error
	for _, e := range entries {
		switch n := e.Name(); {
		case backupFile.MatchString(n):
			names = append(names, n)
		case strings.HasPrefix(n, ".imchannel-") && strings.Contains(n, ".db.tmp-"):
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
				errs = append(errs, os.Remove(filepath.Join(dir, n)))
			}
		}
	}
	sort.Strings(names)
	for len(names) > keep {
		errs = append(errs, os.Remove(filepath.Join(dir, names[0])))
		names = names[1:]
	}
	return errors.Join(errs...)
}

// backupWorker writes a backup every [backup] interval into [backup] dir.
// The schedule follows the last recorded backup, so a restart does not
// reset it, and a service that was down past its time backs up at once.
func (a *app) backupWorker(ctx context.Context) {
	c := a.cfg.Backup
	log := a.log.With("component", "backup")
	for {
		last, _ := a.store.LastBackup()
		wait := time.Until(last.Add(c.Interval.Duration))
		if last.IsZero() || wait < 0 {
			wait = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		start := time.Now()
		path, size, err := scheduledBackup(ctx, a.store, c.Dir, c.Keep)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Error("scheduled backup failed", "err", err)
			// Try again after a while rather than spinning on a full disk.
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(c.Interval.Duration, 10*time.Minute)):
			}
			continue
		}
		log.Info("scheduled backup written", "path", path, "bytes", size, "ms", time.Since(start).Milliseconds())
	}
}
