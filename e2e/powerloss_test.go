package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"imchannel/internal/lazyfs"
	"imchannel/store"
)

// TestPowerLoss runs the service with its database on a lazyfs mount (see
// internal/lazyfs: every unsynced write and namespace change lives only in
// the filesystem's memory) and cuts the power at random moments: SIGKILL
// every process, drop (or, in torn rounds, partly write) the unsynced
// state, unmount, mount again, restart on the same file. Rounds cycle
// through three kinds, torn every other round:
//   - load: inbound from Infobip and CM, sends, delivery and seen reports,
//     image media, erasures, and `backup --url` runs one after another, with
//     scheduled backups on the same mount; the cut lands under all that;
//   - compact: the service stopped, the cut lands during `imchannel compact`;
//   - migration: the file is turned back into an unversioned one holding
//     data, so `serve` writes the pre-migration backup, migrates and takes
//     a scheduled backup at once; the cut lands somewhere in that.
//
// After every cut: `imchannel check` passes; every acknowledged inbound
// message, send and report is stored, none twice; every acknowledged
// erasure holds; every backup reported finished (online, scheduled,
// pre-migration, compact) exists, passes check, has its reported size and
// holds everything acknowledged before it started; no file under a final
// name is a half file. At the end every acknowledged send reached the
// provider and every acknowledged image was fetched with the right bytes.
//
// CI: 3 rounds. IMCHANNEL_LONG=1: IMCHANNEL_POWERLOSS_ROUNDS (default 60).
// IMCHANNEL_POWERLOSS_SEED fixes the random choices (the timing still
// varies).
func TestPowerLoss(t *testing.T) {
	lazyfs.Need(t)
	rounds := 3
	if long() {
		rounds = 60
		if v, err := strconv.Atoi(os.Getenv("IMCHANNEL_POWERLOSS_ROUNDS")); err == nil && v > 0 {
			rounds = v
		}
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("IMCHANNEL_POWERLOSS_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (IMCHANNEL_POWERLOSS_SEED=%d repeats the choices)", seed, seed)
	p := newPowerRun(t, seed)
	p.restart()

	kinds := []string{"load", "compact", "migration"}
	for r := range rounds {
		kind, torn := kinds[r%len(kinds)], r%2 == 0
		began := time.Now()
		var note string
		switch kind {
		case "load":
			note = p.loadRound(r, torn)
		case "compact":
			note = p.compactRound(r, torn)
		case "migration":
			note = p.migrationRound(r, torn)
		}
		p.verify(r, kind == "migration")
		p.restart()
		if t.Failed() {
			t.Fatalf("round %d (%s, torn %v) failed: %s", r, kind, torn, note)
		}
		t.Logf("round %d: %-9s torn=%-5v %s; %s", r, kind, torn, note, time.Since(began).Round(time.Millisecond))
	}
	p.final()
}

// ---- the run ----

// powerKeep is the service's [backup] keep: it prunes scheduled backups
// beyond the newest powerKeep.
const powerKeep = 2

type powerRun struct {
	t       *testing.T
	rng     *rand.Rand
	dir     string // scratch on the real disk: config, copies
	backing string
	mnt     string
	fsys    *lazyfs.FS
	cfg, db string
	prov    *provider
	origin  *httptest.Server
	s       *svc
	led     *ledger
	procs   procSet

	phase      int // load phases so far
	migrations int // migration rounds so far
	// measured durations, to aim the next cut
	compactTook, startTook time.Duration
	stats                  powerStats
}

type powerStats struct {
	cuts, torn                  int
	duringOnline, duringCompact int
	migrationCuts               map[string]int // where in the start of a migrating serve
	droppedPages, tornPages     int
	backupsVerified             map[string]int
	halfFilesSeen               int // temp files left by a cut (never under a final name)
	oldSchemaAfterCut           int
}

func newPowerRun(t *testing.T, seed uint64) *powerRun {
	dir := t.TempDir()
	p := &powerRun{t: t, rng: rand.New(rand.NewPCG(seed, 14)), dir: dir,
		backing: filepath.Join(dir, "backing"), mnt: filepath.Join(dir, "mnt"),
		led: newLedger(), stats: powerStats{backupsVerified: map[string]int{}, migrationCuts: map[string]int{}}}
	require.NoError(t, os.Mkdir(p.backing, 0o700))
	require.NoError(t, os.Mkdir(p.mnt, 0o700))
	p.mount()
	// Online backups and compacted copies go to their own directory,
	// made durable before the database exists: their directory fsyncs
	// must not make the database's own name durable by accident.
	require.NoError(t, os.Mkdir(filepath.Join(p.mnt, "copies"), 0o700))
	syncDir(t, p.mnt)
	t.Cleanup(func() {
		p.procs.killAll()
		if p.s != nil {
			p.s.kill()
		}
		if p.fsys != nil {
			_ = p.fsys.Unmount()
		}
	})
	p.prov = newProvider(t)
	p.origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write(imageBytes(r.URL.Path)) // relay_test.go's, unique per path
	}))
	t.Cleanup(p.origin.Close)
	p.db = filepath.Join(p.mnt, "imchannel.db")
	p.cfg = writeConfig(t, dir, options{providerURL: p.prov.url(), allowPrivate: true,
		extra: fmt.Sprintf("[backup]\ndir = %q\ninterval = \"1s\"\nkeep = %d\n", filepath.Join(p.mnt, "backups"), powerKeep)})
	return p
}

// restart starts the service on the file and notes how long a start takes
// (to aim the cuts of migration rounds).
func (p *powerRun) restart() {
	began := time.Now()
	p.s = start(p.t, p.cfg, p.db)
	p.startTook = max(p.startTook, time.Since(began))
	p.s.healthy(p.t)
}

func (p *powerRun) mount() {
	f, err := lazyfs.Mount(p.backing, p.mnt)
	require.NoError(p.t, err)
	p.fsys = f
}

// cut is the power cut: SIGKILL everything, drop the unsynced state (or
// tear it), unmount, mount again. stop ends the load before the drop.
func (p *powerRun) cut(torn bool, stop func()) {
	p.t.Helper()
	if p.s != nil {
		p.s.kill()
		p.noteLogs(p.s)
		p.s = nil
	}
	p.procs.killAll()
	if stop != nil {
		stop()
		p.procs.killAll() // one a client started as the power went
	}
	st := p.fsys.Cut(p.rng, torn)
	require.NoError(p.t, p.fsys.Unmount())
	p.fsys = nil
	p.mount()
	p.stats.cuts++
	if torn {
		p.stats.torn++
	}
	p.stats.droppedPages += st.DroppedPages
	p.stats.tornPages += st.TornPages
}

// noteLogs takes what a dead or stopped service reported: its finished
// backups, and its errors for the test log (a webhook's 5xx says why there).
func (p *powerRun) noteLogs(s *svc) {
	p.led.noteLogs(s)
	n := 0
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") && n < 10 {
			p.t.Logf("service error: %s", l)
			n++
		}
	}
}

// between returns a random duration in [lo, hi).
func (p *powerRun) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(p.rng.Int64N(int64(hi-lo)))
}

// startLoad runs the clients, the eraser and the online backups against
// the running service until the returned stop is called.
func (p *powerRun) startLoad(online bool) (stop func()) {
	p.phase++
	round := p.phase // ids are unique per load phase
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	s := p.s
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	const clients = 6
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(round), uint64(cl)))
			for n := 0; ctx.Err() == nil && s.alive(); n++ {
				p.act(c, s, rng, fmt.Sprintf("pl-r%d-c%d-n%d", round, cl, n), fmt.Sprintf("3161%03d%04d", cl, round), (cl+n)%6)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; ctx.Err() == nil && s.alive(); k++ {
			p.erase(c, s, round, k)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	if online {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil && s.alive(); k++ {
				p.onlineBackup(s, round, k)
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		tr.CloseIdleConnections()
	}
}

// post sends one request and says whether it was acknowledged (2xx).
func (p *powerRun) post(c *http.Client, s *svc, method, path string, a auth, body []byte) bool {
	var rd io.Reader
	if body != nil {
		rd = bytesReader(body)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	a.apply(req)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 && resp.StatusCode != 503 {
		p.led.refuse(fmt.Sprintf("%s %s: status %d: %s", method, path, resp.StatusCode, b))
	}
	return resp.StatusCode/100 == 2
}

// act is one client's step: an inbound text (Infobip or CM), a send, an
// inbound image, or a delivery or seen report for an acknowledged send.
func (p *powerRun) act(c *http.Client, s *svc, rng *rand.Rand, id, from string, what int) {
	if what >= 4 {
		target, to := p.led.someSend(rng)
		if target == "" {
			what = 2
		} else {
			status, body := "delivered", deliveryReport(target, to)
			if what == 5 {
				status, body = "seen", seenReport(target, to)
			}
			if p.post(c, s, "POST", "/imchannel/message", authInbound, body) {
				p.led.ackReport(target, status)
			}
			return
		}
	}
	var path, kind string
	var body []byte
	a := authInbound
	switch what {
	case 0:
		path, kind, body = "/imchannel/message", "in", infobipInbound(id, from, "power "+id)
	case 1:
		path, kind, body = "/webhooks/cm", "in", cmInbound(id, from, "power "+id)
	case 2:
		path, kind, a, body = "/omni/1/advanced", "out", authAPI, sendAPI(id, from, "reply "+id)
	default:
		path, kind, body = "/imchannel/message", "img", infobipImage(id, from, p.origin.URL+"/img/"+id)
	}
	p.led.try(id)
	if p.post(c, s, "POST", path, a, body) {
		p.led.ack(id, kind, from)
	}
}

// erase posts two messages from a fresh number and erases that customer.
func (p *powerRun) erase(c *http.Client, s *svc, round, k int) {
	number := fmt.Sprintf("3169%03d%04d", round, k)
	for j := range 2 {
		id := fmt.Sprintf("pl-erase-r%d-k%d-%d", round, k, j)
		p.led.try(id)
		if p.post(c, s, "POST", "/imchannel/message", authInbound, infobipInbound(id, number, "forget me")) {
			p.led.ack(id, "in", number)
		}
	}
	p.led.eraseAsked(number)
	if p.post(c, s, "DELETE", "/api/v1/customers/"+number, authAgent, nil) {
		p.led.eraseDone(number)
	}
}

var wroteRE = regexp.MustCompile(`wrote (\S+) \((\d+) bytes\)`)

// onlineBackup runs `imchannel backup --url` into the mount; a run that
// exits 0 reported a finished backup.
func (p *powerRun) onlineBackup(s *svc, round, k int) {
	out := filepath.Join(p.mnt, "copies", fmt.Sprintf("online-r%d-%d.db", round, k))
	began := time.Now()
	cmd := exec.Command(binPath, "backup", "--quiet", "--url", s.base, out)
	cmd.Env = append(os.Environ(), "IMCHANNEL_USER="+agentUser, "IMCHANNEL_PASSWORD="+agentPass)
	b, err := p.procs.run(cmd)
	if err != nil {
		return
	}
	p.backupDone(wroteRE, b, backupRec{kind: "online", path: out, began: began})
}

// backupDone records rec as finished with the size the command's output
// (matched by re, size in group 2) reports.
func (p *powerRun) backupDone(re *regexp.Regexp, said []byte, rec backupRec) {
	m := re.FindSubmatch(said)
	if m == nil {
		p.t.Errorf("%s backup said: %s", rec.kind, said)
		return
	}
	rec.size, _ = strconv.ParseInt(string(m[2]), 10, 64)
	p.led.backupDone(rec)
}

// ---- rounds ----

func (p *powerRun) loadRound(r int, torn bool) string {
	stop := p.startLoad(true)
	hi := 1500 * time.Millisecond
	if long() {
		hi = 3 * time.Second // slower race-built binary: let some online backups finish
	}
	wait := p.between(300*time.Millisecond, hi)
	time.Sleep(wait)
	during := p.procs.running() > 0
	if during {
		p.stats.duringOnline++
	}
	p.cut(torn, stop)
	return fmt.Sprintf("cut %s into the load (online backup running: %v)", wait.Round(time.Millisecond), during)
}

var compactRE = regexp.MustCompile(`into (\S+) \((\d+) bytes\)`)

// stopAfterLoad runs a short load, then stops the service cleanly (the
// compact and migration rounds work on a closed file).
func (p *powerRun) stopAfterLoad() {
	stop := p.startLoad(false)
	time.Sleep(p.between(200*time.Millisecond, 600*time.Millisecond))
	p.s.stop(p.t)
	p.noteLogs(p.s)
	p.s = nil
	stop()
}

func (p *powerRun) compactRound(r int, torn bool) string {
	p.stopAfterLoad()

	out := filepath.Join(p.mnt, "copies", fmt.Sprintf("compact-r%d.db", r))
	if p.compactTook == 0 {
		// Aim the first cut with a timing run (its copy is not kept).
		timing := filepath.Join(p.mnt, "copies", ".timing.db")
		began := time.Now()
		b, err := exec.Command(binPath, "compact", "--quiet", "--db", p.db, timing).CombinedOutput()
		require.NoError(p.t, err, "%s", b)
		p.compactTook = time.Since(began)
		require.NoError(p.t, os.Remove(timing))
	}
	// Mostly during the compaction, sometimes just after it (then the
	// finished copy is verified).
	wait := p.between(0, p.compactTook*3/2)
	began := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, err := p.procs.run(exec.Command(binPath, "compact", "--quiet", "--db", p.db, out))
		if err != nil {
			return
		}
		p.compactTook = time.Since(began)
		p.backupDone(compactRE, b, backupRec{kind: "compact", path: out, began: began})
	}()
	time.Sleep(wait)
	during := p.procs.running() > 0
	if during {
		p.stats.duringCompact++
	}
	p.cut(torn, nil)
	<-done
	return fmt.Sprintf("cut %s into compact (still running: %v)", wait.Round(time.Millisecond), during)
}

func (p *powerRun) migrationRound(r int, torn bool) string {
	p.stopAfterLoad()
	p.makeUnversioned()

	// The rounds take turns aiming at: the pre-migration backup being
	// written, the moment it is reported (the migration runs next), and
	// the first moments after "listening" (the scheduled backup, load on
	// the new schema). Where the cut really landed is read from the log.
	aim := p.migrations % 3
	p.migrations++
	began := time.Now()
	p.led.expectPreMigration(began)
	s, addrc, err := launch(p.t, p.cfg, p.db, nil)
	require.NoError(p.t, err)
	p.s = s
	var stopLoad func()
	switch aim {
	case 0:
		// The temp file lives briefly; a poll that misses it sees the
		// finished .bak and cuts then, not 30 s later under the schedule.
		p.waitFor(s, func() bool {
			ents, _ := os.ReadDir(p.mnt)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".imchannel.db.pre-v") || strings.HasPrefix(e.Name(), "imchannel.db.pre-v") {
					return true
				}
			}
			return false
		})
	case 1:
		p.waitFor(s, func() bool { return strings.Contains(s.logs.String(), `msg="wrote backup before migrating"`) })
	default:
		select {
		case a := <-addrc:
			s.setAddr(a)
			stopLoad = p.startLoad(true)
			time.Sleep(p.between(20*time.Millisecond, 500*time.Millisecond))
		case <-s.exited:
		case <-time.After(30 * time.Second):
		}
	}
	wait := time.Since(began)
	p.cut(torn, stopLoad)
	// Where the cut landed, from what the service logged before it.
	logs := s.logs.String()
	phase := "before the pre-migration backup was finished"
	switch {
	case strings.Contains(logs, "msg=listening"):
		phase = "after listening, under load"
	case strings.Contains(logs, `msg="migrated schema"`):
		phase = "after the migration, before listening"
	case strings.Contains(logs, `msg="wrote backup before migrating"`):
		phase = "during the migration"
	}
	p.stats.migrationCuts[phase]++
	return fmt.Sprintf("cut %s after serve started on an unversioned file (%s)", wait.Round(time.Millisecond), phase)
}

// waitFor polls cond until it holds or s is gone (then the cut shows what
// happened).
func (p *powerRun) waitFor(s *svc, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() && s.alive() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Microsecond)
	}
}

// makeUnversioned turns the stopped service's file into one from before
// schema versions, holding data (as migrations' own tests build an older
// file): the next serve backs it up and migrates it. The last-backup
// record goes too, so that serve also takes a scheduled backup at once.
// The file is rewritten through the mount the way a careful tool would:
// temp file, fsync, rename, directory fsync.
func (p *powerRun) makeUnversioned() {
	t := p.t
	local := filepath.Join(p.dir, "unversioned.db")
	_ = os.Remove(local)
	require.NoError(t, copyFile(p.db, local))
	db, err := bolt.Open(local, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		if err := meta.Delete([]byte("schema_version")); err != nil {
			return err
		}
		return meta.Delete([]byte("last_backup"))
	}))
	require.NoError(t, db.Close())
	require.NoError(t, store.WriteFileAtomic(p.db, func(w io.Writer) error {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	}, nil))
}

// ---- checks ----

var oldSchemaRE = regexp.MustCompile(`^schema version 0, expected \d+\n`)

// verify runs after every cut, on the freshly mounted file.
func (p *powerRun) verify(r int, migrating bool) {
	t := p.t
	// A cut before the migration committed leaves the old schema: the
	// next serve migrates it.
	old, ok := p.check(p.db, migrating)
	if !ok {
		t.Errorf("round %d: the database fails check after the cut", r)
		return
	}
	if old {
		p.stats.oldSchemaAfterCut++
	}
	st := p.openCopy(p.db, old)
	p.led.verifyStore(t, st, fmt.Sprintf("round %d: the database", r), time.Now(), true)
	p.closeCopy(st)

	for _, b := range p.led.takeBackups() {
		p.verifyBackup(r, b)
	}
	p.scanFinalNames(r)
}

// verifyBackup: a backup reported finished exists, passes check, has the
// reported size and holds everything acknowledged before it began.
func (p *powerRun) verifyBackup(r int, b backupRec) {
	t := p.t
	fi, err := os.Stat(b.path)
	if err != nil && b.kind == "scheduled" {
		if stand, ok := p.prunedBy(b); ok {
			p.verifyStandIn(r, b, stand)
			return
		}
	}
	if err != nil {
		t.Errorf("round %d: the %s backup %s was reported finished but is gone after the cut: %v", r, b.kind, b.path, err)
		return
	}
	if b.size >= 0 && fi.Size() != b.size {
		t.Errorf("round %d: the %s backup %s was reported as %d bytes, is %d", r, b.kind, b.path, b.size, fi.Size())
	}
	old, ok := p.check(b.path, b.kind == "pre-migration")
	if !ok {
		t.Errorf("round %d: the %s backup %s fails check after the cut", r, b.kind, b.path)
		return
	}
	st := p.openCopy(b.path, old)
	p.led.verifyStore(t, st, fmt.Sprintf("round %d: the %s backup %s", r, b.kind, filepath.Base(b.path)), b.began, false)
	p.closeCopy(st)
	p.stats.backupsVerified[b.kind]++
}

// prunedBy tells whether a missing scheduled backup was pruned, not lost.
// The service keeps the newest powerKeep scheduled backups, so one that a
// stopped service reported goes once a later service (a migration round's
// serve, which runs up to 30 s when its aim is missed) has written
// powerKeep newer ones. backupOnce makes each new backup's name durable
// (rename, directory fsync) before it prunes, so a removal that survived
// the cut implies powerKeep newer backups that survived too; with fewer,
// the backup was lost. It returns the oldest of the newer ones.
func (p *powerRun) prunedBy(b backupRec) (string, bool) {
	dir, name := filepath.Dir(b.path), filepath.Base(b.path)
	ents, err := os.ReadDir(dir)
	require.NoError(p.t, err)
	var newer []string
	for _, e := range ents { // ReadDir sorts by name, and the names by time
		if n := e.Name(); scheduledName.MatchString(n) && n > name {
			newer = append(newer, n)
		}
	}
	if len(newer) < powerKeep {
		return "", false
	}
	return filepath.Join(dir, newer[0]), true
}

// verifyStandIn checks the newer backup that replaced a pruned one: it
// began later, so it holds everything acknowledged before b began.
func (p *powerRun) verifyStandIn(r int, b backupRec, stand string) {
	t := p.t
	if _, ok := p.check(stand, false); !ok {
		t.Errorf("round %d: %s (which pruned the scheduled backup %s) fails check after the cut", r, stand, b.path)
		return
	}
	st := p.openCopy(stand, false)
	p.led.verifyStore(t, st, fmt.Sprintf("round %d: %s in place of the pruned %s", r, filepath.Base(stand), filepath.Base(b.path)), b.began, false)
	p.closeCopy(st)
	p.stats.backupsVerified["scheduled, pruned since"]++
}

// scheduledName is the name of a scheduled backup (not imchannel-latest.db).
var scheduledName = regexp.MustCompile(`^imchannel-\d{8}T\d{6}Z\.db$`)

// finalName tells the files that must never be half written: backups and
// compacted copies under their final names. Temp files start with a dot.
var finalName = regexp.MustCompile(`^(online-r\d+-\d+\.db|compact-r\d+\.db|imchannel\.db\.pre-v\d+\.\d{8}T\d{6}Z\.bak|imchannel-\d{8}T\d{6}Z\.db|imchannel-latest\.db)$`)

// scanFinalNames checks every file under a final name on the mount, then
// removes the one-off copies (scheduled backups are pruned by the service).
func (p *powerRun) scanFinalNames(r int) {
	t := p.t
	for _, dir := range []string{p.mnt, filepath.Join(p.mnt, "copies"), filepath.Join(p.mnt, "backups")} {
		ents, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		removed := false
		for _, e := range ents {
			name := e.Name()
			path := filepath.Join(dir, name)
			switch {
			case strings.HasPrefix(name, "."):
				p.stats.halfFilesSeen++
			case finalName.MatchString(name):
				if _, ok := p.check(path, strings.HasSuffix(name, ".bak")); !ok {
					t.Errorf("round %d: %s is under its final name but fails check", r, path)
				}
				if !strings.HasPrefix(name, "imchannel-") {
					require.NoError(t, os.Remove(path))
					removed = true
				}
			}
		}
		if removed {
			syncDir(t, dir)
		}
	}
}

// check runs `imchannel check` on path. With allowOld, a file whose only
// problem is an unversioned schema (the database before serve migrated
// it, a pre-migration backup) passes when a migrated copy passes; old
// says so.
func (p *powerRun) check(path string, allowOld bool) (old, ok bool) {
	out, err := exec.Command(binPath, "check", "--db", path).CombinedOutput()
	if err == nil {
		return false, true
	}
	if !allowOld || !oldSchemaRE.Match(out) || !strings.Contains(string(out), " 1 problem(s)") {
		p.t.Logf("imchannel check --db %s: %v\n%s", path, err, out)
		return false, false
	}
	st := p.openCopy(path, true) // migrates and checks the copy
	p.closeCopy(st)
	return true, true
}

// openCopy copies a file off the mount (read(2) only: this process serves
// the mount, so it must never mmap it) and opens the copy read-only,
// migrating the copy first when old says the schema is behind.
func (p *powerRun) openCopy(src string, old bool) *store.Store {
	t := p.t
	local, err := os.MkdirTemp(p.dir, "copy-")
	require.NoError(t, err)
	local = filepath.Join(local, filepath.Base(src))
	require.NoError(t, copyFile(src, local))
	if old {
		out, err := exec.Command(binPath, "migrate", "--db", local).CombinedOutput()
		require.NoError(t, err, "migrate a copy: %s", out)
		out, err = exec.Command(binPath, "check", "--db", local).CombinedOutput()
		require.NoError(t, err, "check the migrated copy: %s", out)
	}
	st, err := store.Open(local, store.Options{ReadOnly: true, NoMigrate: true})
	require.NoError(t, err)
	return st
}

// closeCopy closes and deletes a copy openCopy made.
func (p *powerRun) closeCopy(st *store.Store) {
	require.NoError(p.t, st.Close())
	require.NoError(p.t, os.RemoveAll(filepath.Dir(st.Path())))
}

// final: the outbox and the media queue survived every cut.
func (p *powerRun) final() {
	t := p.t
	s := p.s
	sends := p.led.acked("out")
	require.Eventually(t, func() bool {
		for _, id := range sends {
			if p.prov.count(id) == 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 50*time.Millisecond, "some acknowledged sends never reached the provider")

	images := p.led.acked("img")
	for _, id := range images {
		var m struct {
			Messages []store.Message `json:"messages"`
		}
		require.Eventually(t, func() bool {
			code, b := s.do(t, "GET", "/api/v1/messages?externalId="+id, authAgent, nil, nil)
			if code != 200 || json.Unmarshal(b, &m) != nil {
				return false
			}
			return len(m.Messages) == 1 && m.Messages[0].Media != nil && m.Messages[0].Media.State == store.MediaCached
		}, 60*time.Second, 50*time.Millisecond, "image %s was never fetched after the cuts", id)
		code, b := s.do(t, "GET", m.Messages[0].Media.URL, authAgent, nil, nil)
		require.Equal(t, 200, code)
		require.Equal(t, imageBytes("/img/"+id), b, "image %s: the cached bytes differ from the origin's", id)
	}
	s.stop(t)
	check(t, p.db)
	require.Empty(t, p.led.refused, "valid requests were refused")

	l := p.led
	l.mu.Lock()
	defer l.mu.Unlock()
	ps := p.stats
	t.Logf("power loss: %d cuts (%d torn): %d during an online backup, %d during compact, migration rounds cut %v; "+
		"%d unsynced pages dropped, %d written torn; acknowledged: %d inbound, %d sends, %d images, %d reports, %d erasures; "+
		"lost 0, duplicated 0; backups verified after cuts: %v; %d temp files found after cuts (none under a final name); "+
		"%d cuts left the schema unmigrated",
		ps.cuts, ps.torn, ps.duringOnline, ps.duringCompact, ps.migrationCuts,
		ps.droppedPages, ps.tornPages, l.count("in"), l.count("out"), l.count("img"), len(l.reports), len(l.erased),
		ps.backupsVerified, ps.halfFilesSeen, ps.oldSchemaAfterCut)
}

// ---- the ledger of what was acknowledged ----

type ackRec struct {
	kind   string // in, out, img
	number string
	at     time.Time // when the acknowledgement arrived
}

type backupRec struct {
	kind  string // online, scheduled, pre-migration, compact
	path  string
	size  int64 // -1: not reported
	began time.Time
}

type ledger struct {
	mu       sync.Mutex
	acks     map[string]ackRec
	tried    map[string]bool
	reports  map[string]map[string]bool // send id → statuses acknowledged
	erasing  map[string]bool            // numbers whose erasure was asked
	erased   map[string]bool            // numbers whose erasure was acknowledged
	backups  []backupRec                // reported finished, not yet verified
	refused  []string
	preMigAt time.Time // when the serve that migrates started
}

func newLedger() *ledger {
	return &ledger{acks: map[string]ackRec{}, tried: map[string]bool{}, reports: map[string]map[string]bool{},
		erasing: map[string]bool{}, erased: map[string]bool{}}
}

func (l *ledger) try(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tried[id] = true
}

func (l *ledger) ack(id, kind, number string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks[id] = ackRec{kind: kind, number: number, at: time.Now()}
}

func (l *ledger) refuse(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused = append(l.refused, s)
}

// someSend picks an acknowledged send to report on.
func (l *ledger) someSend(rng *rand.Rand) (id, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k, a := range l.acks { // reservoir sampling over the sends
		if a.kind == "out" {
			n++
			if rng.IntN(n) == 0 {
				id, to = k, a.number
			}
		}
		if n >= 64 {
			break
		}
	}
	return id, to
}

func (l *ledger) ackReport(id, status string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reports[id] == nil {
		l.reports[id] = map[string]bool{}
	}
	l.reports[id][status] = true
}

func (l *ledger) eraseAsked(number string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erasing[number] = true
}

func (l *ledger) eraseDone(number string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erased[number] = true
}

func (l *ledger) backupDone(b backupRec) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.backups = append(l.backups, b)
}

func (l *ledger) takeBackups() []backupRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.backups
	l.backups = nil
	return b
}

func (l *ledger) expectPreMigration(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.preMigAt = at
}

var (
	scheduledRE = regexp.MustCompile(`msg="scheduled backup written".* path=(\S+) bytes=(\d+)`)
	preMigRE    = regexp.MustCompile(`msg="wrote backup before migrating".* path=(\S+)`)
	stampRE     = regexp.MustCompile(`(\d{8}T\d{6}Z)\.db$`)
)

// noteLogs records the backups a (dead or stopped) service reported
// finished: the last scheduled one (keep = powerKeep, so earlier ones may
// be pruned since; a later service may prune this one too, see prunedBy)
// and the pre-migration one.
func (l *ledger) noteLogs(s *svc) {
	logs := s.logs.String()
	l.mu.Lock()
	defer l.mu.Unlock()
	if all := scheduledRE.FindAllStringSubmatch(logs, -1); len(all) > 0 {
		m := all[len(all)-1]
		size, _ := strconv.ParseInt(m[2], 10, 64)
		// The backup began at the time in its name (truncated to the
		// second): everything acknowledged before that is in it.
		began := time.Time{}
		if sm := stampRE.FindStringSubmatch(m[1]); sm != nil {
			began, _ = time.Parse("20060102T150405Z", sm[1])
		}
		l.backups = append(l.backups, backupRec{kind: "scheduled", path: m[1], size: size, began: began})
	}
	if m := preMigRE.FindStringSubmatch(logs); m != nil {
		l.backups = append(l.backups, backupRec{kind: "pre-migration", path: m[1], size: -1, began: l.preMigAt})
	}
}

func (l *ledger) acked(kind string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for id, a := range l.acks {
		if a.kind == kind && !l.erasing[a.number] {
			ids = append(ids, id)
		}
	}
	return ids
}

// count is the number of acknowledged ids of kind (caller holds mu).
func (l *ledger) count(kind string) int {
	n := 0
	for _, a := range l.acks {
		if a.kind == kind {
			n++
		}
	}
	return n
}

// verifyStore checks st against the ledger: every id acknowledged before
// cutoff is stored exactly once (erased customers aside). full adds what
// only the live database must show: no id stored twice, every report
// recorded, every acknowledged erasure complete.
func (l *ledger) verifyStore(t *testing.T, st *store.Store, what string, cutoff time.Time, full bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	lost, doubled := 0, 0
	for id, a := range l.acks {
		if l.erasing[a.number] {
			if full && l.erased[a.number] {
				msgs, err := st.MessagesByExternalID(id)
				require.NoError(t, err)
				if len(msgs) != 0 {
					t.Errorf("%s: %s is stored although its customer's erasure was acknowledged", what, id)
				}
			}
			continue
		}
		if !a.at.Before(cutoff) {
			continue
		}
		msgs, err := st.MessagesByExternalID(id)
		require.NoError(t, err)
		switch {
		case len(msgs) == 0:
			lost++
			if lost <= 5 {
				t.Errorf("%s: acknowledged %s %s is not stored", what, a.kind, id)
			}
		case len(msgs) > 1:
			doubled++
			t.Errorf("%s: acknowledged %s %s is stored %d times", what, a.kind, id, len(msgs))
		}
	}
	if lost > 5 {
		t.Errorf("%s: %d acknowledged messages lost in all", what, lost)
	}
	if !full {
		return
	}
	for id := range l.tried {
		msgs, err := st.MessagesByExternalID(id)
		require.NoError(t, err)
		if len(msgs) > 1 {
			t.Errorf("%s: %s is stored %d times", what, id, len(msgs))
		}
	}
	for id, statuses := range l.reports {
		msgs, err := st.MessagesByExternalID(id)
		require.NoError(t, err)
		if len(msgs) != 1 {
			continue // reported above
		}
		for status := range statuses {
			found := false
			for _, e := range msgs[0].Timeline {
				found = found || e.Status == status
			}
			if !found {
				t.Errorf("%s: the acknowledged %s report for %s is not on its timeline %+v", what, status, id, msgs[0].Timeline)
			}
		}
	}
}

// ---- payloads (delivery and seen reports: docs/protocols.md#infobip-reports) ----

func deliveryReport(id, to string) []byte {
	b, _ := json.Marshal(map[string]any{"results": []any{map[string]any{
		"bulkId": "bulk-" + id, "messageId": id, "to": to,
		"sentAt": "2024-05-01T10:00:01.000+0000", "doneAt": "2024-05-01T10:00:02.000+0000",
		"status": map[string]any{"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET", "description": "Message delivered to handset"},
		"error":  map[string]any{"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": false},
	}}})
	return b
}

func seenReport(id, to string) []byte {
	b, _ := json.Marshal(map[string]any{"results": []any{map[string]any{
		"messageId": id, "to": to, "sentAt": "2024-05-01T10:00:01.000+0000", "seenAt": "2024-05-01T10:00:03.000+0000",
	}}})
	return b
}

// ---- helpers ----

// procSet tracks the child processes a cut must kill.
type procSet struct {
	mu    sync.Mutex
	procs map[*exec.Cmd]bool
}

// run runs cmd to its end (or until killAll) and returns its stdout.
func (ps *procSet) run(cmd *exec.Cmd) ([]byte, error) {
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	ps.mu.Lock()
	if ps.procs == nil {
		ps.procs = map[*exec.Cmd]bool{}
	}
	err := cmd.Start()
	if err == nil {
		ps.procs[cmd] = true
	}
	ps.mu.Unlock()
	if err != nil {
		return nil, err
	}
	err = cmd.Wait()
	ps.mu.Lock()
	delete(ps.procs, cmd)
	ps.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, errb.String())
	}
	return []byte(out.String()), nil
}

func (ps *procSet) running() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.procs)
}

// killAll SIGKILLs every running child and waits until they are gone.
func (ps *procSet) killAll() {
	ps.mu.Lock()
	for cmd := range ps.procs {
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}
	ps.mu.Unlock()
	for ps.running() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, store.SyncDir(dir))
}
