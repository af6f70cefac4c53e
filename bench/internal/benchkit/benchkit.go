// Package benchkit holds the pieces the benchmarks under bench/ share: the
// seed post, building and watching the binary, and the DB.Batch floor.
package benchkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ListeningRe finds the address in a server's "msg=listening" log line.
var ListeningRe = regexp.MustCompile(`msg=listening addr=(\S+)`)

// seedText is CTLive's example text message (docs/protocols.md#infobip-inbound); the sender and messageId vary.
const seedText = `{
  "results": [
    {
      "from": "%s",
      "to": "1234",
      "integrationType": "WHATSAPP",
      "receivedAt": "2019-07-19T11:21:27.861+0000",
      "messageId": "%s",
      "pairedMessageId": null,
      "message": {
        "type": "TEXT",
        "text": "Support hello"
      }
    }
  ]
}`

// SeedText is the seed text post from sender from with messageId id.
func SeedText(from, id string) []byte { return fmt.Appendf(nil, seedText, from, id) }

// EnvInt is the positive integer in environment variable name, or def.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// ProcCPU reads a process's user+system CPU time from /proc (clock ticks of
// 10 ms; a phase lasts long enough for that to be fine).
func ProcCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 12th and 13th of those.
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(string(f[11]), 10, 64)
	st, _ := strconv.ParseInt(string(f[12]), 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// Build compiles imchannel from the repository root into dir.
func Build(root, dir string) (string, error) {
	bin := filepath.Join(dir, "imchannel")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// BuildBinary is Build for a benchmark package two levels below the root.
func BuildBinary(tb testing.TB, dir string) string {
	tb.Helper()
	bin, err := Build(filepath.Join("..", ".."), dir)
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// WaitListening waits for r's first output, a listening line, and answers
// its address; the rest of r is drained.
func WaitListening(r io.Reader, timeout time.Duration) (string, error) {
	line := make(chan string, 1)
	go func() {
		buf := make([]byte, 256)
		n, _ := io.ReadAtLeast(r, buf, 1)
		line <- string(buf[:n])
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case l := <-line:
		m := ListeningRe.FindStringSubmatch(l)
		if m == nil {
			return "", fmt.Errorf("did not start: %q", l)
		}
		return m[1], nil
	case <-time.After(timeout):
		return "", fmt.Errorf("no listening line within %s", timeout)
	}
}

// result is the part of a seed-000 result the floor keeps.
type result struct {
	From            string `json:"from"`
	To              string `json:"to"`
	IntegrationType string `json:"integrationType"`
	ReceivedAt      string `json:"receivedAt"`
	MessageID       string `json:"messageId"`
	PairedMessageID string `json:"pairedMessageId"`
	Message         struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"message"`
}

// contactResult is result with the contact, which bench/inbound's floor
// keeps (its stored values carry "contact" too).
type contactResult struct {
	result
	Contact *struct {
		Name string `json:"name"`
	} `json:"contact"`
}

func (r result) id() string { return r.MessageID }

// decode answers each result's messageId and, with keep, the value stored
// under it (the ceiling stores nothing, so it skips the encoding).
func decode[R interface{ id() string }](body []byte, keep bool) (ids []string, vals [][]byte, err error) {
	var p struct {
		Results []R `json:"results"`
	}
	err = json.Unmarshal(body, &p)
	for _, res := range p.Results {
		ids = append(ids, res.id())
		if keep {
			v, _ := json.Marshal(res)
			vals = append(vals, v)
		}
	}
	return ids, vals, err
}

// Floor is the baseline handler: decode the post as the webhook does and,
// with DB set, store each result under its messageId in Bucket in one
// DB.Batch (bbolt's own batching, fsync on).
type Floor struct {
	DB      *bolt.DB // nil: decode only (the ceiling)
	Bucket  []byte
	Answer  string // format of the answer, given accepted and duplicates
	Contact bool   // keep the result's contact in the stored value
}

func (f Floor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, `{"error":"body"}`, http.StatusRequestEntityTooLarge)
		return
	}
	decodeFn := decode[result]
	if f.Contact {
		decodeFn = decode[contactResult]
	}
	ids, vals, err := decodeFn(body, f.DB != nil)
	if err != nil || len(ids) == 0 {
		http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
		return
	}
	accepted, dups := len(ids), 0
	if f.DB != nil {
		err = f.DB.Batch(func(tx *bolt.Tx) error {
			accepted, dups = 0, 0
			b := tx.Bucket(f.Bucket)
			for i, id := range ids {
				if b.Get([]byte(id)) != nil {
					dups++
					continue
				}
				if err := b.Put([]byte(id), vals[i]); err != nil {
					return err
				}
				accepted++
			}
			return nil
		})
		if err != nil {
			http.Error(w, `{"error":"store"}`, http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	fmt.Fprintf(w, f.Answer+"\n", accepted, dups)
}

// OpenFloor opens path with plain bbolt and makes bucket.
func OpenFloor(path string, bucket []byte) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// Serve serves h on a free port of 127.0.0.1, after writing the listening
// line to stderr as imchannel serve does (WaitListening reads it).
func Serve(h http.Handler) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "msg=listening addr=%s\n", ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

// Loadavg is the machine's 1, 5 and 15 minute load averages, to print
// beside figures measured on a shared machine.
func Loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Proc is a started `imchannel serve`.
type Proc struct {
	Cmd  *exec.Cmd
	Addr string     // host:port from its listening line
	Done chan error // cmd.Wait's answer (buffered; read it once)
}

// StartServe runs `imchannel serve --config cfg` with its log in logPath (as
// in production, so reading it costs the load generator nothing) and waits
// up to timeout for the listening line. On failure the process is killed.
func StartServe(bin, cfg, logPath string, timeout time.Duration) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, Done: make(chan error, 1)}
	go func() { p.Done <- cmd.Wait() }()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(logPath)
		if m := ListeningRe.FindSubmatch(b); m != nil {
			p.Addr = string(m[1])
			return p, nil
		}
		select {
		case err := <-p.Done:
			p.Done <- err
			return nil, fmt.Errorf("imchannel serve exited before listening: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("imchannel serve did not listen within %s:\n%s", timeout, b)
		}
		time.Sleep(20 * time.Millisecond) // polling the log for the listening line
	}
}

// Spread calls f(i) for every i below n from clients goroutines, each taking
// the next index when done with its last, and waits for them all.
func Spread(clients, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// Post posts the JSON body to url, with basic auth when user is set, and
// answers the status and the answer's body.
func Post(c *http.Client, url string, body []byte, user, pass string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, b, err
}
