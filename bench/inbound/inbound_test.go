package inbound

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"imchannel/bench/internal/benchkit"
)

// The answers every post of one new (or resent) message must get.
const (
	newAnswer = `{"accepted":1,"duplicates":0,"quarantined":0}`
	dupAnswer = `{"accepted":0,"duplicates":1,"quarantined":0}`
)

const (
	benchUser = "ctlive"
	benchPass = "bench-secret"
)

// bodies makes n seed text posts with unique messageIds under prefix.
func bodies(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = benchkit.SeedText("385919998888", fmt.Sprintf("%s-%08d", prefix, i))
	}
	return out
}

// ---- the load generator ----

type phase struct {
	name   string
	n      int
	dur    time.Duration
	lat    []time.Duration
	failed int
	firstE string
	cpu    time.Duration // the server process's CPU time during the phase
}

// cpuPerMsg is the server's CPU time per message.
func (p phase) cpuPerMsg() time.Duration { return p.cpu / time.Duration(p.n) }

func (p phase) rate() float64 { return float64(p.n) / p.dur.Seconds() }

func (p phase) pct(q float64) time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	i := int(q * float64(len(p.lat)-1))
	return p.lat[i]
}

// run posts every body once from clients concurrent clients and measures
// each request from send to the end of the answer. An answer other than
// 200 with the body want (when set) counts as failed.
func run(name string, t target, posts [][]byte, clients int, auth bool, want string) phase {
	url := t.url
	tr := &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	user := ""
	if auth {
		user = benchUser
	}
	lat := make([]time.Duration, len(posts))
	var failed atomic.Int64
	var firstErr atomic.Value
	cpu0 := benchkit.ProcCPU(t.pid)
	start := time.Now()
	benchkit.Spread(clients, len(posts), func(i int) {
		t0 := time.Now()
		status, b, err := benchkit.Post(client, url, posts[i], user, benchPass)
		if err == nil && (status != http.StatusOK || (want != "" && strings.TrimSpace(string(b)) != want)) {
			err = fmt.Errorf("status %d: %s", status, b)
		}
		lat[i] = time.Since(t0)
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}
	})
	p := phase{name: name, n: len(posts), dur: time.Since(start), lat: lat, failed: int(failed.Load()), cpu: benchkit.ProcCPU(t.pid) - cpu0}
	if e, ok := firstErr.Load().(string); ok {
		p.firstE = e
	}
	sort.Slice(p.lat, func(i, j int) bool { return p.lat[i] < p.lat[j] })
	return p
}

// ---- the baselines: a bare handler, storing with DB.Batch or not at all ----

var bareBucket = []byte("messages")

// bareHandler decodes the post and, with db set, stores each result under
// its messageId in one DB.Batch (bbolt's own batching, fsync on).
func bareHandler(db *bolt.DB) http.Handler {
	return benchkit.Floor{DB: db, Bucket: bareBucket, Answer: `{"accepted":%d,"duplicates":%d,"quarantined":0}`, Contact: true}
}

// baselineEnv, when set in the environment, makes this test binary a
// baseline server instead: "ceiling" or "floor:<db path>".
const baselineEnv = "INBOUND_BASELINE_SERVER"

// TestMain turns the test binary into a baseline server when asked, so the
// floor and ceiling run out of process exactly as the real binary does.
func TestMain(m *testing.M) {
	mode := os.Getenv(baselineEnv)
	if mode == "" {
		os.Exit(m.Run())
	}
	var db *bolt.DB
	if path, ok := strings.CutPrefix(mode, "floor:"); ok {
		var err error
		if db, err = benchkit.OpenFloor(path, bareBucket); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
	}
	if err := benchkit.Serve(bareHandler(db)); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

// target is a server under test: its URL and process id.
type target struct {
	url string
	pid int
}

// startBareProcess re-runs this test binary as a baseline server (floor
// with a DB.Batch file at dbPath, or ceiling when dbPath is empty) and
// returns its URL.
func startBareProcess(tb testing.TB, dbPath string) target {
	tb.Helper()
	mode := "ceiling"
	if dbPath != "" {
		mode = "floor:" + dbPath
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), baselineEnv+"="+mode)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr, err := benchkit.WaitListening(stderr, 30*time.Second)
	if err != nil {
		tb.Fatalf("baseline %s: %v", mode, err)
	}
	return target{url: "http://" + addr + "/imchannel/message", pid: cmd.Process.Pid}
}

// ---- the real binary ----

type server struct {
	url     string
	cmd     *exec.Cmd
	done    chan error
	db      string
	stopped bool
}

// startBinary runs `imchannel serve` on 127.0.0.1:0 with a fresh database
// and the [inbound] credentials, and waits for its listening line. The
// request log goes to a file, as it would in production, so reading it
// costs the load generator nothing.
func startBinary(tb testing.TB, bin, dir string) *server {
	tb.Helper()
	db := filepath.Join(dir, "bench.db")
	cfg := filepath.Join(dir, "bench.toml")
	toml := fmt.Sprintf("addr = \"127.0.0.1:0\"\ndb = %q\n\n[inbound]\nbasic_user = %q\nbasic_password = %q\n", db, benchUser, benchPass)
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		tb.Fatal(err)
	}
	sp, err := benchkit.StartServe(bin, cfg, filepath.Join(dir, "serve.log"), 30*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	s := &server{url: "http://" + sp.Addr + "/imchannel/message", cmd: sp.Cmd, done: sp.Done, db: db}
	tb.Cleanup(func() { s.stop(tb) })
	return s
}

func (s *server) target() target { return target{url: s.url, pid: s.cmd.Process.Pid} }

func (s *server) stop(tb testing.TB) {
	if s.stopped {
		return
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			tb.Errorf("imchannel serve: %v", err)
		}
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		tb.Error("imchannel serve did not stop within 60s of SIGTERM")
	}
}

// ---- the whole comparison ----

// round is one pass over the four phases.
type round struct {
	ceiling, floor, binNew, binDup phase
}

func (r round) phases() []phase       { return []phase{r.ceiling, r.floor, r.binNew, r.binDup} }
func (r round) newVsFloor() float64   { return r.binNew.rate() / r.floor.rate() }
func (r round) dupVsCeiling() float64 { return r.binDup.rate() / r.ceiling.rate() }

// compare builds the binary, starts it and the two baselines, and runs
// rounds passes of the four phases, each posting n fresh messages (the
// duplicates phase resends the new-messages phase's n). Interleaving the
// phases in rounds keeps a burst of load from elsewhere on the machine from
// landing on one phase only.
func compare(tb testing.TB, n, clients, rounds int) []round {
	tb.Helper()
	dir := tb.TempDir()
	bin := benchkit.BuildBinary(tb, dir)

	// The baselines run in their own process, like the binary, so all three
	// pay the same loopback and scheduling costs.
	ceil := startBareProcess(tb, "")
	floor := startBareProcess(tb, filepath.Join(dir, "floor.db"))
	srv := startBinary(tb, bin, dir)

	warm := bodies("warm", 500)
	run("warmup", ceil, warm, clients, false, "")
	run("warmup", floor, warm, clients, false, "")
	run("warmup", srv.target(), warm, clients, true, newAnswer)

	var rs []round
	for i := range rounds {
		var r round
		r.ceiling = run("ceiling (decode only)", ceil, bodies(fmt.Sprintf("ceil%d", i), n), clients, false, newAnswer)
		r.floor = run("floor (bbolt DB.Batch)", floor, bodies(fmt.Sprintf("floor%d", i), n), clients, false, newAnswer)
		posts := bodies(fmt.Sprintf("bin%d", i), n)
		r.binNew = run("imchannel, new messages", srv.target(), posts, clients, true, newAnswer)
		r.binDup = run("imchannel, duplicates only", srv.target(), posts, clients, true, dupAnswer)
		for _, p := range r.phases() {
			if p.failed > 0 {
				tb.Fatalf("%s: %d of %d requests failed; first: %s", p.name, p.failed, p.n, p.firstE)
			}
		}
		rs = append(rs, r)
	}
	srv.stop(tb)
	// The binary's file must pass its own check after the load.
	out, err := exec.Command(bin, "check", "--db", srv.db).CombinedOutput()
	if err != nil {
		tb.Fatalf("imchannel check after the load: %v\n%s", err, out)
	}
	return rs
}

// median returns the round whose value of f is the median.
func median(rs []round, f func(round) float64) round {
	s := append([]round(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return f(s[i]) < f(s[j]) })
	return s[len(s)/2]
}

func medianOf(rs []round, f func(round) float64) float64 { return f(median(rs, f)) }

func printReport(w io.Writer, rs []round, n, clients int) {
	fmt.Fprintf(w, "\ninbound (infobip webhook): seed 000's text message, %d posts per phase, %d concurrent clients, %d rounds; load average at the end: %s\n\n",
		n, clients, len(rs), benchkit.Loadavg())
	fmt.Fprintf(w, "| round | phase | msgs/s | p50 | p99 | server CPU/msg |\n|---|---|---:|---:|---:|---:|\n")
	for i, r := range rs {
		for _, p := range r.phases() {
			fmt.Fprintf(w, "| %d | %s | %.0f | %s | %s | %.1f µs |\n", i+1, p.name, p.rate(), ms(p.pct(0.50)), ms(p.pct(0.99)), float64(p.cpuPerMsg().Nanoseconds())/1000)
		}
	}
	nf := medianOf(rs, round.newVsFloor)
	dc := medianOf(rs, round.dupVsCeiling)
	best := median(rs, round.newVsFloor)
	p99 := time.Duration(medianOf(rs, func(r round) float64 { return float64(r.binNew.pct(0.99)) }))
	fmt.Fprintf(w, "\nmedians over the rounds:\n")
	fmt.Fprintf(w, "- new messages vs floor: %.2fx (target >= 2x) %s (median round: %.0f vs %.0f msgs/s)\n", nf, verdict(nf >= 2), best.binNew.rate(), best.floor.rate())
	fmt.Fprintf(w, "- new messages p99: %s (target <= 15 ms) %s\n", ms(p99), verdict(p99 <= 15*time.Millisecond))
	fmt.Fprintf(w, "- duplicates vs ceiling: %.0f%% (target >= 80%%) %s\n", 100*dc, verdict(dc >= 0.8))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// BenchmarkInbound runs the comparison once (a fixed count per phase; b.N
// only repeats it) and reports the median ratios as metrics.
func BenchmarkInbound(b *testing.B) {
	n, clients, rounds := benchkit.EnvInt("INBOUND_N", 10000), benchkit.EnvInt("INBOUND_CLIENTS", 64), benchkit.EnvInt("INBOUND_ROUNDS", 3)
	var rs []round
	for range b.N {
		rs = compare(b, n, clients, rounds)
	}
	var sb strings.Builder
	printReport(&sb, rs, n, clients)
	fmt.Print(sb.String())
	b.ReportMetric(medianOf(rs, func(r round) float64 { return r.binNew.rate() }), "new-msgs/s")
	b.ReportMetric(medianOf(rs, round.newVsFloor), "new/floor")
	b.ReportMetric(medianOf(rs, func(r round) float64 { return float64(r.binNew.pct(0.99).Microseconds()) / 1000 }), "new-p99-ms")
	b.ReportMetric(medianOf(rs, round.dupVsCeiling), "dup/ceiling")
}

// TestInboundSmoke runs the benchmark's code on a small load, so it keeps
// working; it asserts that every request got its answer, not any timing.
func TestInboundSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rs := compare(t, 200, 16, 1)
	var sb strings.Builder
	printReport(&sb, rs, 200, 16)
	t.Log(sb.String())
	for _, p := range rs[0].phases() {
		if len(p.lat) != 200 || p.failed != 0 {
			t.Fatalf("%s: %d requests measured, %d failed; want 200, 0", p.name, len(p.lat), p.failed)
		}
	}
}
