package store

import (
	"context"
	"io"
	"time"
)

// DefaultBackupRate is the pace backups of a running service stream at
// when none is configured: fast enough for a few GB in minutes, slow
// enough that copying from the page cache does not take a whole core from
// ingest (bench/backup).
const DefaultBackupRate = 64 << 20

// PacedWriter passes writes to w at no more than rate bytes per second
// (rate <= 0: no limit). It sleeps between writes when ahead of the pace
// and stops early when ctx ends.
func PacedWriter(ctx context.Context, w io.Writer, rate int64) io.Writer {
	if rate <= 0 {
		return w
	}
	return &pacedWriter{ctx: ctx, w: w, rate: rate}
}

type pacedWriter struct {
	ctx   context.Context
	w     io.Writer
	rate  int64
	start time.Time
	n     int64
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	p.n += int64(n)
	due := p.start.Add(time.Duration(float64(p.n) / float64(p.rate) * float64(time.Second)))
	if wait := time.Until(due); wait > time.Millisecond {
		t := time.NewTimer(wait)
		select {
		case <-p.ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return n, err
}
