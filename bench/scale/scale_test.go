package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be the floor server when the harness
// re-runs it (as the command does with its own binary).
func TestMain(m *testing.M) {
	if mode := os.Getenv(floorEnv); mode != "" {
		if err := serveFloor(mode); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// TestScaleSmoke runs the whole harness on a tiny file, so it keeps
// working: two steps, every phase, the table and the plot. It asserts that
// every request got its answer and the outputs exist, not any timing.
func TestScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	out := t.TempDir()
	cfg := Config{Steps: []int{0, 3000}, Dur: 500 * time.Millisecond, Rounds: 1, Clients: 8, BytesN: 200,
		Agents: 2, Requests: 3, Dir: t.TempDir(), Out: out, Self: os.Args[0]}
	var logs bytes.Buffer
	rep, err := Run(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	t.Log("\n" + rep)
	rows := 0
	for _, l := range strings.Split(rep, "\n") {
		if strings.HasPrefix(l, "| 0 |") || strings.HasPrefix(l, "| 3000 |") {
			rows++
		}
	}
	if rows != 6 { // ingest, pages per commit, bytes by bucket
		t.Errorf("want a row per step (0 and 3000 messages) in each of the three tables, got %d:\n%s", rows, rep)
	}
	for _, want := range []string{"thread page", "number search", "online backup", "`cp` of the same file", "store open"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	f, err := os.Open(filepath.Join(out, "scale.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("scale.png: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 300 {
		t.Errorf("scale.png is %v, want a readable plot", b)
	}
	md, err := os.ReadFile(filepath.Join(out, "scale-results.md"))
	if err != nil || string(md) != rep {
		t.Errorf("scale-results.md differs from the printed report (err %v)", err)
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		steps []int
		err   string
	}{
		{nil, []int{0, 1_000_000, 3_000_000, 10_000_000}, ""},
		{[]string{"-steps", "0,250k,1.5M"}, []int{0, 250_000, 1_500_000}, ""},
		{[]string{"-steps", "1M,0"}, nil, "must grow"},
		{[]string{"-steps", "lots"}, nil, "not a message count"},
	} {
		c, err := parseFlags(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(c.Steps) != fmt.Sprint(tc.steps) {
			t.Errorf("%v: steps %v err %v, want %v", tc.args, c.Steps, err, tc.steps)
		}
	}
}
