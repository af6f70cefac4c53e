package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/config"
	"imchannel/store"
)

// prefill stores n inbound messages directly, in batches.
func prefill(t *testing.T, st *store.Store, n int) { prefillText(t, st, n, 160) }

// prefillText is prefill with texts of textLen bytes.
func prefillText(t *testing.T, st *store.Store, n, textLen int) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		var batch []*store.Message
		for j := i; j < min(n, i+100); j++ {
			batch = append(batch, &store.Message{Provider: store.ProviderInfobip, ExternalID: fmt.Sprintf("pre-%06d", j),
				From: fmt.Sprintf("31600%06d", j%300), To: opsBusinessNum, Type: store.TypeText,
				Text: strings.Repeat("history ", textLen/8)})
		}
		_, err := st.SaveInbound(context.Background(), batch)
		require.NoError(t, err)
	}
}

// openCopy opens a backup read-only as a store.
func openCopy(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.Options{ReadOnly: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// dirNames lists a directory.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestOpsBackupDuringIngest takes a backup through GET /admin/backup while
// writers keep posting webhooks. The client reads the head of the stream,
// then waits for more posts to be acknowledged while the backup's read
// transaction is open (ingest is not blocked by it), then reads the rest.
// The copy passes check and holds every message acknowledged before the
// backup began.
func TestOpsBackupDuringIngest(t *testing.T) {
	e := opsNewEnv(t)
	prefillText(t, e.app.store, 800, 2000)

	var mu sync.Mutex
	acked := map[string]bool{}
	var ackN atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{}
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("live-%d-%d", w, i)
				if err := e.postInbound(ctx, client, id, opsCustomerNum1, "hello "+id); err != nil {
					if ctx.Err() == nil {
						errc <- err
					}
					return
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
				ackN.Add(1)
			}
		}()
	}
	require.Eventually(t, func() bool { return ackN.Load() >= 40 }, 20*time.Second, 5*time.Millisecond)

	mu.Lock()
	before := make([]string, 0, len(acked))
	for id := range acked {
		before = append(before, id)
	}
	mu.Unlock()

	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/admin/backup", nil)
	require.NoError(t, err)
	asAgent(req)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Greater(t, resp.ContentLength, int64(1<<20), "a copy big enough to stream for a while")
	out := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(out)
	require.NoError(t, err)
	_, err = io.CopyN(f, resp.Body, 64<<10)
	require.NoError(t, err)
	mark := ackN.Load()
	require.Eventually(t, func() bool { return ackN.Load() >= mark+20 }, 20*time.Second, 5*time.Millisecond,
		"webhooks are acknowledged while the backup stream is open")
	rest, err := io.Copy(f, resp.Body)
	require.NoError(t, err)
	require.Equal(t, resp.ContentLength, 64<<10+rest)
	require.NoError(t, f.Close())
	stop()
	wg.Wait()
	select {
	case err := <-errc:
		require.NoError(t, err)
	default:
	}

	problems, err := checkFile(out)
	require.NoError(t, err)
	require.Empty(t, problems)
	cp := openCopy(t, out)
	for _, id := range before {
		ms, err := cp.MessagesByExternalID(id)
		require.NoError(t, err)
		require.Len(t, ms, 1, "message %s was acknowledged before the backup began", id)
	}
	st, err := cp.Stats()
	require.NoError(t, err)
	require.GreaterOrEqual(t, st.Messages, uint64(800+len(before)))
	live, err := e.app.store.Stats()
	require.NoError(t, err)
	require.Greater(t, live.Messages, st.Messages, "ingest went on after the snapshot")

	// A bare download is not a backup: nobody checked it (issue 13 item 10).
	require.Eventually(t, func() bool { at, _ := e.app.store.LastDownload(); return !at.IsZero() }, 10*time.Second, 5*time.Millisecond,
		"it is recorded as the last download (once the handler has written the last byte)")
	_, size := e.app.store.LastDownload()
	require.Equal(t, resp.ContentLength, size)
	at, _ := e.app.store.LastBackup()
	require.True(t, at.IsZero(), "a bare download does not count as the last backup")
}

// runCLI runs the program in-process.
func runCLI(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	err = Run(ctx, args, &o, &e)
	return o.String(), e.String(), err
}

func TestOpsBackupCommandURL(t *testing.T) {
	ctx := context.Background()
	e := opsNewEnv(t)
	prefill(t, e.app.store, 200)
	dir := t.TempDir()

	t.Run("credentials from the environment", func(t *testing.T) {
		t.Setenv("IMCHANNEL_USER", opsAgentUser)
		t.Setenv("IMCHANNEL_PASSWORD", opsAgentPass)
		out := filepath.Join(dir, "env.db")
		so, se, err := runCLI(ctx, "backup", "--url", e.srv.URL, out)
		require.NoError(t, err, se)
		require.Contains(t, so, "check ok")
		require.NotContains(t, so+se, opsAgentPass)
		problems, err := checkFile(out)
		require.NoError(t, err)
		require.Empty(t, problems)
		ms, err := openCopy(t, out).MessagesByExternalID("pre-000199")
		require.NoError(t, err)
		require.Len(t, ms, 1)
		info, err := os.Stat(out)
		require.NoError(t, err)
		_, size := e.app.store.LastBackup()
		require.Equal(t, info.Size(), size)
	})

	t.Run("credentials from flags and from the URL", func(t *testing.T) {
		t.Setenv("IMCHANNEL_USER", "")
		t.Setenv("IMCHANNEL_PASSWORD", "")
		out := filepath.Join(dir, "flags.db")
		_, se, err := runCLI(ctx, "backup", "--url", e.srv.URL+"/", "--user", opsAgentUser, "--password", opsAgentPass, "--quiet", out)
		require.NoError(t, err, se)
		u := strings.Replace(e.srv.URL, "http://", "http://"+opsAgentUser+":"+opsAgentPass+"@", 1)
		_, se, err = runCLI(ctx, "backup", "--url", u, filepath.Join(dir, "userinfo.db"))
		require.NoError(t, err, se)
	})

	t.Run("wrong credentials write nothing and show no password", func(t *testing.T) {
		const wrong = "wrong-pw-c81e"
		for _, args := range [][]string{
			{"backup", "--url", e.srv.URL, "--user", opsAgentUser, "--password", wrong},
			{"backup", "--url", strings.Replace(e.srv.URL, "http://", "http://"+opsAgentUser+":"+wrong+"@", 1)},
		} {
			sub := t.TempDir()
			out := filepath.Join(sub, "denied.db")
			so, se, err := runCLI(ctx, append(args, out)...)
			require.Error(t, err)
			require.Equal(t, 1, exitCode(err))
			require.Contains(t, err.Error(), "401")
			require.NotContains(t, so+se+err.Error(), wrong)
			require.Empty(t, dirNames(t, sub), "no OUT and no temp file")
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"backup", filepath.Join(dir, "x.db")},
			{"backup", "--url", e.srv.URL},
			{"backup", "--url", e.srv.URL, "--db", "a.db", filepath.Join(dir, "x.db")},
			{"backup", "--url", "ftp://host/", filepath.Join(dir, "x.db")},
		} {
			_, _, err := runCLI(ctx, args...)
			require.Error(t, err, "%q", args)
			require.Equal(t, 2, exitCode(err), "%q", args)
		}
	})
}

// A stream that is not a valid database, or that is cut short, leaves the
// previous OUT as it was and no temp file behind.
func TestOpsBackupCommandBadStream(t *testing.T) {
	ctx := context.Background()
	garbage := make([]byte, 256<<10)
	_, _ = rand.Read(garbage)
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"not a database", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(garbage)))
			_, _ = w.Write(garbage)
		}, "failed its check"},
		{"cut off", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(garbage)))
			_, _ = w.Write(garbage[:len(garbage)/3])
		}, "cut off"},
		{"server error", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"storage unavailable"}`)
		}, "storage unavailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			dir := t.TempDir()
			out := filepath.Join(dir, "keep.db")
			require.NoError(t, os.WriteFile(out, []byte("previous backup"), 0o600))
			_, _, err := runCLI(ctx, "backup", "--url", srv.URL, "--quiet", out)
			require.Error(t, err)
			require.NotEqual(t, 0, exitCode(err))
			require.Contains(t, err.Error(), c.want)
			require.Equal(t, c.name == "not a database", errors.Is(err, errCheckFailed))
			got, err := os.ReadFile(out)
			require.NoError(t, err)
			require.Equal(t, "previous backup", string(got))
			require.Equal(t, []string{"keep.db"}, dirNames(t, dir))
		})
	}
}

func TestOpsBackupCommandDB(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "live.db")
	st, err := store.Open(src, store.Options{})
	require.NoError(t, err)
	prefill(t, st, 150)
	require.NoError(t, st.Close())

	out := filepath.Join(dir, "copy.db")
	so, se, err := runCLI(ctx, "backup", "--db", src, out)
	require.NoError(t, err, se)
	require.Contains(t, so, "check ok")
	so, _, err = runCLI(ctx, "check", "--db", out)
	require.NoError(t, err)
	require.Contains(t, so, "ok")
	stats, err := openCopy(t, out).Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(150), stats.Messages)

	_, _, err = runCLI(ctx, "backup", "--db", filepath.Join(dir, "missing.db"), filepath.Join(dir, "x.db"))
	require.Error(t, err)
	require.NoFileExists(t, filepath.Join(dir, "x.db"))
}

func TestOpsCompactCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "live.db")
	st, err := store.Open(src, store.Options{})
	require.NoError(t, err)
	prefillText(t, st, 600, 1000)
	n, err := st.EraseNumber(ctx, "31600000007") // frees pages to reclaim
	require.NoError(t, err)
	require.Positive(t, n)
	_, err = st.PurgeBefore(ctx, st.Now().Add(time.Hour))
	require.NoError(t, err)
	require.NoError(t, st.Close())

	out := filepath.Join(dir, "small.db")
	so, se, err := runCLI(ctx, "compact", "--db", src, out)
	require.NoError(t, err, se)
	require.Contains(t, so, "reclaimed")
	before, _ := os.Stat(src)
	after, _ := os.Stat(out)
	require.Less(t, after.Size(), before.Size())
	problems, err := checkFile(out)
	require.NoError(t, err)
	require.Empty(t, problems)

	_, _, err = runCLI(ctx, "compact", "--db", src, out)
	require.ErrorContains(t, err, "refusing to overwrite")
	require.ElementsMatch(t, []string{"live.db", "small.db"}, dirNames(t, dir))
}

func TestOpsScheduledBackups(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := &opsClock{t: time.Date(2024, 6, 1, 3, 0, 0, 0, time.UTC)}
	now := clk.now
	path := filepath.Join(t.TempDir(), "imchannel.db")
	st, err := store.Open(path, store.Options{Now: now})
	require.NoError(t, err)
	prefill(t, st, 50)

	backups := filepath.Join(dir, "backups")
	require.NoError(t, os.MkdirAll(backups, 0o700))
	for _, f := range []string{"notes.txt", "imchannel-old.db"} {
		require.NoError(t, os.WriteFile(filepath.Join(backups, f), []byte("keep me"), 0o600))
	}
	stale := filepath.Join(backups, ".imchannel-20240101T000000Z.db.tmp-123")
	require.NoError(t, os.WriteFile(stale, []byte("crashed"), 0o600))
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))

	var last string
	var lastSize int64
	for i := 0; i < 3; i++ {
		last, lastSize, err = backupOnce(ctx, st, backups, 2)
		require.NoError(t, err)
		clk.add(time.Hour)
	}
	require.Equal(t, filepath.Join(backups, "imchannel-20240601T050000Z.db"), last)
	require.ElementsMatch(t, []string{"imchannel-20240601T040000Z.db", "imchannel-20240601T050000Z.db",
		"notes.txt", "imchannel-old.db"}, dirNames(t, backups))
	problems, err := checkFile(last)
	require.NoError(t, err)
	require.Empty(t, problems)
	at, size := st.LastBackup()
	require.Equal(t, time.Date(2024, 6, 1, 5, 0, 0, 0, time.UTC), at)
	require.Equal(t, lastSize, size)

	// The record survives a restart.
	require.NoError(t, st.Close())
	st2, err := store.Open(path, store.Options{})
	require.NoError(t, err)
	defer st2.Close()
	at2, size2 := st2.LastBackup()
	require.True(t, at.Equal(at2))
	require.Equal(t, size, size2)
}

// The worker, as serve runs it: a service with no backup yet writes one at
// once, then waits for the interval; it stops with its context.
func TestOpsBackupWorker(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "backups")
	e := opsNewEnv(t, func(c *config.Config) {
		c.Backup = config.Backup{Dir: dir, Interval: config.Duration{Duration: time.Hour}, Keep: 3}
	})
	prefill(t, e.app.store, 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.app.backupWorker(ctx) }()
	require.Eventually(t, func() bool { at, _ := e.app.store.LastBackup(); return !at.IsZero() },
		20*time.Second, 10*time.Millisecond)
	cancel()
	<-done
	names := dirNames(t, dir)
	require.Len(t, names, 2)
	require.Regexp(t, `^imchannel-\d{8}T\d{6}Z\.db$`, names[0])
	require.Equal(t, latestName, names[1], "the worker links the newest backup")
	require.Contains(t, e.logs.String(), "scheduled backup written")
}

func TestOpsProgress(t *testing.T) {
	var clock time.Time
	mk := func(tty bool) (*progress, *bytes.Buffer) {
		var b bytes.Buffer
		p := newProgress(&b, "backup", false)
		p.tty = tty
		p.now = func() time.Time { return clock }
		return p, &b
	}
	clock = time.Unix(1000, 0)
	p, b := mk(false)
	p.begin(100 << 20)
	for i := 1; i <= 10; i++ {
		clock = clock.Add(200 * time.Millisecond)
		p.set(int64(i) * 10 << 20)
	}
	p.finish()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 4, "every 500 ms or more over 2 s, and the end: %q", b.String())
	require.Equal(t, "backup: 30.0 MiB of 100.0 MiB (30%), 50.0 MiB/s", lines[0])
	require.Equal(t, "backup: 100.0 MiB of 100.0 MiB (100%), 50.0 MiB/s", lines[len(lines)-1])

	// Small copies stay quiet unless stderr is a terminal.
	p, b = mk(false)
	p.begin(1 << 20)
	clock = clock.Add(time.Second)
	p.set(1 << 20)
	p.finish()
	require.Empty(t, b.String())
	p, b = mk(true)
	p.begin(1 << 20)
	clock = clock.Add(time.Second)
	p.set(1 << 20)
	p.finish()
	require.Contains(t, b.String(), "\rbackup: 1.0 MiB of 1.0 MiB (100%)")

	// --quiet wins.
	var q bytes.Buffer
	p = newProgress(&q, "backup", true)
	p.begin(1 << 30)
	p.set(1 << 29)
	p.finish()
	require.Empty(t, q.String())
}

// opsClock is a settable clock for the backup schedule's tests.
type opsClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *opsClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *opsClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
