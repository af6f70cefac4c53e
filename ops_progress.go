package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// Progress is shown for copies of at least progressMin bytes (smaller ones
// finish before a line would help), or for any size on a terminal, at most
// every progressEvery.
const (
	progressMin   = 8 << 20
	progressEvery = 500 * time.Millisecond
)

// progress prints "label: done of total (pct), rate" lines on stderr while
// a long copy runs. On a terminal one line is rewritten in place; otherwise
// (a log, a pipe) each update is its own line.
type progress struct {
	w       io.Writer
	label   string
	tty     bool
	quiet   bool
	now     func() time.Time
	on      bool
	total   int64 // -1: unknown
	done    int64
	started time.Time
	last    time.Time
	printed bool
}

func newProgress(w io.Writer, label string, quiet bool) *progress {
	return &progress{w: w, label: label, tty: isTerminal(w), quiet: quiet, now: time.Now, total: -1}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// begin starts the clock; total is the expected size (-1 when unknown).
func (p *progress) begin(total int64) {
	p.total = total
	p.started = p.now()
	p.last = p.started
	p.on = !p.quiet && (p.tty || total < 0 || total >= progressMin)
}

// set records how many bytes are done and prints when it is time.
func (p *progress) set(done int64) {
	p.done = done
	if !p.on {
		return
	}
	if now := p.now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.print(now)
	}
}

// finish prints the final line if any progress was shown.
func (p *progress) finish() {
	if !p.on || (!p.printed && !p.tty) {
		return
	}
	p.print(p.now())
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) print(now time.Time) {
	p.printed = true
	line := p.label + ": " + humanBytes(p.done)
	if p.total > 0 {
		pct := float64(p.done) * 100 / float64(p.total)
		line += fmt.Sprintf(" of %s (%.0f%%)", humanBytes(p.total), min(pct, 100))
	}
	if el := now.Sub(p.started).Seconds(); el > 0 {
		line += fmt.Sprintf(", %s/s", humanBytes(int64(float64(p.done)/el)))
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%-72s", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// writer counts bytes written through it into the progress.
func (p *progress) writer(w io.Writer) io.Writer { return &progressWriter{w: w, p: p} }

type progressWriter struct {
	w io.Writer
	p *progress
	n int64
}

func (pw *progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.n += int64(n)
	pw.p.set(pw.n)
	return n, err
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
