package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// binDir holds the imchannel binary, built once for the whole package.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binErr   error
	binBuild []byte
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "imchannel-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// imchannelBinary builds the imchannel binary with `go build` the first time it is
// asked for.
func imchannelBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "imchannel")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		binBuild, binErr = cmd.CombinedOutput()
	})
	require.NoError(t, binErr, "go build: %s", binBuild)
	return binPath
}

// runner runs one imchannel command line and reports its exit code.
type runner func(t *testing.T, args ...string) (code int, stdout, stderr string)

// inProcess calls Run the way main does.
func inProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), args, &out, &errb)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(&errb, "imchannel:", err)
	}
	if err == nil {
		return 0, out.String(), errb.String()
	}
	return exitCode(err), out.String(), errb.String()
}

// asBinary runs the built binary.
func asBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, imchannelBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), errb.String()
	}
	require.NoError(t, err)
	return 0, out.String(), errb.String()
}

// both runs f once in-process and once against the built binary.
func both(t *testing.T, f func(t *testing.T, run runner)) {
	t.Run("in-process", func(t *testing.T) { f(t, inProcess) })
	t.Run("binary", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds the binary")
		}
		f(t, asBinary)
	})
}

// lockedBuffer collects a server's log while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// waitListening polls a log for serve's "listening addr=" line.
func waitListening(t *testing.T, log fmt.Stringer, exited <-chan struct{}) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		select {
		case <-exited:
			t.Fatalf("serve exited before listening:\n%s", log.String())
		default:
		}
		if m := listeningRE.FindStringSubmatch(log.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	}, 30*time.Second, 5*time.Millisecond, "no listening line in:\n%s", log)
	return addr
}

func getHealthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// requireFileClosed proves the server let go of the database file: bbolt's
// lock can be taken at once.
func requireFileClosed(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond})
	require.NoError(t, err, "database still locked")
	require.NoError(t, db.Close())
}

func TestServeInProcess(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "serve.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log lockedBuffer
	exited := make(chan struct{})
	var runErr error
	go func() {
		defer close(exited)
		runErr = Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", db}, io.Discard, &log)
	}()
	addr := waitListening(t, &log, exited)
	require.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)
	code, body := getHealthz(t, addr)
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"status":"ok"}`, body)

	cancel()
	select {
	case <-exited:
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}
	require.NoError(t, runErr)
	require.Contains(t, log.String(), "stopped cleanly")
	requireFileClosed(t, db)
	code, stdout, _ := inProcess(t, "check", "--db", db)
	require.Equal(t, 0, code, stdout)
}

func TestServeConfigFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "imchannel.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("addr = \"127.0.0.1:1\"\ndb = %q\n", filepath.Join(dir, "from-config.db"))), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log lockedBuffer
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_ = Run(ctx, []string{"serve", "--config", cfg, "--addr", "127.0.0.1:0"}, io.Discard, &log)
	}()
	addr := waitListening(t, &log, exited)
	require.NotEqual(t, "127.0.0.1:1", addr, "the flag overrides the file")
	cancel()
	<-exited
	_, err := os.Stat(filepath.Join(dir, "from-config.db"))
	require.NoError(t, err, "the db key of the config file is used")

	// A config file with a typo is refused.
	require.NoError(t, os.WriteFile(cfg, []byte("adr = \"127.0.0.1:0\"\n"), 0o600))
	code, _, stderr := inProcess(t, "serve", "--config", cfg)
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr, "unknown keys: adr")
}

func TestServeBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "bin.db")
	cmd := exec.Command(imchannelBinary(t), "serve", "--addr", "127.0.0.1:0", "--db", db)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var log lockedBuffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(&log, sc.Text())
		}
	}()
	addr := waitListening(t, &log, copied)
	code, body := getHealthz(t, addr)
	require.Equal(t, http.StatusOK, code, body)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	waited := make(chan error, 1)
	go func() { <-copied; waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		require.NoError(t, err, "exit status after SIGTERM; log:\n%s", log.String())
	case <-time.After(40 * time.Second):
		t.Fatalf("serve did not exit after SIGTERM; log:\n%s", log.String())
	}
	require.Contains(t, log.String(), "stopped cleanly")
	requireFileClosed(t, db)
	_, err = http.Get("http://" + addr + "/healthz")
	require.Error(t, err, "nothing listens after exit")
}

func TestServeRefusesExposedWithoutCredentials(t *testing.T) {
	both(t, func(t *testing.T, run runner) {
		db := filepath.Join(t.TempDir(), "exposed.db")
		code, _, stderr := run(t, "serve", "--addr", "0.0.0.0:0", "--db", db)
		require.NotEqual(t, 0, code)
		require.Contains(t, stderr, "refusing to listen on 0.0.0.0:0 (not loopback)")
		require.Contains(t, stderr, "[inbound]")
		require.Contains(t, stderr, "[[agents]]")
		_, err := os.Stat(db)
		require.True(t, os.IsNotExist(err), "refused before touching the database")
	})
}
