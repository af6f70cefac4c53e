package main

import (
	"fmt"
	"image/color"
	"os"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"imchannel/bench/internal/benchkit"
)

func sortDur(d []time.Duration) { slices.Sort(d) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func mbps(b int64, d time.Duration) float64 { return float64(b) / 1e6 / d.Seconds() }

// report is the markdown the run prints and writes.
func report(cfg Config, steps []stepResult, fin *finalResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "bench/scale: %d clients posting single seed-000 text messages, %d round(s) of %s per side per step, floor and imchannel alternating; load average at the end: %s (2 cores, shared)\n\n",
		cfg.Clients, cfg.Rounds, cfg.Dur, benchkit.Loadavg())
	fmt.Fprintf(&b, "| messages in file | customers | file | imchannel msgs/s | floor msgs/s | ratio | p99 | max stall | bytes/msg (text + delivered + seen) | bytes/msg (inbound text) | serve RSS (anon + file) | grow time |\n")
	fmt.Fprintf(&b, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range steps {
		fmt.Fprintf(&b, "| %d | %d | %.0f MiB | %.0f | %.0f | %.2f× | %s | %s | %.0f B | %.0f B | %s | %s |\n",
			r.Messages, r.Customers, mib(r.FileBytes), r.Bin.rate(), r.Floor.rate(), r.ratio(),
			ms(r.Bin.pct(0.99)), ms(r.Bin.max()), r.BytesPerMsg, r.BytesInbound, r.RSS, r.Grow.Round(time.Second))
	}
	fmt.Fprintf(&b, "\npages rewritten per commit (in-process store.Ingest, %d writers, single seed text messages), by bucket:\n\n", cfg.Clients)
	fmt.Fprintf(&b, "| messages in file | msgs/commit | pages/commit | pages/msg | by bucket (pages/commit) |\n|---:|---:|---:|---:|---|\n")
	for _, r := range steps {
		var parts []string
		for _, n := range r.Pages.topBuckets() {
			parts = append(parts, fmt.Sprintf("%s %.1f", n, r.Pages.PerB[n]))
		}
		perCommit := float64(r.Pages.Messages) / float64(max(1, r.Pages.Commits))
		fmt.Fprintf(&b, "| %d | %.1f | %.1f | %.2f | %s |\n", r.Messages, perCommit, r.Pages.total(), r.Pages.total()/max(perCommit, 1), strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, "\nbytes per message by bucket, our seed-text reply with a delivered and a seen report (pages of each tree after, minus before):\n\n| messages in file | by bucket (bytes/message) |\n|---:|---|\n")
	for _, r := range steps {
		pc := pageCounts{PerB: r.BytesByBucket}
		var parts []string
		for _, n := range pc.topBuckets() {
			parts = append(parts, fmt.Sprintf("%s %.0f", n, r.BytesByBucket[n]))
		}
		fmt.Fprintf(&b, "| %d | %s |\n", r.Messages, strings.Join(parts, ", "))
	}
	if len(steps) > 1 {
		first, last := steps[0], steps[len(steps)-1]
		fmt.Fprintf(&b, "\nlast step's rate is %.0f%% of the first's (target at 10M: >= 80%%)\n", 100*last.Bin.rate()/first.Bin.rate())
	}
	if fin != nil {
		fmt.Fprintf(&b, "\nat %d messages, file %.0f MiB (compacted: %.0f MiB):\n\n", fin.Messages, mib(fin.FileBytes), mib(fin.CompactedBytes))
		fmt.Fprintf(&b, "| figure | value |\n|---|---:|\n")
		for _, p := range fin.Pages {
			fmt.Fprintf(&b, "| %s, %d agents: p50 / p99 | %s / %s |\n", p.Name, cfg.Agents, ms(p.P.pct(0.5)), ms(p.P.pct(0.99)))
		}
		fmt.Fprintf(&b, "| serve RSS while agents read (anon + file-mapped) | %s |\n", fin.PagesRSS)
		fmt.Fprintf(&b, "| store open | %s |\n", ms(fin.Open))
		fmt.Fprintf(&b, "| `imchannel check` | %.0f MB/s (%s) |\n", mbps(fin.FileBytes, fin.Check), fin.Check.Round(time.Millisecond))
		fmt.Fprintf(&b, "| `imchannel compact` | %.0f MB/s (%s) |\n", mbps(fin.FileBytes, fin.Compact), fin.Compact.Round(time.Millisecond))
		fmt.Fprintf(&b, "| online backup (GET /admin/backup) | %.0f MB/s (%s) |\n", mbps(fin.FileBytes, fin.Backup), fin.Backup.Round(time.Millisecond))
		fmt.Fprintf(&b, "| `cp` of the same file | %.0f MB/s (%s) |\n", mbps(fin.FileBytes, fin.Cp), fin.Cp.Round(time.Millisecond))
		fmt.Fprintf(&b, "| backup vs cp | %.0f%% (target >= 50%%) |\n", 100*fin.Cp.Seconds()/fin.Backup.Seconds())
	}
	return b.String()
}

// plotSteps draws ingest rate (imchannel and floor), p99 and bytes per
// message against the file's size, one panel each, into a PNG.
func plotSteps(steps []stepResult, path string) error {
	xs := func(y func(stepResult) float64) plotter.XYs {
		pts := make(plotter.XYs, len(steps))
		for i, r := range steps {
			pts[i].X, pts[i].Y = mib(r.FileBytes), y(r)
		}
		return pts
	}
	panel := func(title, ylabel string, series ...any) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "file size (MiB)"
		p.Y.Label.Text = ylabel
		p.Y.Min = 0
		p.Add(plotter.NewGrid())
		if err := plotutilAdd(p, series...); err != nil {
			return nil, err
		}
		return p, nil
	}
	rate, err := panel("ingest, 64 clients, single seed-000 posts", "msgs/s",
		"imchannel", xs(func(r stepResult) float64 { return r.Bin.rate() }),
		"bbolt DB.Batch floor", xs(func(r stepResult) float64 { return r.Floor.rate() }))
	if err != nil {
		return err
	}
	p99, err := panel("ingest latency", "ms",
		"p99", xs(func(r stepResult) float64 { return float64(r.Bin.pct(0.99).Microseconds()) / 1000 }))
	if err != nil {
		return err
	}
	bpm, err := panel("bytes per message on disk (seed text + delivered + seen)", "bytes",
		"bytes/message", xs(func(r stepResult) float64 { return r.BytesPerMsg }))
	if err != nil {
		return err
	}
	img := vgimg.New(vg.Points(560), vg.Points(840))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(18)}
	plots := [][]*plot.Plot{{rate}, {p99}, {bpm}}
	cs := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(cs[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// plotutilAdd adds (name, XYs) pairs as lines with points and a legend.
func plotutilAdd(p *plot.Plot, series ...any) error {
	for i := 0; i+1 < len(series); i += 2 {
		name, _ := series[i].(string)
		pts, _ := series[i+1].(plotter.XYs)
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		c := palette[(i/2)%len(palette)]
		l.Color, s.Color = c, c
		p.Add(l, s)
		p.Legend.Add(name, l, s)
	}
	p.Legend.Top = true
	return nil
}
