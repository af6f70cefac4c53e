// Package backupbench measures ingest throughput while a backup streams
// continuously, against ingest alone, in the same run on the same file.
//
//	go test ./bench/backup/ -run '^$' -bench . -benchtime 1x
//
// 64 writers each store one inbound message per call (store.SaveInbound,
// the webhook's write path, group commit and fsync on). The backup is the
// same bbolt Tx.WriteTo from one read transaction that GET /admin/backup
// streams, looping without pause for the whole phase, in two forms:
// to io.Discard (a remote client), and to a file on the same disk, fsynced
// (`imchannel backup --url` run on the server itself). Phases alternate
// (alone, discard, file, alone, discard, file) so drift in the shared
// machine hits all of them alike.
//
// BACKUP_BENCH_MSGS sets the messages stored before measuring (default
// 40000, about 60 MB of file), BACKUP_BENCH_SECONDS each phase's length
// (default 3).
package backupbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imchannel/bench/internal/benchkit"
	"imchannel/store"
)

const writers = 64

func msg(ext string, i int) *store.Message {
	return &store.Message{Provider: store.ProviderInfobip, ExternalID: ext,
		From: fmt.Sprintf("3161%07d", i%5000), To: "1234", Type: store.TypeText,
		Text: strings.Repeat("Where is my parcel? ", 50)}
}

// ingest runs the writers for d and returns messages stored per second.
func ingest(b *testing.B, st *store.Store, phase string, d time.Duration) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				_, err := st.SaveInbound(ctx, []*store.Message{msg(fmt.Sprintf("%s-%d-%d", phase, w, i), i*writers+w)})
				if err != nil {
					if ctx.Err() == nil {
						b.Error(err)
					}
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

// backupLoop streams backups into sink until stop, and counts them.
func backupLoop(b *testing.B, st *store.Store, rate int64, sink func() (io.Writer, func() error), stop <-chan struct{}) (int, int64) {
	count, bytes := 0, int64(0)
	for {
		select {
		case <-stop:
			return count, bytes
		default:
		}
		w, done := sink()
		n, err := st.Backup(store.PacedWriter(context.Background(), w, rate))
		if err == nil {
			err = done()
		}
		if err != nil {
			b.Error(err)
			return count, bytes
		}
		count++
		bytes += n
	}
}

func BenchmarkIngestDuringBackup(b *testing.B) {
	prefill := benchkit.EnvInt("BACKUP_BENCH_MSGS", 40000)
	phase := time.Duration(benchkit.EnvInt("BACKUP_BENCH_SECONDS", 3)) * time.Second
	rate := int64(benchkit.EnvInt("BACKUP_BENCH_RATE", store.DefaultBackupRate))
	rounds := benchkit.EnvInt("BACKUP_BENCH_ROUNDS", 3)
	dir := b.TempDir()
	var commits, writes, commitNanos atomic.Int64
	st, err := store.Open(filepath.Join(dir, "imchannel.db"), store.Options{OnCommit: func(n int, d time.Duration) {
		commits.Add(1)
		writes.Add(int64(n))
		commitNanos.Add(int64(d))
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < prefill; i += 500 {
		var batch []*store.Message
		for j := i; j < min(prefill, i+500); j++ {
			batch = append(batch, msg(fmt.Sprintf("pre-%d", j), j))
		}
		if _, err := st.SaveInbound(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	discard := func() (io.Writer, func() error) { return io.Discard, func() error { return nil } }
	toFile := func() (io.Writer, func() error) {
		f, err := os.Create(filepath.Join(dir, "backup.db"))
		if err != nil {
			b.Fatal(err)
		}
		return f, func() error {
			if err := f.Sync(); err != nil {
				return err
			}
			return f.Close()
		}
	}
	sinks := map[string]func() (io.Writer, func() error){"discard": discard, "file": toFile}

	rates := map[string][]float64{}
	backups := map[string]int{}
	var size int64
	b.ResetTimer()
	for round := 0; round < rounds; round++ {
		for _, mode := range []string{"alone", "discard", "file"} {
			var stop chan struct{}
			var done chan struct{}
			if mode != "alone" {
				stop, done = make(chan struct{}), make(chan struct{})
				go func() {
					defer close(done)
					n, bs := backupLoop(b, st, rate, sinks[mode], stop)
					backups[mode] += n
					if n > 0 {
						size = bs / int64(n)
					}
				}()
			}
			c0, w0, d0 := commits.Load(), writes.Load(), commitNanos.Load()
			r := ingest(b, st, fmt.Sprintf("%s%d", mode, round), phase)
			c, w, d := commits.Load()-c0, writes.Load()-w0, commitNanos.Load()-d0
			b.Logf("%-7s round %d: %6.0f msgs/s, %d commits, %.1f writers/commit, %.2f ms/commit",
				mode, round, r, c, float64(w)/float64(max(c, 1)), float64(d)/float64(max(c, 1))/1e6)
			if stop != nil {
				close(stop)
				<-done
			}
			rates[mode] = append(rates[mode], r)
		}
	}
	b.StopTimer()
	// Each backup phase is compared with the ingest-alone phase of its own
	// round (the machine is shared; neighbours drift), and the median of
	// those ratios is reported next to the ratio of the averages.
	avg := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	alone := avg(rates["alone"])
	b.ReportMetric(alone, "alone_msgs/s")
	for _, mode := range []string{"discard", "file"} {
		var ratios []float64
		for i, r := range rates[mode] {
			ratios = append(ratios, 100*r/rates["alone"][i])
		}
		slices.Sort(ratios)
		med := ratios[len(ratios)/2]
		r := avg(rates[mode])
		b.ReportMetric(r, mode+"_msgs/s")
		b.ReportMetric(med, mode+"_median_%_of_alone")
		b.Logf("backup to %-7s at %d MiB/s: %7.0f msgs/s vs %7.0f alone: %5.1f%% of averages, median per-round %5.1f%% (rounds %.0f); %d backups of ~%.0f MB",
			mode, rate>>20, r, alone, 100*r/alone, med, ratios, backups[mode], float64(size)/1e6)
	}
}
