package hmackey

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	p := DefaultPath(filepath.Join(dir, "imchannel.db"))
	require.Equal(t, filepath.Join(dir, "imchannel.db.key"), p)

	k1, created, err := LoadOrCreate(p)
	require.NoError(t, err)
	require.True(t, created)
	require.Len(t, k1, Size)
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the key is readable by the service's user only")

	k2, created, err := LoadOrCreate(p)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, k1, k2, "the same key on every start")

	// A damaged key file is an error, never silently replaced.
	require.NoError(t, os.WriteFile(p, []byte("not a key\n"), 0o600))
	_, _, err = LoadOrCreate(p)
	require.ErrorContains(t, err, "not a 32-byte hex key")
	b, _ := os.ReadFile(p)
	require.Equal(t, "not a key\n", string(b))

	// Starts racing on a fresh path agree on one key; no temp file is left.
	p2 := filepath.Join(dir, "race.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _, err := LoadOrCreate(p2)
			require.NoError(t, err)
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys {
		require.Equal(t, keys[0], k)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		require.NotContains(t, e.Name(), ".tmp-")
	}
}

func TestSum(t *testing.T) {
	k := []byte("k")
	require.NotEqual(t, Sum(k, "ab", "c"), Sum(k, "a", "bc"), "parts are delimited")
	require.NotEqual(t, Sum(k, "31612345678"), Sum([]byte("other"), "31612345678"), "keyed")
	require.Equal(t, Sum(k, "x"), Sum(k, "x"))
	require.Len(t, Sum(k, "x"), 64)
}
