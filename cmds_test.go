package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"imchannel/migrations"
	"imchannel/store"
)

// fixtureDB writes a small database with a few conversations and returns
// its path; the store is closed again.
func fixtureDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "imchannel.db")
	s, err := store.Open(path, store.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 3 {
		_, err := s.SaveInbound(ctx, []*store.Message{{
			Provider: store.ProviderInfobip, ExternalID: fmt.Sprintf("in-%d", i),
			From: fmt.Sprintf("+3161234567%d", i), To: "1234", Type: store.TypeText, Text: "Support hello",
		}})
		require.NoError(t, err)
		_, err = s.QueueOutbound(ctx, []*store.Message{{
			Provider: store.ProviderInfobip, ExternalID: fmt.Sprintf("out-%d", i),
			From: "1234", To: fmt.Sprintf("3161234567%d", i), Type: store.TypeText, Text: "hi",
		}}, store.QueueOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	return path
}

func messageCount(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	n := 0
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte("messages")).Stats().KeyN
		return nil
	}))
	return n
}

func setVersion(t *testing.T, path string, v uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], v)
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), b[:])
	}))
}

func TestVersion(t *testing.T) {
	both(t, func(t *testing.T, run runner) {
		code, stdout, _ := run(t, "version")
		require.Equal(t, 0, code)
		require.Equal(t, fmt.Sprintf("imchannel dev (schema %d)\n", migrations.Latest()), stdout)
	})
}

func TestEveryCommandAnswersHelp(t *testing.T) {
	both(t, func(t *testing.T, run runner) {
		for _, c := range commands() {
			code, stdout, stderr := run(t, c.name, "--help")
			require.Equal(t, 0, code, "%s --help", c.name)
			require.Contains(t, stdout+stderr, "usage: imchannel "+c.name, "%s --help", c.name)
		}
		code, stdout, _ := run(t, "--help")
		require.Equal(t, 0, code)
		for _, c := range commands() {
			require.Contains(t, stdout, c.name)
		}
	})
}

func TestUnknownOrMissingCommand(t *testing.T) {
	both(t, func(t *testing.T, run runner) {
		code, _, stderr := run(t, "frobnicate")
		require.Equal(t, 2, code)
		require.Contains(t, stderr, `unknown command "frobnicate"`)
		code, stdout, stderr := run(t)
		require.Equal(t, 2, code)
		require.Contains(t, stderr, "no command given")
		require.Contains(t, stderr, "usage: imchannel", "the usage goes with the error to stderr")
		require.Empty(t, stdout)
		code, _, stderr = run(t, "check", "--no-such-flag")
		require.NotEqual(t, 0, code)
		require.Contains(t, stderr, "no-such-flag")
	})
}

func TestCheckExitCodes(t *testing.T) {
	both(t, func(t *testing.T, run runner) {
		path := fixtureDB(t)
		code, stdout, _ := run(t, "check", "--db", path)
		require.Equal(t, 0, code, stdout)
		require.Contains(t, stdout, "ok")

		breakThread(t, path)
		code, stdout, stderr := run(t, "check", "--db", path)
		require.Equal(t, 1, code)
		require.Contains(t, stdout, "not in its thread index")
		require.Contains(t, stderr, "1 problem(s)")

		code, _, stderr = run(t, "check")
		require.Equal(t, 2, code)
		require.Contains(t, stderr, "--db is required")
		code, _, stderr = run(t, "check", "--db", filepath.Join(t.TempDir(), "missing.db"))
		require.NotEqual(t, 0, code)
		require.Contains(t, stderr, "missing.db")
	})
}

func TestMigrate(t *testing.T) {
	both(t, func(t *testing.T, run runner) {
		path := fixtureDB(t)
		code, stdout, _ := run(t, "migrate", "--db", path, "--dry-run")
		require.Equal(t, 0, code)
		require.Contains(t, stdout, fmt.Sprintf("schema %d, binary %d, 0 pending step(s)", migrations.Latest(), migrations.Latest()))

		setVersion(t, path, 0)
		before, err := os.ReadFile(path)
		require.NoError(t, err)
		code, stdout, _ = run(t, "migrate", "--db", path, "--dry-run")
		require.Equal(t, 0, code)
		require.Contains(t, stdout, fmt.Sprintf("schema 0, binary %d, %d pending step(s)", migrations.Latest(), len(migrations.Steps())))
		require.Contains(t, stdout, migrations.Steps()[0].Description)
		after, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, before, after, "a dry run changes nothing")

		code, stdout, _ = run(t, "migrate", "--db", path)
		require.Equal(t, 0, code)
		require.Contains(t, stdout, fmt.Sprintf("at schema %d", migrations.Latest()))
		backups, _ := filepath.Glob(path + ".pre-v*.bak")
		require.Len(t, backups, 1, "a file holding data is backed up before migrating")
		code, _, _ = run(t, "check", "--db", path)
		require.Equal(t, 0, code)

		setVersion(t, path, migrations.Latest()+1)
		code, _, stderr := run(t, "migrate", "--db", path)
		require.NotEqual(t, 0, code)
		require.Contains(t, stderr, "newer than this binary")
		code, _, stderr = run(t, "migrate", "--db", path, "--dry-run")
		require.NotEqual(t, 0, code)
		require.Contains(t, stderr, "newer than this binary")

		code, _, _ = run(t, "migrate", "--db", filepath.Join(t.TempDir(), "missing.db"))
		require.NotEqual(t, 0, code)
	})
}

func TestBackupDB(t *testing.T) {
	both(t, func(t *testing.T, run runner) {
		path := fixtureDB(t)
		out := filepath.Join(t.TempDir(), "copy.db")
		code, stdout, stderr := run(t, "backup", "--db", path, out)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "check ok")
		require.Equal(t, messageCount(t, path), messageCount(t, out))
		require.Equal(t, 6, messageCount(t, out))
		code, _, _ = run(t, "check", "--db", out)
		require.Equal(t, 0, code)
		leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".copy.db.tmp-*"))
		require.Empty(t, leftovers)

		code, _, stderr = run(t, "backup", "--db", path)
		require.Equal(t, 2, code)
		require.Contains(t, stderr, "imchannel: backup:")
		require.Contains(t, stderr, "OUT")
	})
}

func TestCompact(t *testing.T) {
	both(t, func(t *testing.T, run runner) {
		path := fixtureDB(t)
		out := filepath.Join(t.TempDir(), "compact.db")
		code, stdout, stderr := run(t, "compact", "--db", path, out)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "compacted")
		require.Equal(t, 6, messageCount(t, out))
		code, checkOut, _ := run(t, "check", "--db", out)
		require.Equal(t, 0, code, checkOut)
		fi, err := os.Stat(out)
		require.NoError(t, err)
		orig, err := os.Stat(path)
		require.NoError(t, err)
		require.LessOrEqual(t, fi.Size(), orig.Size())

		code, _, stderr = run(t, "compact", "--db", path, out)
		require.NotEqual(t, 0, code)
		require.True(t, strings.Contains(stderr, "exists"), stderr)
	})
}
