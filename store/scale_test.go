package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// The messages bucket takes ULID keys at its end: its leaves must be
// filled to their appendedFill, not to bbolt's default half, both when
// messages arrive a few per commit and in large commits (BulkLoad).
func TestAppendedBucketsFillTheirPages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch int
	}{
		{"group commits of 8", 8},
		{"one bulk load", 3000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t, Options{})
			ctx := context.Background()
			const n = 3000
			for i := 0; i < n; i += tc.batch {
				var msgs []*Message
				for j := i; j < min(n, i+tc.batch); j++ {
					m := inbound(fmt.Sprintf("fill-%05d", j), fmt.Sprintf("3161%07d", j%50), strings.Repeat("where is my parcel ", 1+j%7))
					m.Direction = Inbound
					msgs = append(msgs, m)
				}
				require.NoError(t, s.BulkLoad(ctx, msgs))
			}
			var st bolt.BucketStats
			require.NoError(t, s.View(func(tx *bolt.Tx) error { st = tx.Bucket(bucketMessages).Stats(); return nil }))
			require.Equal(t, n, st.KeyN)
			fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
			// bbolt's default leaves these leaves about half full.
			require.Greater(t, fill, 0.7, "messages leaves %d/%d bytes in use", st.LeafInuse, st.LeafAlloc)
		})
	}
}

// A read transaction held open (a backup streaming, an agent's page) must
// not stop commits that grow the file: bbolt remaps only past the mapping,
// and a remap waits for every reader.
func TestLongReaderDoesNotStallGrowingCommits(t *testing.T) {
	s := openTemp(t, Options{})
	holding := make(chan struct{})
	release := make(chan struct{})
	var readerDone sync.WaitGroup
	readerDone.Add(1)
	go func() {
		defer readerDone.Done()
		_ = s.View(func(*bolt.Tx) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	writes := make(chan error, 1)
	go func() {
		// 48 MiB of new pages, far past the file's size and any mapping
		// bbolt would choose for it by itself (it doubles from 32 KiB).
		val := make([]byte, 1<<20)
		var err error
		for i := 0; i < 48 && err == nil; i++ {
			err = s.Update(context.Background(), func(t *Tx) error {
				b, err := t.tx.CreateBucketIfNotExists([]byte("scratch"))
				if err != nil {
					return err
				}
				return b.Put(fmt.Appendf(nil, "k%03d", i), val)
			})
		}
		writes <- err
	}()
	var err error
	select {
	case err = <-writes:
	case <-time.After(2 * time.Minute): // far beyond 48 small commits, even on a loaded machine
		close(release)
		t.Fatal("commits stalled behind an open read transaction")
	}
	close(release)
	readerDone.Wait()
	require.NoError(t, err)
	fi, err := os.Stat(s.Path())
	require.NoError(t, err)
	require.Greater(t, fi.Size(), int64(48<<20))
}

func TestMmapSize(t *testing.T) {
	dir := t.TempDir()
	sparse := func(size int64) string {
		p := filepath.Join(dir, fmt.Sprintf("f%d.db", size))
		f, err := os.Create(p)
		require.NoError(t, err)
		require.NoError(t, f.Truncate(size))
		require.NoError(t, f.Close())
		return p
	}
	for _, tc := range []struct {
		name string
		path string
		want int
	}{
		{"no file yet", filepath.Join(dir, "missing.db"), 64 << 30},
		{"small file", sparse(1 << 20), 64 << 30},
		{"a file of 40 GiB gets twice its size", sparse(40 << 30), 80 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, mmapSize(tc.path))
		})
	}
}

// OnCommitPages counts the pages each bucket rewrites: one inbound message
// touches its conversation's buckets, the message and the ext index, and
// nothing in the outbox or media buckets.
func TestOnCommitPagesCountsPerBucket(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]int
	s := openTemp(t, Options{OnCommitPages: func(_ int, pages map[string]int) {
		mu.Lock()
		got = append(got, pages)
		mu.Unlock()
	}})
	saveOne(t, s, inbound("pages-1", customer, "hello"))
	mu.Lock()
	defer mu.Unlock()
	last := got[len(got)-1]
	for _, b := range []string{"messages", "ext", "conversations", "conv_msgs", "conv_activity", "counters"} {
		require.Positive(t, last[b], "bucket %s in %v", b, last)
	}
	for _, b := range []string{"outbox", "media", "chunks"} {
		require.Zero(t, last[b], "bucket %s in %v", b, last)
	}
}
