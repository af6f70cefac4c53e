// Package media benchmarks serving cached media to agents against
// http.ServeFile of the same bytes, and the fetch-and-store rate.
//
//	go test ./bench/media/ -run XXX -bench . -benchtime 5x
package media

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"imchannel/config"
	"imchannel/httpx"
	"imchannel/media"
	"imchannel/store"
)

const (
	fileSize = 5 << 20
	agents   = 16
)

var cred = httpx.Credential{User: "agent", Password: "pw"}

// heapPeak samples HeapInuse until stop and returns the peak above the
// level at start.
func heapPeak() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// download has 16 agents fetch url at once and returns the elapsed time.
func download(b *testing.B, client *http.Client, url string, auth bool) time.Duration {
	var wg sync.WaitGroup
	errs := make(chan error, agents)
	start := time.Now()
	for range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if auth {
				req.SetBasicAuth(cred.User, cred.Password)
			}
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK || n != fileSize {
				errs <- fmt.Errorf("status %d, %d bytes, %v", resp.StatusCode, n, err)
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return d
}

func BenchmarkServe5MiBTo16Agents(b *testing.B) {
	dir := b.TempDir()
	st, err := store.Open(filepath.Join(dir, "bench.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	data := make([]byte, fileSize)
	_, _ = rand.Read(data)
	h, err := st.NewHostedMedia(data, "video/mp4", "clip.mp4")
	if err != nil {
		b.Fatal(err)
	}
	md := h.Media
	if _, err := st.QueueWithHosted(context.Background(), &store.Message{Provider: store.ProviderInfobip, ExternalID: "clip",
		From: "1234", To: "31612345678", Type: store.TypeTemplate,
		Outbound: &store.OutboundSpec{TemplateName: "t", HeaderMedia: md.ID}}, h, store.QueueOptions{}); err != nil {
		b.Fatal(err)
	}
	plain := filepath.Join(dir, "clip.mp4")
	if err := os.WriteFile(plain, data, 0o600); err != nil {
		b.Fatal(err)
	}
	data = nil

	r := mux.NewRouter()
	media.NewServer(st, nil, []httpx.Credential{cred}).Register(r)
	ours := httptest.NewServer(r)
	defer ours.Close()
	baseline := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, plain)
	}))
	defer baseline.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: agents}}

	var tOurs, tFile time.Duration
	var peakOurs, peakFile uint64
	b.ResetTimer()
	runOurs := func() {
		stop := heapPeak()
		tOurs += download(b, client, ours.URL+"/media/"+md.ID, true)
		peakOurs = max(peakOurs, stop())
	}
	runFile := func() {
		stop := heapPeak()
		tFile += download(b, client, baseline.URL, false)
		peakFile = max(peakFile, stop())
	}
	for i := range b.N {
		// Alternate the order so neither side always runs on a warmer machine.
		if i%2 == 0 {
			runOurs()
			runFile()
		} else {
			runFile()
			runOurs()
		}
	}
	b.StopTimer()
	mb := float64(b.N*agents*fileSize) / 1e6
	b.ReportMetric(mb/tOurs.Seconds(), "store_MB/s")
	b.ReportMetric(mb/tFile.Seconds(), "servefile_MB/s")
	b.ReportMetric(tFile.Seconds()/tOurs.Seconds(), "ratio")
	b.ReportMetric(float64(peakOurs)/(1<<20), "store_peak_heap_MiB")
	b.ReportMetric(float64(peakFile)/(1<<20), "servefile_peak_heap_MiB")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFetchAndStore: a local origin serves 64 distinct 256 KiB media
// per iteration; the real fetcher GETs each once and stores it (every
// result an fsynced commit, shared by concurrent workers). Baseline: the
// same GETs with the bytes thrown away. MEDIA_BENCH_WORKERS overrides
// media.workers (default 4).
func BenchmarkFetchAndStore(b *testing.B) {
	const perRound, size = 64, 256 << 10
	var served atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		buf := make([]byte, size)
		copy(buf, r.URL.Path) // distinct bytes per URL: no dedupe shortcut
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write(buf)
	}))
	defer origin.Close()
	st, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cfg := media.FromConfig(configDefaults())
	cfg.AllowPrivateHosts = true
	if w, err := strconv.Atoi(os.Getenv("MEDIA_BENCH_WORKERS")); err == nil && w > 0 {
		cfg.Workers = w
	}
	f := media.NewFetcher(st, nil, nil, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	ctxb := context.Background()
	changes, unsubscribe := st.Subscribe(4 * perRound)
	defer unsubscribe()
	var elapsed, baseline time.Duration
	b.ResetTimer()
	for i := range b.N {
		msgs := make([]*store.Message, perRound)
		for j := range msgs {
			msgs[j] = &store.Message{Provider: store.ProviderInfobip, ExternalID: fmt.Sprintf("bench-%d-%d", i, j),
				From: "31612345678", To: "1234", Type: store.TypeImage,
				Media: &store.Media{SourceURL: fmt.Sprintf("%s/m/%d/%d", origin.URL, i, j)}}
		}
		start := time.Now()
		// One webhook post carrying the whole round, then wait for the
		// fetcher's commits (media changes) until every record is cached.
		rs, err := st.SaveInbound(ctxb, msgs)
		if err != nil {
			b.Fatal(err)
		}
		left := map[string]bool{}
		for _, r := range rs {
			msg, _ := st.Message(r.MessageID)
			left[msg.Media.ID] = true
		}
		timeout := time.After(time.Minute)
		for len(left) > 0 {
			for id := range left {
				md, err := st.Media(id)
				if err != nil {
					b.Fatal(err)
				}
				switch md.State {
				case store.MediaCached:
					delete(left, id)
				case store.MediaPending:
				default:
					b.Fatalf("media %s: %s %s", id, md.State, md.Error)
				}
			}
			if len(left) == 0 {
				break
			}
			select {
			case <-changes:
			case <-timeout:
				b.Fatalf("%d media still pending after a minute", len(left))
			}
		}
		elapsed += time.Since(start)

		// Baseline: the same GETs with the same concurrency, bytes dropped.
		start = time.Now()
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range cfg.Workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := next.Add(1) - 1; j < perRound; j = next.Add(1) - 1 {
					resp, err := http.Get(fmt.Sprintf("%s/base/%d/%d", origin.URL, i, j))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		baseline += time.Since(start)
	}
	b.StopTimer()
	n := float64(b.N * perRound)
	b.ReportMetric(n/elapsed.Seconds(), "media/s")
	b.ReportMetric(n*size/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(n/baseline.Seconds(), "get_only_media/s")
	b.ReportMetric(0, "ns/op")
	if got := served.Load(); got != 2*int64(n) {
		b.Fatalf("origin served %d GETs for %d media", got, int(n))
	}
	if p := st.Check(); len(p) > 0 {
		b.Fatal(p)
	}
}

func configDefaults() config.Config { return config.Default() }
