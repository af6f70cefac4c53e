// Package webbench measures the agents' pages on a large database: the
// conversation list (plain and filtered), a 200-message thread, a number
// search and message-text search (a rare order number, two common words), with 8
// agents asking at once over HTTP, against a trivial handler through the
// same stack (router, Basic auth, loopback HTTP) as the baseline. It also
// times store.Open on that database.
//
//	WEB_BENCH=1 go test ./bench/web/ -run TestWebLatency -v -timeout 60m
//
// WEB_BENCH_ONLY=text measures only the pages whose name holds "text"
// (and the baseline). WEB_BENCH_MESSAGES and WEB_BENCH_CONVERSATIONS size the database
// (default 1,000,000 messages in 10,000 conversations with WEB_BENCH=1; a
// small database without it, so the harness itself runs in CI). The built
// file is cached under bench/out/ and reused by later runs.
package webbench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/stretchr/testify/require"

	"imchannel/bench/internal/benchkit"
	"imchannel/httpx"
	"imchannel/migrations"
	"imchannel/store"
	"imchannel/web"
)

const (
	agents   = 8
	user     = "agent"
	password = "bench-password"
)

func TestWebLatency(t *testing.T) {
	// The pages are served in this process: run the collector as
	// `imchannel serve` does.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	full := os.Getenv("WEB_BENCH") == "1"
	msgs, convs, reqs := 5000, 100, 5
	if full {
		msgs, convs, reqs = 1_000_000, 10_000, 250
	}
	msgs = benchkit.EnvInt("WEB_BENCH_MESSAGES", msgs)
	convs = benchkit.EnvInt("WEB_BENCH_CONVERSATIONS", convs)
	reqs = benchkit.EnvInt("WEB_BENCH_REQUESTS", reqs) // per agent and page

	dir := t.TempDir()
	if full {
		dir = filepath.Join("..", "out")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	path := filepath.Join(dir, fmt.Sprintf("web-%d-%d-v%d.db", msgs, convs, migrations.Latest()))
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		build(t, path, msgs, convs)
		t.Logf("built %s (%d messages, %d conversations) in %s", path, msgs, convs, time.Since(start).Round(time.Second))
	} else {
		t.Logf("reusing %s", path)
	}
	fi, err := os.Stat(path)
	require.NoError(t, err)

	start := time.Now()
	st, err := store.Open(path, store.Options{})
	openTime := time.Since(start)
	require.NoError(t, err)
	defer st.Close()

	w, err := web.New(web.Deps{Store: st, Creds: []httpx.Credential{{User: user, Password: password}},
		LastBackup: st.LastBackup})
	require.NoError(t, err)
	r := mux.NewRouter()
	w.Register(r)
	creds := []httpx.Credential{{User: user, Password: password}}
	r.Handle("/bench/baseline", httpx.RequireBasic(creds, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})))
	srv := httptest.NewServer(r)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * agents}}

	// The pages: the busiest threads hold 1,000 messages, so their first
	// page has the full 200.
	var big []string
	var numbers []string
	cursor := ""
	for len(big) < 20 {
		cs, next, err := st.ListConversations("", 500, cursor)
		require.NoError(t, err)
		for _, c := range cs {
			if c.MessageCount >= 200 && len(big) < 20 {
				big = append(big, c.ID)
			}
			if len(numbers) < 50 {
				numbers = append(numbers, c.Customer)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	require.NotEmpty(t, big, "no conversation with 200 messages")

	pages := []struct {
		name string
		url  func(i int) string
		want string
	}{
		{"baseline (auth + JSON)", func(int) string { return "/bench/baseline" }, `"ok"`},
		{"list page /", func(int) string { return "/" }, `class="conv-list"`},
		{"thread page (200 msgs)", func(i int) string { return "/conversations/" + big[i%len(big)] }, `id="thread"`},
		{"number search /?q=", func(i int) string {
			n := numbers[i%len(numbers)]
			return "/?q=" + n[len(n)-7:len(n)-1] // six digits from the middle
		}, `class="conv-list"`},
		{"API 200 msgs", func(i int) string { return "/api/v1/conversations/" + big[i%len(big)] + "/messages?limit=200" }, `"messages"`},
		{"unanswered list /?filter=unanswered", func(int) string { return "/?filter=unanswered" }, `id="conv-h"`},
		{"failed list /?filter=failed", func(int) string { return "/?filter=failed" }, `id="conv-h"`},
		{"business list /?business=", func(int) string { return "/?business=3130765432" }, `id="conv-h"`},
		{"API filtered list", func(int) string { return "/api/v1/conversations?filter=unanswered&business=3120123456" }, `"total"`},
		{"text search: order number", func(i int) string {
			return "/api/v1/messages?q=" + orderNumber((i*7919)%msgs) + "&limit=50"
		}, `"total":1`},
		{"text search: two common words", func(i int) string {
			return "/api/v1/messages?q=" + words[i%len(words)] + "+" + words[(i+5)%len(words)] + "&limit=50"
		}, `"total"`},
		{"search page /?q= words", func(i int) string { return "/?q=parcel+" + orderNumber((i*7919)%msgs) }, `class="hits"`},
	}
	for _, f := range []store.ConvQuery{{Filter: store.FilterUnanswered}, {Filter: store.FilterFailed}, {Business: "3130765432"},
		{Filter: store.FilterUnanswered, Business: "3120123456"}} {
		p, err := st.FindConversations(f, 1, "")
		require.NoError(t, err)
		t.Logf("%+v: %d conversations", f, p.Total)
	}
	type result struct {
		name           string
		p50, p99, max  time.Duration
		perSec         float64
		bytes          int64
		requests       int
		failedRequests int64
		cpu            time.Duration // process CPU (server and client) per request
	}
	var results []result
	only := os.Getenv("WEB_BENCH_ONLY") // a piece of page names: measure those (and the baseline) only
	for _, p := range pages {
		if only != "" && p.name != pages[0].name && !strings.Contains(p.name, only) {
			continue
		}
		// Warm up once (first page faults, template buffers).
		get(t, client, srv.URL+p.url(0), p.want)
		lat := make([][]time.Duration, agents)
		var failed atomic.Int64
		var size atomic.Int64
		var wg sync.WaitGroup
		begin := time.Now()
		cpu0 := cpuTime()
		for a := 0; a < agents; a++ {
			wg.Add(1)
			go func(a int) {
				defer wg.Done()
				for i := 0; i < reqs; i++ {
					t0 := time.Now()
					n, ok := fetch(client, srv.URL+p.url(a*reqs+i), p.want)
					lat[a] = append(lat[a], time.Since(t0))
					size.Store(n)
					if !ok {
						failed.Add(1)
					}
				}
			}(a)
		}
		wg.Wait()
		elapsed := time.Since(begin)
		cpu := (cpuTime() - cpu0) / time.Duration(agents*reqs)
		all := slices.Concat(lat...)
		slices.Sort(all)
		results = append(results, result{
			name: p.name, p50: all[len(all)/2], p99: all[len(all)*99/100], max: all[len(all)-1],
			perSec: float64(len(all)) / elapsed.Seconds(), bytes: size.Load(), requests: len(all), failedRequests: failed.Load(),
			cpu: cpu,
		})
		require.Zero(t, failed.Load(), "%s: failed requests", p.name)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "database: %d messages, %d conversations, %.0f MiB; store.Open %s\n", msgs, convs,
		float64(fi.Size())/(1<<20), openTime.Round(time.Microsecond))
	fmt.Fprintf(&b, "%d agents × %d requests per page\n\n", agents, reqs)
	fmt.Fprintf(&b, "| page | p50 | p99 | max | req/s | CPU/req | body | p99 vs baseline | CPU vs baseline |\n|---|---|---|---|---|---|---|---|---|\n")
	base := results[0]
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.0f | %s | %d KiB | %.1f× | %.1f× |\n", r.name, ms(r.p50), ms(r.p99), ms(r.max), r.perSec,
			ms(r.cpu), r.bytes/1024, float64(r.p99)/float64(base.p99), float64(r.cpu)/float64(base.cpu))
	}
	t.Log("\n" + b.String())
	if full {
		require.NoError(t, os.WriteFile(filepath.Join("..", "out", "web-results.md"), []byte(b.String()), 0o644))
	}
}

// cpuTime is the process's user and system CPU time: on a shared, noisy
// machine it says what a request costs better than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func get(t *testing.T, c *http.Client, url, want string) {
	t.Helper()
	_, ok := fetch(c, url, want)
	require.True(t, ok, "GET %s", url)
}

// fetch reads a whole answer; ok means 200 with want in the body.
func fetch(c *http.Client, url, want string) (int64, bool) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	req.SetBasicAuth(user, password)
	resp, err := c.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return int64(len(body)), err == nil && resp.StatusCode == http.StatusOK && strings.Contains(string(body), want)
}

var (
	names = []string{"Frank", "Aïcha", "Bob", "Marta", "Jan de Vries", "Yusuf", "Lena", "Pieter", "Sofia", ""}
	words = []string{"hello", "order", "delivery", "where", "is", "my", "parcel", "please", "thanks", "invoice",
		"refund", "today", "tomorrow", "help", "account", "number", "the", "can", "you", "check", "status", "still"}
)

// Every orderEvery-th message carries an order number.
const orderEvery = 40

// orderNumber is the order number of message i (rounded down to one that
// has one).
func orderNumber(i int) string { return strconv.Itoa(7_000_000 + i/orderEvery*orderEvery) }

// build writes the database: 1% of conversations are busy (1,000 messages
// each, or a tenth of the total when that is less), the rest share what is
// left; messages arrive interleaved across conversations, in time order.
func build(t *testing.T, path string, msgs, convs int) {
	tmp := path + ".building"
	_ = os.Remove(tmp)
	base := time.Now().Add(-90 * 24 * time.Hour)
	var tick atomic.Int64
	st, err := store.Open(tmp, store.Options{Now: func() time.Time {
		return base.Add(time.Duration(tick.Add(1)) * 2 * time.Second)
	}})
	require.NoError(t, err)

	rnd := rand.New(rand.NewPCG(7, 7))
	busy := max(1, convs/100)
	perBusy := min(1000, msgs/10/busy)
	counts := make([]int, convs)
	left := msgs
	for c := 0; c < busy; c++ {
		counts[c] = perBusy
		left -= perBusy
	}
	for c := busy; c < convs; c++ {
		counts[c] = left / (convs - c)
		left -= counts[c]
	}
	order := make([]int32, 0, msgs)
	for c, n := range counts {
		for i := 0; i < n; i++ {
			order = append(order, int32(c))
		}
	}
	rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })

	customer := func(c int) string { return fmt.Sprintf("316%08d", 10_000_000+c*7919%90_000_000) }
	business := func(c int) string { return []string{"3120123456", "3130765432", "1234"}[c%3] }
	sent := make([]int, convs)
	const batch = 20000
	var pending []*store.Message
	ctx := context.Background()
	for i, c32 := range order {
		c := int(c32)
		n := sent[c]
		sent[c]++
		var text strings.Builder
		for w := 2 + rnd.IntN(25); w > 0; w-- {
			text.WriteString(words[rnd.IntN(len(words))])
			text.WriteByte(' ')
		}
		if i%orderEvery == 0 {
			// An order number: what agents search message text for.
			text.WriteString("parcel order #" + orderNumber(i))
		}
		m := &store.Message{
			Provider:   store.ProviderInfobip,
			ExternalID: fmt.Sprintf("wamid.bench.%08d", i),
			Type:       store.TypeText,
			Text:       text.String(),
		}
		if n%3 == 2 {
			m.Direction, m.From, m.To = store.Outbound, business(c), customer(c)
			at := base.Add(time.Duration(i) * 6 * time.Second)
			m.Status = store.StatusSeen
			if i%97 == 0 {
				m.Status = store.StatusFailed
			}
			m.Timeline = []store.Event{{Status: store.StatusQueued, At: at}, {Status: store.StatusSent, At: at.Add(time.Second)},
				{Status: store.StatusDelivered, At: at.Add(2 * time.Second), GroupName: "DELIVERED", Name: "DELIVERED_TO_HANDSET"},
				{Status: store.StatusSeen, At: at.Add(9 * time.Second)}}
		} else {
			m.Direction, m.From, m.To = store.Inbound, customer(c), business(c)
			m.ContactName = names[c%len(names)]
			m.ReceivedAt = base.Add(time.Duration(i) * 6 * time.Second)
			switch {
			case n%17 == 5:
				m.Type, m.Text, m.Caption = store.TypeImage, "", "photo "+strconv.Itoa(n)
				if i%orderEvery == 0 {
					m.Caption += " parcel order #" + orderNumber(i)
				}
				m.Media = &store.Media{State: store.MediaCached, ContentType: "image/jpeg", Size: 120_000}
			case n%11 == 4 && n > 0:
				m.ReplyTo = &store.ReplyRef{ExternalID: fmt.Sprintf("wamid.bench.%08d", i-1)}
			}
		}
		pending = append(pending, m)
		if len(pending) == batch || i == len(order)-1 {
			require.NoError(t, st.BulkLoad(ctx, pending))
			pending = pending[:0]
		}
	}
	// Every seventh customer writes last, after our last answer: the
	// unanswered conversations.
	for c := 0; c < convs; c += 7 {
		pending = append(pending, &store.Message{Provider: store.ProviderInfobip, ExternalID: fmt.Sprintf("wamid.bench.last.%d", c),
			Type: store.TypeText, Text: "still waiting for my parcel", Direction: store.Inbound, From: customer(c), To: business(c),
			ContactName: names[c%len(names)]})
	}
	require.NoError(t, st.BulkLoad(ctx, pending))
	require.NoError(t, st.Close())
	require.NoError(t, os.Rename(tmp, path))
}
