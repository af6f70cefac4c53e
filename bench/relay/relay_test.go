// Package relay benchmarks the built imchannel binary's ingest with one
// [[relay]] target attached against ingest without one, measured in the
// same run, and the relay's throughput against a target that answers at
// once:
//
//	go test ./bench/relay/ -run '^$' -bench . -benchtime 1x
//
// RELAY_N sets how many messages each phase posts (default 4000),
// RELAY_CLIENTS the concurrency (default 32), RELAY_ROUNDS how many
// interleaved rounds (default 3). TestRelaySmoke runs the same code with a
// few hundred messages (skipped with -short).
package relay

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"imchannel/bench/internal/benchkit"
)

// seedText is CTLive's example text message (docs/protocols.md#infobip-inbound); %s is a unique messageId.
const seedText = `{"results":[{"from":"385919998888","to":"1234","integrationType":"WHATSAPP","receivedAt":"2019-07-19T11:21:27.861+0000","messageId":"%s","pairedMessageId":null,"message":{"type":"TEXT","text":"Support hello"}}]}`

const (
	benchUser = "ctlive"
	benchPass = "bench-secret"
)

// sink is a target that answers at once and counts the results it got.
type sink struct {
	srv     *httptest.Server
	results atomic.Int64
	down    atomic.Bool
	mu      sync.Mutex
	last    time.Time
}

var resultRe = regexp.MustCompile(`"messageId"`)

func newSink(tb testing.TB) *sink {
	s := &sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if s.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		s.results.Add(int64(len(resultRe.FindAllIndex(b, -1))))
		s.mu.Lock()
		s.last = time.Now()
		s.mu.Unlock()
	}))
	tb.Cleanup(s.srv.Close)
	return s
}

// waitFor waits until the sink holds n results and answers when the last
// arrived.
func (s *sink) waitFor(tb testing.TB, n int64) time.Time {
	deadline := time.Now().Add(10 * time.Minute)
	for s.results.Load() < n {
		if time.Now().After(deadline) {
			tb.Fatalf("the target got %d of %d results", s.results.Load(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter the target fills
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// startBinary runs imchannel serve with a fresh database; relayURL, when
// set, attaches one [[relay]] target in the IM channel format.
func startBinary(tb testing.TB, bin, dir, relayURL string) (string, int) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	db := filepath.Join(dir, "bench.db")
	cfg := filepath.Join(dir, "bench.toml")
	toml := fmt.Sprintf("addr = \"127.0.0.1:0\"\ndb = %q\n\n[inbound]\nbasic_user = %q\nbasic_password = %q\n", db, benchUser, benchPass)
	if relayURL != "" {
		toml += fmt.Sprintf("\n[[relay]]\nurl = %q\nformat = \"infobip\"\nmax_backoff = \"100ms\"\n", relayURL)
	}
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		tb.Fatal(err)
	}
	sp, err := benchkit.StartServe(bin, cfg, filepath.Join(dir, "serve.log"), 30*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = sp.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-sp.Done:
		case <-time.After(60 * time.Second):
			_ = sp.Cmd.Process.Kill()
		}
	})
	return "http://" + sp.Addr + "/imchannel/message", sp.Cmd.Process.Pid
}

// ingest posts n fresh messages from clients concurrent clients and
// answers the rate and the p99 latency.
func ingest(tb testing.TB, url, prefix string, n, clients int) (float64, time.Duration) {
	tr := &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	lat := make([]time.Duration, n)
	var failed atomic.Int64
	start := time.Now()
	benchkit.Spread(clients, n, func(i int) {
		t0 := time.Now()
		status, _, err := benchkit.Post(c, url, []byte(fmt.Sprintf(seedText, fmt.Sprintf("%s-%08d", prefix, i))), benchUser, benchPass)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("status %d", status)
		}
		if err != nil {
			failed.Add(1)
		}
		lat[i] = time.Since(t0)
	})
	d := time.Since(start)
	if f := failed.Load(); f > 0 {
		tb.Fatalf("%d posts failed", f)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return float64(n) / d.Seconds(), lat[len(lat)*99/100]
}

// result is one run's figures.
type result struct {
	without, with []float64 // ingest msgs/s per round
	p99w, p99r    []time.Duration
	// cpuWO and cpuW are the server's CPU per message: without a relay,
	// and with one until the target has every message (relaying included).
	cpuWO, cpuW []time.Duration
	live, drain []float64 // relay results/s: during ingest, and from a backlog
	down        []float64 // ingest msgs/s while the target answers 503
	ratio       float64   // median ingest rate with / median without
	roundRatio  float64   // median of the rounds' with / without
	cpuRatio    float64   // median CPU per message without / with
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// compare runs rounds of: ingest without a relay, ingest with one (the
// target answering at once), then the relay draining a backlog of n
// events that piled up while the target answered 503.
func compare(tb testing.TB, n, clients, rounds int) result {
	dir := tb.TempDir()
	bin := benchkit.BuildBinary(tb, dir)
	var r result
	for i := range rounds {
		plain, plainPID := startBinary(tb, bin, filepath.Join(dir, fmt.Sprintf("plain%d", i)), "")
		tgt := newSink(tb)
		relayed, relayPID := startBinary(tb, bin, filepath.Join(dir, fmt.Sprintf("relay%d", i)), tgt.srv.URL)
		var w, wo float64
		var p99w, p99r, cpuWO, cpuW time.Duration
		var start time.Time
		plainRun := func() {
			c0 := benchkit.ProcCPU(plainPID)
			wo, p99w = ingest(tb, plain, "p", n, clients)
			cpuWO = benchkit.ProcCPU(plainPID) - c0
		}
		relayRun := func() {
			c0 := benchkit.ProcCPU(relayPID)
			start = time.Now()
			w, p99r = ingest(tb, relayed, "r", n, clients)
			tgt.waitFor(tb, int64(n))
			cpuW = benchkit.ProcCPU(relayPID) - c0
		}
		// Alternate which goes first, so a burst of load elsewhere on
		// the machine does not always land on the same side.
		if i%2 == 0 {
			plainRun()
			relayRun()
		} else {
			relayRun()
			plainRun()
		}
		last := tgt.waitFor(tb, int64(n))
		r.without, r.with = append(r.without, wo), append(r.with, w)
		r.p99w, r.p99r = append(r.p99w, p99w), append(r.p99r, p99r)
		r.cpuWO, r.cpuW = append(r.cpuWO, cpuWO/time.Duration(n)), append(r.cpuW, cpuW/time.Duration(n))
		r.live = append(r.live, float64(n)/last.Sub(start).Seconds())

		// The backlog: the target is down while n more arrive, then answers.
		tgt.down.Store(true)
		dr, _ := ingest(tb, relayed, "b", n, clients)
		r.down = append(r.down, dr)
		before := tgt.results.Load()
		tgt.down.Store(false)
		t0 := time.Now()
		end := tgt.waitFor(tb, before+int64(n))
		r.drain = append(r.drain, float64(n)/end.Sub(t0).Seconds())
	}
	r.ratio = median(r.with) / median(r.without)
	var rr []float64
	for i := range r.with {
		rr = append(rr, r.with[i]/r.without[i])
	}
	r.roundRatio = median(rr)
	var cr []float64
	for i := range r.cpuW {
		if r.cpuW[i] > 0 {
			cr = append(cr, float64(r.cpuWO[i])/float64(r.cpuW[i]))
		}
	}
	if len(cr) > 0 {
		r.cpuRatio = median(cr)
	}
	return r
}

func report(tb testing.TB, r result, n, clients int) {
	tb.Logf("load: %s", loadavg())
	tb.Logf("%d messages per phase, %d clients, %d rounds", n, clients, len(r.with))
	for i := range r.with {
		tb.Logf("round %d: ingest without relay %.0f msg/s (p99 %s, %s CPU/msg), with relay %.0f msg/s (p99 %s, %s CPU/msg with relaying), ratio %.2f; ingest while the target is down %.0f msg/s; relay live %.0f results/s, backlog drain %.0f results/s",
			i+1, r.without[i], r.p99w[i].Round(time.Millisecond), r.cpuWO[i], r.with[i], r.p99r[i].Round(time.Millisecond), r.cpuW[i],
			r.with[i]/r.without[i], r.down[i], r.live[i], r.drain[i])
	}
	tb.Logf("ingest with/without relay: medians %.2f, median of the rounds' ratios %.2f (target >= 0.90); while the target is down: %.2f; CPU per message without/with: %.2f; relay drain median %.0f results/s",
		r.ratio, r.roundRatio, median(r.down)/median(r.without), r.cpuRatio, median(r.drain))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(bytes.TrimSpace(b))
}

func BenchmarkRelay(b *testing.B) {
	n, clients, rounds := benchkit.EnvInt("RELAY_N", 4000), benchkit.EnvInt("RELAY_CLIENTS", 32), benchkit.EnvInt("RELAY_ROUNDS", 3)
	for range b.N {
		r := compare(b, n, clients, rounds)
		report(b, r, n, clients)
		b.ReportMetric(r.ratio, "ingest-ratio")
		b.ReportMetric(r.roundRatio, "round-ratio")
		b.ReportMetric(r.cpuRatio, "cpu-ratio")
		b.ReportMetric(median(r.drain), "relay-results/s")
	}
}

// TestRelaySmoke runs the benchmark small: the relayed service delivers
// every message, and both sides ingest.
func TestRelaySmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	r := compare(t, 200, 8, 1)
	report(t, r, 200, 8)
	if r.with[0] <= 0 || r.without[0] <= 0 || r.drain[0] <= 0 {
		t.Fatal("a phase measured nothing")
	}
}
