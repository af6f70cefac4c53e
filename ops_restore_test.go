package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// servingBinary is the built imchannel serving a database on 127.0.0.1.
type servingBinary struct {
	cmd    *exec.Cmd
	addr   string
	log    *lockedBuffer
	copied chan struct{}
}

func startServing(t *testing.T, args ...string) *servingBinary {
	t.Helper()
	cmd := exec.Command(imchannelBinary(t), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	s := &servingBinary{cmd: cmd, log: &lockedBuffer{}, copied: make(chan struct{})}
	go func() {
		defer close(s.copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(s.log, sc.Text())
		}
	}()
	s.addr = waitListening(t, s.log, s.copied)
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *servingBinary) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	<-s.copied
	require.NoError(t, s.cmd.Wait(), "serve's exit; log:\n%s", s.log)
}

// postText posts one seed-000 inbound text (no credentials configured).
func (s *servingBinary) postText(t *testing.T, id, text string) {
	t.Helper()
	resp, err := http.Post("http://"+s.addr+"/imchannel/message", "application/json",
		bytes.NewReader(opsInfobipText(id, opsCustomerNum1, text)))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "post %s", id)
}

// A backup, more traffic, a restore, all through the real binary: the file
// then equals the backup byte for byte and the old file is kept.
func TestOpsRestoreBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "imchannel.db")
	backup := filepath.Join(dir, "backup.db")
	srv := startServing(t, "--db", db)
	srv.postText(t, "before-1", "in the backup")
	code, stdout, stderr := asBinary(t, "backup", "--url", "http://"+srv.addr, backup)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "check ok")
	srv.postText(t, "after-1", "after the backup")
	srv.postText(t, "after-2", "after the backup")

	// The running service holds the file: refused, nothing changed.
	code, _, stderr = asBinary(t, "restore", backup, "--db", db)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "is held by a running imchannel")
	srv.stop(t)
	require.Equal(t, 3, messageCount(t, db))
	old, err := os.ReadFile(db)
	require.NoError(t, err)
	require.Equal(t, []string{"backup.db", "imchannel.db", "imchannel.db.key"}, dirNames(t, dir), "the HMAC key lives beside the database")

	code, stdout, stderr = asBinary(t, "restore", backup, "--db", db)
	require.Equal(t, 0, code, stderr)
	want, err := os.ReadFile(backup)
	require.NoError(t, err)
	got, err := os.ReadFile(db)
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got), "the restored file equals the backup")
	require.Equal(t, 1, messageCount(t, db))

	names := dirNames(t, dir)
	require.Len(t, names, 4, "no temp file is left: %v", names)
	require.Equal(t, "imchannel.db.key", names[2], "the HMAC key stays as it is")
	require.Regexp(t, `^imchannel\.db\.pre-restore-\d{8}T\d{6}Z$`, names[3])
	kept := filepath.Join(dir, names[3])
	keptBytes, err := os.ReadFile(kept)
	require.NoError(t, err)
	require.True(t, bytes.Equal(old, keptBytes), "the old file is kept as it was")
	require.Equal(t, 3, messageCount(t, kept))
	for _, want := range []string{"checked " + backup + ": ok", "kept the current file as " + kept,
		"restored " + backup + " to " + db, "systemctl start imchannel"} {
		require.Contains(t, stdout, want)
	}

	// The restored file serves: the service starts on it and passes check.
	srv = startServing(t, "--db", db)
	code, body := getHealthz(t, srv.addr)
	require.Equal(t, http.StatusOK, code, body)
	srv.stop(t)
	code, stdout, _ = asBinary(t, "check", "--db", db)
	require.Equal(t, 0, code, stdout)
}

// Every refusal leaves FILE exactly as it was and keeps no second name.
func TestOpsRestoreRefusals(t *testing.T) {
	good := fixtureDB(t)
	cases := []struct {
		name   string
		backup func(t *testing.T, dir string) string
		code   int
		want   string
	}{
		{"backup missing", func(t *testing.T, dir string) string { return filepath.Join(dir, "nope.db") }, 1, "no such file"},
		{"backup not a database", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "junk.db")
			require.NoError(t, os.WriteFile(p, bytes.Repeat([]byte("x"), 8192), 0o600))
			return p
		}, 1, "cannot be read as a database"},
		{"backup fails its check", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "bad.db")
			b, err := os.ReadFile(good)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, b, 0o600))
			breakThread(t, p)
			return p
		}, 1, "fails its check"},
		{"backup is the file itself", func(t *testing.T, dir string) string { return filepath.Join(dir, "imchannel.db") }, 2, "are the same file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "imchannel.db")
			b, err := os.ReadFile(good)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(db, b, 0o600))
			backup := tc.backup(t, dir)
			before := dirNames(t, dir)
			code, _, stderr := inProcess(t, "restore", backup, "--db", db)
			require.Equal(t, tc.code, code, stderr)
			require.Contains(t, stderr, tc.want)
			after, err := os.ReadFile(db)
			require.NoError(t, err)
			require.True(t, bytes.Equal(b, after), "FILE unchanged")
			require.Equal(t, before, dirNames(t, dir), "nothing added or removed")
		})
	}
}

// --help shows the whole procedure, stop to start.
func TestOpsRestoreHelp(t *testing.T) {
	code, _, stderr := inProcess(t, "restore", "--help")
	require.Equal(t, 0, code)
	for _, want := range []string{"usage: imchannel restore BACKUP --db FILE", "systemctl stop imchannel",
		"imchannel-latest.db", "systemctl start imchannel", ".pre-restore-", "fsync"} {
		require.Contains(t, stderr, want)
	}
	code, _, stderr = inProcess(t, "restore", "--db", "x.db")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "need BACKUP and --db FILE")
}

// breakThread makes a file that opens but fails the store's invariants:
// one thread index entry goes missing.
func breakThread(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket([]byte("conv_msgs")).Cursor().First()
		return tx.Bucket([]byte("conv_msgs")).Delete(k)
	}))
	require.NoError(t, db.Close())
}

// Restoring where no file is yet keeps nothing aside; restoring over a
// file gives the new one the old one's mode.
func TestOpsRestoreNewFileAndMode(t *testing.T) {
	backup := fixtureDB(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "imchannel.db")
	code, stdout, stderr := inProcess(t, "restore", backup, "--db", db)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, db+" did not exist; nothing to keep")
	require.Equal(t, []string{"imchannel.db"}, dirNames(t, dir))
	fi, err := os.Stat(db)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	require.NoError(t, os.Chmod(db, 0o640))
	code, stdout, stderr = inProcess(t, "restore", backup, "--db", db)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "kept the current file as "+db+".pre-restore-")
	fi, err = os.Stat(db)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "the restored file keeps the mode of the one it replaces")
	require.Len(t, dirNames(t, dir), 2)
}
