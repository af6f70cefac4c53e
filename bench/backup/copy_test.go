package backupbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"imchannel/bench/internal/benchkit"
	"imchannel/store"
)

// BenchmarkBackupCopy measures how fast a backup is written, unpaced: the
// raw page copy every route used before (bolt.Tx.WriteTo) against the copy
// that zeroes freed pages (store.WriteBackup, issue 13 item 3), alternating
// in the same run on the same file. A tenth of the customers are erased
// first, so the file has freed pages holding their data, as after real
// erasures.
//
//	go test ./bench/backup/ -run '^$' -bench BackupCopy -benchtime 1x
func BenchmarkBackupCopy(b *testing.B) {
	prefill := benchkit.EnvInt("BACKUP_BENCH_MSGS", 40000)
	rounds := benchkit.EnvInt("BACKUP_BENCH_ROUNDS", 3)
	dir := b.TempDir()
	st, err := store.Open(filepath.Join(dir, "imchannel.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for i := 0; i < prefill; i += 500 {
		var batch []*store.Message
		for j := i; j < min(prefill, i+500); j++ {
			batch = append(batch, msg(fmt.Sprintf("pre-%d", j), j))
		}
		if _, err := st.SaveInbound(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	for c := 0; c < 5000; c += 10 { // msg() spreads messages over 5000 customers
		if _, err := st.EraseNumber(ctx, fmt.Sprintf("3161%07d", c)); err != nil {
			b.Fatal(err)
		}
	}
	forms := []struct {
		name  string
		write func(tx *bolt.Tx, w io.Writer) (int64, error)
	}{
		{"raw WriteTo", func(tx *bolt.Tx, w io.Writer) (int64, error) { return tx.WriteTo(w) }},
		{"scrubbed WriteBackup", store.WriteBackup},
	}
	type key struct{ form, sink string }
	rates := map[key][]float64{}
	var size int64
	for r := 0; r < rounds; r++ {
		for _, sink := range []string{"discard", "file"} {
			for _, f := range forms {
				var w io.Writer = io.Discard
				var file *os.File
				if sink == "file" {
					file, err = os.Create(filepath.Join(dir, "copy.db"))
					if err != nil {
						b.Fatal(err)
					}
					w = file
				}
				start := time.Now()
				err := st.View(func(tx *bolt.Tx) error {
					n, err := f.write(tx, w)
					size = n
					return err
				})
				if err == nil && file != nil {
					if err = file.Sync(); err == nil {
						err = file.Close()
					}
				}
				if err != nil {
					b.Fatal(err)
				}
				rates[key{f.name, sink}] = append(rates[key{f.name, sink}], float64(size)/1e6/time.Since(start).Seconds())
			}
		}
	}
	residue, _ := store.FreePageResidue(st.DB())
	b.Logf("file %.1f MB, %d freed pages holding old data", float64(size)/1e6, residue)
	for _, sink := range []string{"discard", "file"} {
		base := median(rates[key{forms[0].name, sink}])
		for _, f := range forms {
			m := median(rates[key{f.name, sink}])
			b.Logf("%-8s %-21s %8.0f MB/s (median of %d)  ratio %.2f", sink, f.name, m, rounds, m/base)
			b.ReportMetric(m, "MB/s-"+sink+"-"+map[string]string{forms[0].name: "raw", forms[1].name: "scrubbed"}[f.name])
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
