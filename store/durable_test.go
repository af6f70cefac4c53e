package store

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/internal/lazyfs"
)

// A file written with WriteFileAtomic into directories that MkdirAll just
// made survives a power cut; with os.MkdirAll the new directory's name is
// never synced and the file goes with it. (The database file itself is
// covered by e2e's TestPowerLoss: bbolt must not be mmapped by the process
// serving the mount.)
func TestMkdirAllSurvivesAPowerCut(t *testing.T) {
	lazyfs.Need(t)
	for _, tc := range []struct {
		name    string
		mkdir   func(string, os.FileMode) error
		survive bool
	}{
		{"store.MkdirAll", MkdirAll, true},
		{"os.MkdirAll", os.MkdirAll, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			backing, mnt := filepath.Join(dir, "b"), filepath.Join(dir, "m")
			require.NoError(t, os.Mkdir(backing, 0o700))
			require.NoError(t, os.Mkdir(mnt, 0o700))
			fsys, err := lazyfs.Mount(backing, mnt)
			require.NoError(t, err)
			out := filepath.Join(mnt, "backups", "daily", "copy.db")
			require.NoError(t, tc.mkdir(filepath.Dir(out), 0o700))
			require.NoError(t, WriteFileAtomic(out, func(w io.Writer) error {
				_, err := w.Write([]byte("backup"))
				return err
			}, nil))
			fsys.Cut(rand.New(rand.NewPCG(1, 1)), false)
			require.NoError(t, fsys.Unmount())
			fsys, err = lazyfs.Mount(backing, mnt)
			require.NoError(t, err)
			defer func() { require.NoError(t, fsys.Unmount()) }()
			b, err := os.ReadFile(out)
			if !tc.survive {
				require.True(t, os.IsNotExist(err), "the unsynced directory survived: the test cannot tell")
				return
			}
			require.NoError(t, err)
			require.Equal(t, "backup", string(b))
		})
	}
}
