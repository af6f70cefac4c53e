package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"imchannel/store"
)

// pageCounts is what commits rewrote while seed messages arrived one per
// writer: per bucket, pages per commit.
type pageCounts struct {
	Commits  int
	Messages int
	PerB     map[string]float64 // pages per commit
}

func (p pageCounts) total() float64 {
	t := 0.0
	for _, v := range p.PerB {
		t += v
	}
	return t
}

// countPages stores n seed text messages from clients concurrent writers
// (store.Ingest, the webhook's call) and counts the pages each commit
// rewrote in each bucket (store.Options.OnCommitPages).
func countPages(path string, si, n, clients, custs int) (pageCounts, error) {
	var mu sync.Mutex
	pc := pageCounts{PerB: map[string]float64{}}
	st, err := store.Open(path, store.Options{OnCommitPages: func(size int, pages map[string]int) {
		mu.Lock()
		defer mu.Unlock()
		pc.Commits++
		pc.Messages += size
		for b, v := range pages {
			pc.PerB[b] += float64(v)
		}
	}})
	if err != nil {
		return pc, err
	}
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	ctx := context.Background()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += clients {
				m := &store.Message{Provider: store.ProviderInfobip, ExternalID: fmt.Sprintf("scale-p%d-%09d", si, i),
					From: customer(i % custs), To: "1234", Type: store.TypeText, Text: "Support hello",
					ReceivedAt: time.Date(2019, 7, 19, 11, 21, 27, 861e6, time.UTC)}
				if _, _, err := st.Ingest(ctx, []*store.Message{m}, nil); err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := st.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	for b := range pc.PerB {
		pc.PerB[b] /= float64(max(1, pc.Commits))
	}
	return pc, firstErr
}

// topBuckets lists the buckets by pages per commit, most first.
func (p pageCounts) topBuckets() []string {
	var names []string
	for b := range p.PerB {
		names = append(names, b)
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case p.PerB[a] > p.PerB[b]:
			return -1
		case p.PerB[a] < p.PerB[b]:
			return 1
		}
		return 0
	})
	return names
}
