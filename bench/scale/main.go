// Command scale grows ONE imchannel database file in steps (by default 0,
// 1M, 3M and 10M messages) and, at each step, measures what a contact
// center would feel, through the built binary over real HTTP:
//
//   - ingest: 64 clients posting single seed-000 text messages to
//     `imchannel serve`, against a floor measured in the same step: a bare
//     HTTP handler storing each post with bbolt DB.Batch (fsync on) in a
//     copy of the same file (same size, same free pages). Floor and binary
//     alternate in rounds so a burst of load elsewhere hits both.
//   - rate, ratio to the floor, p99 and the longest request (max stall);
//   - bytes per message on disk: pages in use after posting seed-000 text
//     messages, one delivered and one seen report each, minus before;
//   - serve's resident memory under that load, beside the file size.
//
// After the last step it measures the agents' pages (list, 200-message
// thread, number search; 8 agents), store open time, `imchannel check`,
// `imchannel compact` and an online backup (GET /admin/backup) in MB/s
// against `cp` of the same file, and writes a markdown table and a PNG plot.
//
//	go run ./bench/scale                      # 0,1M,3M,10M (hours)
//	go run ./bench/scale -steps 0,100000 -dur 10s   # a quick look
//
// Growing uses store.BulkLoad (the insert path every message takes, in
// large transactions); only the figures are measured through HTTP.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"imchannel/bench/internal/benchkit"
)

// floorEnv, when set, makes this program the floor server: "floor:<db>".
const floorEnv = "SCALE_FLOOR_SERVER"

func main() {
	if mode := os.Getenv(floorEnv); mode != "" {
		if err := serveFloor(mode); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rep, err := Run(context.Background(), cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
	fmt.Print(rep)
}

// Config is one run's shape.
type Config struct {
	Steps     []int         // message counts the file grows to
	Dur       time.Duration // each ingest phase
	Rounds    int           // floor/binary alternations per step
	Clients   int           // concurrent posters
	BytesN    int           // seed messages (each with 2 reports) for bytes/message
	Agents    int           // concurrent page readers at the end
	Requests  int           // per agent and page
	Dir       string        // work dir for the big files (kept only with Keep)
	Out       string        // where the table and plot go
	Keep      bool          // keep the grown file
	NoQueries bool          // skip the end-of-run measurements
	Self      string        // this program's binary, re-run as the floor server
}

func parseFlags(args []string) (Config, error) {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	steps := fs.String("steps", "0,1000000,3000000,10000000", "message counts the file grows to, comma-separated (k/M suffixes allowed)")
	var c Config
	fs.DurationVar(&c.Dur, "dur", 30*time.Second, "length of each ingest phase")
	fs.IntVar(&c.Rounds, "rounds", 2, "floor/binary alternations per step")
	fs.IntVar(&c.Clients, "clients", 64, "concurrent clients posting")
	fs.IntVar(&c.BytesN, "bytes-n", 20000, "seed messages posted (each with a delivered and a seen report) to measure bytes per message")
	fs.IntVar(&c.Agents, "agents", 8, "concurrent agents for the page measurements")
	fs.IntVar(&c.Requests, "requests", 100, "requests per agent and page")
	fs.StringVar(&c.Dir, "dir", "", "directory for the database files (default: a temp dir under bench/out)")
	fs.StringVar(&c.Out, "out", "bench/out", "where scale-results.md and scale.png are written")
	fs.BoolVar(&c.Keep, "keep", false, "keep the grown database file")
	fs.BoolVar(&c.NoQueries, "no-final", false, "skip the pages, open, check, compact and backup measurements")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, s := range strings.Split(*steps, ",") {
		n, err := parseCount(strings.TrimSpace(s))
		if err != nil {
			return c, fmt.Errorf("-steps: %w", err)
		}
		if len(c.Steps) > 0 && n < c.Steps[len(c.Steps)-1] {
			return c, fmt.Errorf("-steps must grow: %d after %d", n, c.Steps[len(c.Steps)-1])
		}
		c.Steps = append(c.Steps, n)
	}
	self, err := os.Executable()
	if err != nil {
		return c, err
	}
	c.Self = self
	return c, nil
}

func parseCount(s string) (int, error) {
	mul := 1
	switch {
	case strings.HasSuffix(s, "M"):
		mul, s = 1_000_000, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "k"):
		mul, s = 1_000, strings.TrimSuffix(s, "k")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a message count: %q", s)
	}
	return int(f * float64(mul)), nil
}

// repoRoot finds the module root (where go.mod is) from the working dir.
func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("go.mod not found above the working directory")
		}
		d = p
	}
}

// serveFloor is the floor: decode the post as the webhook does, store each
// result under its messageId in one DB.Batch (fsync on), answer.
func serveFloor(mode string) error {
	path, ok := strings.CutPrefix(mode, "floor:")
	if !ok {
		return fmt.Errorf("unknown mode %q", mode)
	}
	h, closeDB, err := floorHandler(path)
	if err != nil {
		return err
	}
	defer closeDB()
	return benchkit.Serve(h)
}
