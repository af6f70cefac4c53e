// Package outbound_bench measures the send API's accept rate and the
// dispatcher's delivery rate, each against a baseline from the same run.
//
//	go test ./bench/outbound/ -run XXX -bench . -benchtime 3000x
package outbound_bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"imchannel/config"
	"imchannel/metrics"
	"imchannel/outbound"
	"imchannel/store"
)

const clients = 64

func cfgFor(providerURL string) config.Config {
	cfg := config.Default()
	cfg.API = config.API{BearerToken: "tok", AppKey: "key", AppSecret: "secret", TokenTTL: config.Duration{Duration: time.Hour}}
	cfg.Provider.URL = providerURL
	cfg.Provider.DefaultNumber = "4930123456"
	cfg.Provider.RatePerSecond = 0
	cfg.Outbox.CheckWindow = false
	return cfg
}

func openStore(b *testing.B) *store.Store {
	st, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return st
}

// hammer posts n requests from 64 clients and returns requests per second.
func hammer(b *testing.B, url string, n int) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				body := fmt.Sprintf(`{"destinations":[{"messageId":"bench-%d","to":{"phoneNumber":"4179%07d"}}],"whatsApp":{"text":"hello %d"}}`, i, i, i)
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
				req.Header.Set("Authorization", "Bearer tok")
				req.Header.Set("x-app-key", "key")
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkAccept: the send API storing each request durably, against the
// same router and HTTP stack answering without storing.
func BenchmarkAccept(b *testing.B) {
	b.Run("baseline-no-store", func(b *testing.B) {
		r := mux.NewRouter()
		r.HandleFunc("/omni/1/advanced", func(w http.ResponseWriter, r *http.Request) {
			var v map[string]any
			_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&v)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"messages":[],"bulkId":"x"}`)
		}).Methods(http.MethodPost)
		srv := httptest.NewServer(r)
		defer srv.Close()
		b.ResetTimer()
		b.ReportMetric(hammer(b, srv.URL+"/omni/1/advanced", b.N), "req/s")
	})
	b.Run("send-api", func(b *testing.B) {
		st := openStore(b)
		r := mux.NewRouter()
		outbound.NewAPI(outbound.Deps{Store: st, Log: slog.New(slog.DiscardHandler), Metrics: metrics.New(), Config: cfgFor("http://127.0.0.1:1/")}).Register(r)
		srv := httptest.NewServer(r)
		defer srv.Close()
		b.ResetTimer()
		b.ReportMetric(hammer(b, srv.URL+"/omni/1/advanced", b.N), "req/s")
	})
}

func fastProvider() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"messages":[{"to":{"phoneNumber":"1"},"status":{"groupId":1,"groupName":"PENDING","id":7,"name":"PENDING_ENROUTE","description":"ok"},"messageId":"p"}]}`)
	}))
}

// BenchmarkDispatch: the dispatcher draining b.N queued messages (to b.N/4
// customers) to a fast local provider, against the same number of workers
// posting the same payloads straight to it with no store.
func BenchmarkDispatch(b *testing.B) {
	workers := config.Default().Outbox.Workers
	b.Run("baseline-direct-post", func(b *testing.B) {
		prov := fastProvider()
		defer prov.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					resp, err := client.Post(prov.URL, "application/json", bytes.NewReader([]byte(`{"scenarioKey":"k","destinations":[{"messageId":"m","to":{"phoneNumber":"41790000001"}}],"whatsApp":{"text":"hello"}}`)))
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
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	})
	b.Run("dispatcher", func(b *testing.B) {
		prov := fastProvider()
		defer prov.Close()
		st := openStore(b)
		ctx := context.Background()
		customers := max(b.N/4, 1)
		for i := 0; i < b.N; i += 500 {
			var batch []*store.Message
			for j := i; j < min(i+500, b.N); j++ {
				batch = append(batch, &store.Message{Provider: "infobip", ExternalID: fmt.Sprintf("d-%d", j), From: "4930123456",
					To: fmt.Sprintf("4179%07d", j%customers), Type: store.TypeText, Text: "hello",
					Outbound: &store.OutboundSpec{WhatsApp: json.RawMessage(`{"text":"hello"}`)}})
			}
			if _, err := st.QueueOutbound(ctx, batch, store.QueueOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		changes, stop := st.Subscribe(1024)
		defer stop()
		d := outbound.NewDispatcher(outbound.Deps{Store: st, Log: slog.New(slog.DiscardHandler), Metrics: metrics.New(), Config: cfgFor(prov.URL)})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		b.ResetTimer()
		start := time.Now()
		go func() { defer close(done); d.Run(runCtx) }()
		for {
			s, err := st.Stats()
			if err != nil {
				b.Fatal(err)
			}
			if s.OutboxDepth == 0 {
				break
			}
			select {
			case <-changes:
			case <-time.After(50 * time.Millisecond):
			}
		}
		el := time.Since(start)
		cancel()
		<-done
		b.ReportMetric(float64(b.N)/el.Seconds(), "msg/s")
		s, _ := st.Stats()
		if s.FailedSends != 0 {
			b.Fatalf("%d sends failed", s.FailedSends)
		}
	})
}
