// Package storebench compares the store's group commit against plain bbolt
// DB.Batch puts of the same records, in the same run, on fresh files.
//
//	go test ./bench/store/ -run XXX -bench . -benchtime 3x
//
// BENCH_STORE_MSGS sets the messages per workload (default 4000).
// BENCH_STORE_NOSYNC=1 turns fsync off on both files, to see the CPU cost
// alone (never how imchannel runs). BENCH_STORE_MAXBATCH sets
// store.Options.MaxBatch (default: the store's).
package storebench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"imchannel/bench/internal/benchkit"
	"imchannel/store"
)

const (
	writers   = 64
	customers = 3000
	business  = "1234"
)

var words = []string{"Support", "hello", "order", "delivery", "where", "is", "my", "parcel", "please",
	"thanks", "invoice", "refund", "today", "tomorrow", "help", "account", "password", "number",
	"the", "a", "can", "you", "check", "status", "again", "still", "waiting", "for", "an", "answer"}

// workload builds n seed-000-shaped inbound text messages: unique provider
// message ids, a few thousand customers, some with a contact name.
func workload(n int, seed uint64) []*store.Message {
	r := rand.New(rand.NewPCG(seed, 1))
	const idChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	base := time.Date(2019, 7, 19, 11, 21, 27, 0, time.UTC)
	out := make([]*store.Message, n)
	for i := range out {
		id := make([]byte, 36)
		copy(id, "ABEG")
		for j := 4; j < 28; j++ {
			id[j] = idChars[r.IntN(len(idChars))]
		}
		copy(id[28:], fmt.Sprintf("%08d", i)) // unique whatever the random part
		c := r.IntN(customers)
		text := ""
		for w := 2 + r.IntN(18); w > 0; w-- {
			text += words[r.IntN(len(words))] + " "
		}
		m := &store.Message{
			Provider:   store.ProviderInfobip,
			ExternalID: string(id),
			From:       "385919" + strconv.Itoa(100000+c),
			To:         business,
			Type:       store.TypeText,
			Text:       text[:len(text)-1],
			ReceivedAt: base.Add(time.Duration(i) * time.Millisecond),
		}
		if c%3 == 0 {
			m.ContactName = "Customer " + strconv.Itoa(c)
		}
		out[i] = m
	}
	return out
}

// result is one workload's figures.
type result struct {
	elapsed time.Duration
	lat     []time.Duration
}

func (r result) rate() float64 { return float64(len(r.lat)) / r.elapsed.Seconds() }

func (r result) p99() time.Duration {
	s := slices.Clone(r.lat)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}

// drive runs put for every message from 64 goroutines and times each call.
func drive(msgs []*store.Message, put func(i int, m *store.Message) error) (result, error) {
	lat := make([]time.Duration, len(msgs))
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(msgs) {
					return
				}
				t0 := time.Now()
				if err := put(i, msgs[i]); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	res := result{elapsed: time.Since(start), lat: lat}
	if err, _ := firstErr.Load().(error); err != nil {
		return res, err
	}
	return res, nil
}

// runStore saves every message through store.SaveInbound: dedupe,
// conversation lookup/creation, thread, activity and counter indexes.
func runStore(dir string, msgs []*store.Message, maxBatch int) (result, []int, error) {
	var mu sync.Mutex
	var sizes []int
	s, err := store.Open(filepath.Join(dir, "store.db"), store.Options{MaxBatch: maxBatch,
		OnCommit: func(n int, _ time.Duration) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }})
	if err != nil {
		return result{}, nil, err
	}
	defer s.Close()
	s.DB().NoSync = noSync()
	ctx := context.Background()
	res, err := drive(msgs, func(_ int, m *store.Message) error {
		rs, err := s.SaveInbound(ctx, []*store.Message{m})
		if err == nil && rs[0].Duplicate {
			err = fmt.Errorf("%s reported as duplicate", m.ExternalID)
		}
		return err
	})
	if err != nil {
		return res, nil, err
	}
	if got := s.Counter("messages"); got != uint64(len(msgs)) {
		return res, nil, fmt.Errorf("store holds %d messages, want %d", got, len(msgs))
	}
	return res, sizes, nil
}

// runBatch puts the same records, JSON encoded, into one bucket keyed by a
// ULID, with plain DB.Batch on a file opened with the same options.
func runBatch(dir string, msgs []*store.Message) (result, error) {
	db, err := store.OpenBolt(filepath.Join(dir, "batch.db"), false, time.Second)
	if err != nil {
		return result{}, err
	}
	defer db.Close()
	db.NoSync = noSync()
	bucket := []byte("messages")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		return result{}, err
	}
	keys := make([][]byte, len(msgs))
	for i := range keys {
		keys[i] = []byte(ulid.Make().String())
	}
	res, err := drive(msgs, func(i int, m *store.Message) error {
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(keys[i], v) })
	})
	if err != nil {
		return res, err
	}
	var n int
	_ = db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucket).Stats().KeyN; return nil })
	if n != len(msgs) {
		return res, fmt.Errorf("batch file holds %d records, want %d", n, len(msgs))
	}
	return res, nil
}

func noSync() bool { return os.Getenv("BENCH_STORE_NOSYNC") == "1" }

func msgsPerRun() int { return benchkit.EnvInt("BENCH_STORE_MSGS", 4000) }

// BenchmarkInbound64 runs, per iteration, the same workload through plain
// DB.Batch and through store.SaveInbound, each on a fresh file.
func BenchmarkInbound64(b *testing.B) {
	n := msgsPerRun()
	var batch, st result
	var sizes []int
	for i := 0; i < b.N; i++ {
		msgs := workload(n, uint64(i))
		dir := b.TempDir()
		rb, err := runBatch(dir, msgs)
		if err != nil {
			b.Fatal(err)
		}
		rs, sz, err := runStore(dir, workload(n, uint64(i)), benchkit.EnvInt("BENCH_STORE_MAXBATCH", 0))
		if err != nil {
			b.Fatal(err)
		}
		batch.elapsed += rb.elapsed
		batch.lat = append(batch.lat, rb.lat...)
		st.elapsed += rs.elapsed
		st.lat = append(st.lat, rs.lat...)
		sizes = append(sizes, sz...)
	}
	b.ReportMetric(batch.rate(), "batch_msgs/s")
	b.ReportMetric(st.rate(), "store_msgs/s")
	b.ReportMetric(float64(batch.p99().Microseconds())/1000, "batch_p99_ms")
	b.ReportMetric(float64(st.p99().Microseconds())/1000, "store_p99_ms")
	b.ReportMetric(st.rate()/batch.rate(), "ratio_x")
	total := 0
	for _, s := range sizes {
		total += s
	}
	b.ReportMetric(float64(total)/float64(len(sizes)), "store_avg_batch")
}

// TestWorkload keeps the benchmark honest in the normal test run: ids are
// unique, customers repeat, and a small workload goes through both paths.
func TestWorkload(t *testing.T) {
	msgs := workload(500, 7)
	seen := map[string]bool{}
	custs := map[string]bool{}
	for _, m := range msgs {
		if seen[m.ExternalID] {
			t.Fatalf("duplicate id %s", m.ExternalID)
		}
		seen[m.ExternalID] = true
		custs[m.From] = true
	}
	if len(custs) >= len(msgs) || len(custs) < 100 {
		t.Fatalf("%d customers for %d messages", len(custs), len(msgs))
	}
	dir := t.TempDir()
	if _, err := runBatch(dir, msgs); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runStore(dir, workload(500, 7), 0); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(filepath.Join(dir, "store.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p := s.Check(); len(p) > 0 {
		t.Fatalf("store after the workload: %q", p)
	}
}
