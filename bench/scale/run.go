package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"imchannel/bench/internal/benchkit"
	"imchannel/store"
)

// stepResult is what one step measured.
type stepResult struct {
	Messages    int // in the file when the ingest phases began
	Customers   int
	FileBytes   int64
	Grow        time.Duration
	Floor, Bin  phase   // all rounds together
	BytesPerMsg float64 // our seed-text reply with a delivered and a seen report
	// BytesInbound is bytes per inbound seed-000 text message (no reports).
	BytesInbound float64
	RSS          rss // serve's peak resident set during the ingest phases
	Pages        pageCounts
	// BytesByBucket is bytes per message by bucket (pages of its tree).
	BytesByBucket map[string]float64
	Load          string
}

func (r stepResult) ratio() float64 { return r.Bin.rate() / r.Floor.rate() }

// finalResult is what the last step adds.
type finalResult struct {
	Pages                  []pageResult
	PagesRSS               rss
	Open                   time.Duration
	FileBytes              int64
	Check, Compact, Backup time.Duration
	Cp                     time.Duration
	CompactedBytes         int64
	Messages               int
}

type pageResult struct {
	Name string
	P    phase
}

// Run grows the file through cfg.Steps, measuring at each, and returns the
// report (also written, with the plot, under cfg.Out).
func Run(ctx context.Context, cfg Config, log *slog.Logger) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(cfg.Out) {
		cfg.Out = filepath.Join(root, cfg.Out)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return "", err
	}
	dir := cfg.Dir
	if dir == "" {
		dir, err = os.MkdirTemp(cfg.Out, "scale-")
		if err != nil {
			return "", err
		}
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	bin, err := benchkit.Build(root, dir)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "scale.db")
	g := newGrower(path)
	var steps []stepResult
	var fin *finalResult
	var big, numbers []string
	for si, target := range cfg.Steps {
		log.Info("step", "target", target, "load", benchkit.Loadavg())
		st, err := g.open()
		if err != nil {
			return "", err
		}
		t0 := time.Now()
		err = g.growTo(ctx, st, target)
		grow := time.Since(t0)
		msgs := int(st.Counter("messages"))
		if err == nil && si == len(cfg.Steps)-1 {
			big, numbers, err = pageTargets(st)
		}
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
		log.Info("grown", "messages", msgs, "took", grow.Round(time.Second))
		r, err := measureStep(cfg, bin, dir, path, si, msgs, customersAt(msgs), log)
		if err != nil {
			return "", fmt.Errorf("step %d (%d messages): %w", si, target, err)
		}
		r.Grow = grow
		steps = append(steps, r)
		log.Info("step done", "messages", msgs, "rate", int(r.Bin.rate()), "floor", int(r.Floor.rate()),
			"p99", r.Bin.pct(0.99), "max", r.Bin.max(), "bytes/msg", int(r.BytesPerMsg))
	}
	if !cfg.NoQueries {
		fin, err = measureFinal(cfg, bin, dir, path, big, numbers, log)
		if err != nil {
			return "", err
		}
	}
	rep := report(cfg, steps, fin)
	if err := os.WriteFile(filepath.Join(cfg.Out, "scale-results.md"), []byte(rep), 0o644); err != nil {
		return "", err
	}
	if err := plotSteps(steps, filepath.Join(cfg.Out, "scale.png")); err != nil {
		return "", err
	}
	return rep, nil
}

// measureStep takes the figures of one step on the grown file at path.
func measureStep(cfg Config, bin, dir, path string, si, msgs, custs int, log *slog.Logger) (stepResult, error) {
	r := stepResult{Messages: msgs, Customers: custs}
	fi, err := os.Stat(path)
	if err != nil {
		return r, err
	}
	r.FileBytes = fi.Size()

	// Bytes per message, serve stopped around each part so the file can be
	// read: pages in use after posting seed-000 text messages (inbound),
	// minus before; then after storing as many of our replies with seed
	// 000's text and posting a seed delivered and a seed seen report for
	// each (reports name our messages only), minus before that.
	p := newPoster(cfg.Clients)
	defer p.close()
	from := func(i int) string { return customer(i % custs) }
	post := func(kind string, body func(i int) string) error {
		srv, err := startServe(bin, dir, path)
		if err != nil {
			return err
		}
		ph := timed(cfg.Clients, 0, cfg.BytesN, func(i int) error {
			return p.do("POST", srv.url+"/imchannel/message", []byte(body(i)), webhookUser, webhookPass, `"accepted":1`)
		})
		if err := srv.stop(); err != nil {
			return err
		}
		if ph.failed > 0 {
			return fmt.Errorf("bytes phase (%s): %d of %d failed; first: %s", kind, ph.failed, ph.n, ph.firstE)
		}
		return nil
	}
	b0, _, err := inUse(path)
	if err != nil {
		return r, err
	}
	if err := post("inbound", func(i int) string { return string(benchkit.SeedText(from(i), fmt.Sprintf("scale-b%d-%09d", si, i))) }); err != nil {
		return r, err
	}
	b1, per1, err := inUse(path)
	if err != nil {
		return r, err
	}
	r.BytesInbound = float64(b1-b0) / float64(cfg.BytesN)
	replyID := func(i int) string { return fmt.Sprintf("scale-o%d-%09d", si, i) }
	if err := storeReplies(path, cfg.BytesN, replyID, from); err != nil {
		return r, err
	}
	if err := post("delivered", func(i int) string { return fmt.Sprintf(seedDelivered, replyID(i), from(i)) }); err != nil {
		return r, err
	}
	if err := post("seen", func(i int) string { return fmt.Sprintf(seedSeen, replyID(i), from(i)) }); err != nil {
		return r, err
	}
	b2, per2, err := inUse(path)
	if err != nil {
		return r, err
	}
	r.BytesPerMsg = float64(b2-b1) / float64(cfg.BytesN)
	r.BytesByBucket = map[string]float64{}
	for b, v := range per2 {
		if d := v - per1[b]; d != 0 {
			r.BytesByBucket[b] = float64(d) / float64(cfg.BytesN)
		}
	}
	if r.Pages, err = countPages(path, si, cfg.BytesN/4, cfg.Clients, custs); err != nil {
		return r, fmt.Errorf("pages per commit: %w", err)
	}

	// The floor's file: a copy of this one, so it is as large.
	floorPath := filepath.Join(dir, "floor.db")
	if err := exec.Command("cp", path, floorPath).Run(); err != nil {
		return r, fmt.Errorf("cp: %w", err)
	}
	defer os.Remove(floorPath)
	floor, err := startFloor(cfg.Self, floorPath)
	if err != nil {
		return r, err
	}
	defer floor.stop()
	srv, err := startServe(bin, dir, path)
	if err != nil {
		return r, err
	}
	defer srv.stop()
	// Warm both up (connections, first page faults).
	warm := func(url, tag string, user, pass string) error {
		ph := timed(cfg.Clients, 0, 500, func(i int) error {
			return p.do("POST", url, benchkit.SeedText(from(i), fmt.Sprintf("scale-w%d-%s-%06d", si, tag, i)), user, pass, `"accepted":1`)
		})
		if ph.failed > 0 {
			return fmt.Errorf("warm-up %s: %s", tag, ph.firstE)
		}
		return nil
	}
	if err := warm(floor.url+"/imchannel/message", "f", "", ""); err != nil {
		return r, err
	}
	if err := warm(srv.url+"/imchannel/message", "b", webhookUser, webhookPass); err != nil {
		return r, err
	}
	var floors, bins []phase
	var peak rss
	for round := range cfg.Rounds {
		post := func(url, tag, user, pass string) phase {
			return timed(cfg.Clients, cfg.Dur, 0, func(i int) error {
				body := benchkit.SeedText(from(i), fmt.Sprintf("scale-s%d-r%d-%s-%09d", si, round, tag, i))
				return p.do("POST", url, body, user, pass, `"accepted":1,"duplicates":0`)
			})
		}
		f := post(floor.url+"/imchannel/message", "f", "", "")
		rss := sampleRSS(srv.pid)
		b := post(srv.url+"/imchannel/message", "b", webhookUser, webhookPass)
		peak = peak.max(rss.end())
		for _, ph := range []phase{f, b} {
			if ph.failed > 0 {
				return r, fmt.Errorf("ingest round %d: %d of %d failed; first: %s", round, ph.failed, ph.n, ph.firstE)
			}
		}
		log.Info("round", "step", si, "round", round, "floor", int(f.rate()), "imchannel", int(b.rate()),
			"p99", b.pct(0.99), "max", b.max(), "load", benchkit.Loadavg())
		floors, bins = append(floors, f), append(bins, b)
	}
	r.Floor, r.Bin, r.RSS, r.Load = merge(floors), merge(bins), peak, benchkit.Loadavg()
	return r, nil
}

// storeReplies stores n of our replies with CTLive's example text, sent, as the
// send API and the dispatcher leave them, in commits of 64 (the size of a
// busy group commit).
func storeReplies(path string, n int, id, to func(int) string) error {
	st, err := store.Open(path, store.Options{})
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for i := 0; i < n; i += 64 {
		var msgs []*store.Message
		for j := i; j < min(n, i+64); j++ {
			msgs = append(msgs, &store.Message{Direction: store.Outbound, Provider: store.ProviderInfobip, ExternalID: id(j),
				From: "1234", To: to(j), Type: store.TypeText, Text: "Support hello", Status: store.StatusSent,
				Timeline: []store.Event{{Status: store.StatusQueued, At: now}, {Status: store.StatusSent, At: now}}})
		}
		if err := st.BulkLoad(context.Background(), msgs); err != nil {
			_ = st.Close()
			return fmt.Errorf("store replies: %w", err)
		}
	}
	return st.Close()
}

// merge joins rounds into one phase: total requests over total time.
func merge(ps []phase) phase {
	var m phase
	for _, p := range ps {
		m.n += p.n
		m.dur += p.dur
		m.lat = append(m.lat, p.lat...)
		m.failed += p.failed
	}
	sortDur(m.lat)
	return m
}

// inUse is the bytes of pages the file's data occupies (its high-water
// mark less the free pages), and the pages each bucket's tree holds.
func inUse(path string) (int64, map[string]int64, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return 0, nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var size int64
	var ps int
	per := map[string]int64{}
	_ = db.View(func(tx *bolt.Tx) error {
		size, ps = tx.Size(), tx.DB().Info().PageSize
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			st := b.Stats()
			per[string(name)] = int64(st.BranchAlloc + st.LeafAlloc)
			return nil
		})
	})
	s := db.Stats()
	return size - int64(s.FreePageN+s.PendingPageN)*int64(ps), per, nil
}

// measureFinal takes the end-of-run figures on the largest file.
func measureFinal(cfg Config, bin, dir, path string, big, numbers []string, log *slog.Logger) (*finalResult, error) {
	f := &finalResult{}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	f.FileBytes = fi.Size()

	// Open: as serve does at start (the file is in the page cache by now).
	t0 := time.Now()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		return nil, err
	}
	f.Open = time.Since(t0)
	f.Messages = int(st.Counter("messages"))
	if err := st.Close(); err != nil {
		return nil, err
	}

	srv, err := startServe(bin, dir, path)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	p := newPoster(cfg.Agents)
	defer p.close()
	if len(big) == 0 || len(numbers) == 0 {
		return nil, errors.New("no 200-message conversation to open")
	}
	pages := []struct {
		name, want string
		url        func(i int) string
	}{
		{"list page /", `class="conv-list"`, func(int) string { return "/" }},
		{"thread page (200 msgs)", `id="thread"`, func(i int) string { return "/conversations/" + big[i%len(big)] }},
		{"number search /?q=", `class="conv-list"`, func(i int) string {
			n := numbers[i%len(numbers)]
			return "/?q=" + n[len(n)-7:len(n)-1] // six digits from the middle
		}},
	}
	rss := sampleRSS(srv.pid)
	for _, pg := range pages {
		if err := p.do("GET", srv.url+pg.url(0), nil, agentUser, agentPass, pg.want); err != nil {
			return nil, err
		}
		ph := timed(cfg.Agents, 0, cfg.Agents*cfg.Requests, func(i int) error {
			return p.do("GET", srv.url+pg.url(i), nil, agentUser, agentPass, pg.want)
		})
		if ph.failed > 0 {
			return nil, fmt.Errorf("%s: %d failed; first: %s", pg.name, ph.failed, ph.firstE)
		}
		f.Pages = append(f.Pages, pageResult{Name: pg.name, P: ph})
		log.Info("page", "name", pg.name, "p99", ph.pct(0.99))
	}
	f.PagesRSS = rss.end()

	// Online backup (GET /admin/backup into a file) against cp of the same
	// file, one after the other; neither fsyncs.
	out := filepath.Join(dir, "backup.db")
	t0 = time.Now()
	if err := download(srv.url+"/admin/backup", out); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	f.Backup = time.Since(t0)
	_ = os.Remove(out)
	t0 = time.Now()
	if err := exec.Command("cp", path, out).Run(); err != nil {
		return nil, fmt.Errorf("cp: %w", err)
	}
	f.Cp = time.Since(t0)
	_ = os.Remove(out)
	if err := srv.stop(); err != nil {
		return nil, err
	}
	fi, err = os.Stat(path)
	if err != nil {
		return nil, err
	}
	f.FileBytes = fi.Size()

	t0 = time.Now()
	if b, err := exec.Command(bin, "check", "--db", path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("check: %v\n%s", err, b)
	}
	f.Check = time.Since(t0)
	t0 = time.Now()
	if b, err := exec.Command(bin, "compact", "--quiet", "--db", path, out).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("compact: %v\n%s", err, b)
	}
	f.Compact = time.Since(t0)
	if ci, err := os.Stat(out); err == nil {
		f.CompactedBytes = ci.Size()
	}
	_ = os.Remove(out)
	return f, nil
}

// download GETs url as an agent into the file out.
func download(url, out string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(agentUser, agentPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// proc is a server this program started.
type proc struct {
	url     string
	pid     int
	cmd     *exec.Cmd
	done    chan error
	stopped bool
}

// startServe runs `imchannel serve` on the file with webhook and agent
// credentials.
func startServe(bin, dir, path string) (*proc, error) {
	cfgPath := filepath.Join(dir, "scale.toml")
	toml := fmt.Sprintf("addr = \"127.0.0.1:0\"\ndb = %q\n\n[inbound]\nbasic_user = %q\nbasic_password = %q\n\n[[agents]]\nuser = %q\npassword = %q\n",
		path, webhookUser, webhookPass, agentUser, agentPass)
	if err := os.WriteFile(cfgPath, []byte(toml), 0o600); err != nil {
		return nil, err
	}
	sp, err := benchkit.StartServe(bin, cfgPath, filepath.Join(dir, "serve.log"), 5*time.Minute)
	if err != nil {
		return nil, err
	}
	return &proc{url: "http://" + sp.Addr, pid: sp.Cmd.Process.Pid, cmd: sp.Cmd, done: sp.Done}, nil
}

// startFloor re-runs this program as the floor server on path.
func startFloor(self, path string) (*proc, error) {
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), floorEnv+"=floor:"+path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan error, 1)}
	addr, err := benchkit.WaitListening(stderr, 2*time.Minute)
	go func() { s.done <- cmd.Wait() }()
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("floor: %w", err)
	}
	s.url = "http://" + addr
	return s, nil
}

// stop ends the process with SIGTERM and waits for it.
func (s *proc) stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && strings.Contains(ee.String(), "terminated")) {
			return fmt.Errorf("%s: %w", filepath.Base(s.cmd.Path), err)
		}
		return nil
	case <-time.After(2 * time.Minute):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("%s did not stop within 2m of SIGTERM", filepath.Base(s.cmd.Path))
	}
}
