package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The seed delivery and seen reports (testdata/infobip/seed_delivery.json,
// seed_seen.json); %s is the messageId.
const (
	seedDelivered = `{"results":[{"bulkId":"","status":{"id":5,"groupId":3,"groupName":"DELIVERED","name":"DELIVERED_TO_HANDSET","description":"Message delivered to handset"},"messageId":"%s","doneAt":"2019-07-19T11:22:56.494+0000","sentAt":"2019-07-19T11:21:58.647+0000","to":"%s","channel":"WHATSAPP"}]}`
	seedSeen      = `{"results":[{"messageId":"%s","to":"%s","sentAt":"2019-07-19T11:21:57.793+0000","seenAt":"2019-07-19T11:23:58.251+0000"}]}`
)

const (
	webhookUser = "ctlive"
	webhookPass = "scale-secret"
	agentUser   = "agent"
	agentPass   = "scale-agent"
)

// phase is one measured load: requests, their latencies, failures.
type phase struct {
	n      int
	dur    time.Duration
	lat    []time.Duration // sorted
	failed int
	firstE string
}

func (p phase) rate() float64 { return float64(p.n) / p.dur.Seconds() }

func (p phase) pct(q float64) time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	return p.lat[int(q*float64(len(p.lat)-1))]
}

func (p phase) max() time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	return p.lat[len(p.lat)-1]
}

// poster sends requests from many clients.
type poster struct {
	client *http.Client
	tr     *http.Transport
}

func newPoster(clients int) *poster {
	tr := &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, IdleConnTimeout: time.Minute}
	return &poster{tr: tr, client: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (p *poster) close() { p.tr.CloseIdleConnections() }

// do sends one request and checks the answer.
func (p *poster) do(method, url string, body []byte, user, pass, want string) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
		if len(b) > 300 {
			b = b[:300]
		}
		return fmt.Errorf("%s %s: status %d: %s", method, url, resp.StatusCode, b)
	}
	return nil
}

// timed runs clients loops until dur passes (dur > 0) or req has been called
// with every index below count (count > 0). req(i) returns one request's
// error; latencies are measured around it.
func timed(clients int, dur time.Duration, count int, req func(i int) error) phase {
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	lats := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if (count > 0 && i >= count) || (dur > 0 && time.Now().After(deadline)) {
					return
				}
				t0 := time.Now()
				err := req(i)
				lats[c] = append(lats[c], time.Since(t0))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	all := slices.Concat(lats...)
	slices.Sort(all)
	p := phase{n: len(all), dur: time.Since(start), lat: all, failed: int(failed.Load())}
	if e, ok := firstErr.Load().(string); ok {
		p.firstE = e
	}
	return p
}

// rssSampler records a process's peak resident set while it runs: anonymous
// memory (heap, stacks) and file pages mapped from the database, apart,
// since the latter are the page cache seen through bbolt's mmap.
type rssSampler struct {
	stop       chan struct{}
	done       chan struct{}
	anon, file int64
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			a, f := rssOf(pid)
			s.anon, s.file = max(s.anon, a), max(s.file, f)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// end stops sampling and returns the peaks in bytes.
func (s *rssSampler) end() rss {
	close(s.stop)
	<-s.done
	return rss{Anon: s.anon, File: s.file}
}

// rss is resident memory: anonymous, and file-backed (the mapped file).
type rss struct{ Anon, File int64 }

func (r rss) max(o rss) rss { return rss{max(r.Anon, o.Anon), max(r.File, o.File)} }

func (r rss) String() string {
	return fmt.Sprintf("%.0f + %.0f MiB", float64(r.Anon)/(1<<20), float64(r.File)/(1<<20))
}

func rssOf(pid int) (anon, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	kb := func(v string) int64 {
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		return n << 10
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssAnon:"); ok {
			anon = kb(v)
		} else if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			file = kb(v)
		}
	}
	return anon, file
}
