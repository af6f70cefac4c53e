package lazyfs

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// disk is a backing directory and its current mount.
type disk struct {
	t       *testing.T
	backing string
	mnt     string
	fs      *FS
}

func newDisk(t *testing.T) *disk {
	t.Helper()
	Need(t)
	dir := t.TempDir()
	d := &disk{t: t, backing: filepath.Join(dir, "backing"), mnt: filepath.Join(dir, "mnt")}
	require.NoError(t, os.Mkdir(d.backing, 0o700))
	require.NoError(t, os.Mkdir(d.mnt, 0o700))
	d.mount()
	t.Cleanup(func() {
		if d.fs != nil {
			_ = d.fs.Unmount()
		}
	})
	return d
}

func (d *disk) mount() {
	d.t.Helper()
	f, err := Mount(d.backing, d.mnt)
	require.NoError(d.t, err)
	d.fs = f
}

// cut is a power cut: drop (or tear) what is unsynced, unmount, mount.
func (d *disk) cut(torn bool, seed uint64) Stats {
	d.t.Helper()
	st := d.fs.Cut(rand.New(rand.NewPCG(seed, 1)), torn)
	require.NoError(d.t, d.fs.Unmount())
	d.fs = nil
	d.mount()
	return st
}

func (d *disk) path(name string) string { return filepath.Join(d.mnt, name) }

// write creates or replaces name's content, optionally fsyncing the file.
func (d *disk) write(name string, data []byte, fsync bool) {
	d.t.Helper()
	f, err := os.OpenFile(d.path(name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	require.NoError(d.t, err)
	_, err = f.Write(data)
	require.NoError(d.t, err)
	if fsync {
		require.NoError(d.t, f.Sync())
	}
	require.NoError(d.t, f.Close())
}

func (d *disk) syncDir(name string) {
	d.t.Helper()
	f, err := os.Open(d.path(name))
	require.NoError(d.t, err)
	require.NoError(d.t, f.Sync())
	require.NoError(d.t, f.Close())
}

// content is name's bytes, or nil when it does not exist.
func (d *disk) content(name string) []byte {
	d.t.Helper()
	b, err := os.ReadFile(d.path(name))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(d.t, err)
	return b
}

func (d *disk) exists(name string) bool {
	_, err := os.Stat(d.path(name))
	return err == nil
}

// durable puts name with data on the disk for good: file and dir synced.
func (d *disk) durable(name string, data []byte) {
	d.t.Helper()
	d.write(name, data, true)
	d.syncDir(filepath.Dir(name))
}

func fill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

// The unsynced view is what processes see until the cut; the cut keeps
// exactly what fsync made durable.
func TestFsyncPersistsAndTheRestIsLost(t *testing.T) {
	cases := []struct {
		name string
		// do runs against a disk holding "old" (durable, "v1", 3 pages).
		do func(d *disk)
		// want is each name's content after the cut (nil: absent).
		want map[string][]byte
	}{
		{"write without fsync is lost", func(d *disk) {
			d.write("old", []byte("v2"), false)
		}, map[string][]byte{"old": fill('1', 3*PageSize)}},
		{"write with fsync survives", func(d *disk) {
			d.write("old", []byte("v2"), true)
		}, map[string][]byte{"old": []byte("v2")}},
		{"fdatasync counts as fsync, growth included", func(d *disk) {
			f, err := os.OpenFile(d.path("old"), os.O_RDWR, 0)
			require.NoError(t, err)
			_, err = f.WriteAt([]byte("tail"), 10*PageSize)
			require.NoError(t, err)
			require.NoError(t, syscall.Fdatasync(int(f.Fd())))
			require.NoError(t, f.Close())
		}, map[string][]byte{"old": append(append(fill('1', 3*PageSize), make([]byte, 7*PageSize)...), "tail"...)}},
		{"truncate without fsync is lost", func(d *disk) {
			require.NoError(t, os.Truncate(d.path("old"), 10))
		}, map[string][]byte{"old": fill('1', 3*PageSize)}},
		{"shrink then grow reads zeros, and survives synced", func(d *disk) {
			f, err := os.OpenFile(d.path("old"), os.O_RDWR, 0)
			require.NoError(t, err)
			require.NoError(t, f.Truncate(10))
			require.NoError(t, f.Truncate(2*PageSize))
			got := make([]byte, 2*PageSize)
			_, err = f.ReadAt(got, 0)
			require.NoError(t, err)
			require.Equal(t, append(fill('1', 10), make([]byte, 2*PageSize-10)...), got, "before the cut")
			require.NoError(t, f.Sync())
			require.NoError(t, f.Close())
		}, map[string][]byte{"old": append(fill('1', 10), make([]byte, 2*PageSize-10)...)}},
		{"a created file without a directory fsync is gone, even if the file was synced", func(d *disk) {
			d.write("new", []byte("fresh"), true)
			require.Equal(t, []byte("fresh"), d.content("new"), "visible before the cut")
		}, map[string][]byte{"new": nil, "old": fill('1', 3*PageSize)}},
		{"a created file with a directory fsync but no file fsync is empty", func(d *disk) {
			d.write("new", []byte("fresh"), false)
			d.syncDir(".")
		}, map[string][]byte{"new": {}}},
		{"unlink without a directory fsync is lost", func(d *disk) {
			require.NoError(t, os.Remove(d.path("old")))
			require.False(t, d.exists("old"))
		}, map[string][]byte{"old": fill('1', 3*PageSize)}},
		{"unlink with a directory fsync survives", func(d *disk) {
			require.NoError(t, os.Remove(d.path("old")))
			d.syncDir(".")
		}, map[string][]byte{"old": nil}},
		{"atomic replace without the directory fsync keeps the old file", func(d *disk) {
			d.write("old.tmp", []byte("v2"), true)
			require.NoError(t, os.Rename(d.path("old.tmp"), d.path("old")))
			require.Equal(t, []byte("v2"), d.content("old"))
		}, map[string][]byte{"old": fill('1', 3*PageSize), "old.tmp": nil}},
		{"atomic replace with the directory fsync is the new file", func(d *disk) {
			d.write("old.tmp", []byte("v2"), true)
			require.NoError(t, os.Rename(d.path("old.tmp"), d.path("old")))
			d.syncDir(".")
		}, map[string][]byte{"old": []byte("v2"), "old.tmp": nil}},
		{"rename synced before the data keeps the name with the old data", func(d *disk) {
			d.write("old.tmp", []byte("v2"), false)
			require.NoError(t, os.Rename(d.path("old.tmp"), d.path("old")))
			d.syncDir(".")
		}, map[string][]byte{"old": {}, "old.tmp": nil}},
		{"a hard link is durable with the directory fsync and shares the data", func(d *disk) {
			require.NoError(t, os.Link(d.path("old"), d.path("link.tmp")))
			require.NoError(t, os.Rename(d.path("link.tmp"), d.path("link")))
			d.syncDir(".")
			d.write("old", []byte("v2"), true) // through either name
		}, map[string][]byte{"link": []byte("v2"), "old": []byte("v2"), "link.tmp": nil}},
		{"a hard link without the directory fsync is lost", func(d *disk) {
			require.NoError(t, os.Link(d.path("old"), d.path("link")))
		}, map[string][]byte{"link": nil, "old": fill('1', 3*PageSize)}},
		{"a file in a new directory needs the parent's fsync too", func(d *disk) {
			require.NoError(t, os.Mkdir(d.path("sub"), 0o700))
			d.durable("sub/f", []byte("in sub"))
		}, map[string][]byte{"sub/f": nil}},
		{"directory fsyncs in either order make a nested file durable", func(d *disk) {
			require.NoError(t, os.Mkdir(d.path("sub"), 0o700))
			d.durable("sub/f", []byte("in sub")) // syncs sub before its name is durable
			d.syncDir(".")
		}, map[string][]byte{"sub/f": []byte("in sub")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDisk(t)
			d.durable("old", fill('1', 3*PageSize))
			tc.do(d)
			d.cut(false, 1)
			for name, want := range tc.want {
				got := d.content(name)
				if want == nil {
					require.False(t, d.exists(name), "%s should not exist", name)
					continue
				}
				require.True(t, d.exists(name), "%s should exist", name)
				require.Equal(t, want, got, "%s", name)
			}
		})
	}
}

// A cut keeps what was synced across several cuts, and the backing
// directory holds the durable names only.
func TestBackingHoldsTheDurableTree(t *testing.T) {
	d := newDisk(t)
	d.durable("a", []byte("A"))
	d.write("b", []byte("B"), true) // name never synced
	d.cut(false, 1)
	d.cut(false, 2)
	require.Equal(t, []byte("A"), d.content("a"))
	require.False(t, d.exists("b"))
	require.NoError(t, d.fs.Unmount())
	d.fs = nil
	b, err := os.ReadFile(filepath.Join(d.backing, "a"))
	require.NoError(t, err)
	require.Equal(t, []byte("A"), b)
	_, err = os.Stat(filepath.Join(d.backing, "b"))
	require.True(t, os.IsNotExist(err))
	d.mount()
	require.Equal(t, []byte("A"), d.content("a"))
}

// The torn variant writes a random subset of the unsynced pages: each page
// of the file is then wholly old or wholly new, and the counts match.
func TestTornCutWritesASubsetOfPages(t *testing.T) {
	const pages = 64
	sawMixed := false
	for seed := uint64(1); seed <= 4; seed++ {
		d := newDisk(t)
		d.durable("f", fill('A', pages*PageSize))
		d.write("f", fill('B', pages*PageSize), false)
		st := d.cut(true, seed)
		got := d.content("f")
		require.Len(t, got, pages*PageSize)
		newPages := 0
		for i := range pages {
			pg := got[i*PageSize : (i+1)*PageSize]
			switch {
			case bytes.Equal(pg, fill('B', PageSize)):
				newPages++
			case bytes.Equal(pg, fill('A', PageSize)):
			default:
				t.Fatalf("seed %d: page %d is neither old nor new", seed, i)
			}
		}
		require.Equal(t, st.TornPages, newPages, "seed %d", seed)
		require.Equal(t, pages, st.TornPages+st.DroppedPages, "seed %d", seed)
		if newPages > 0 && newPages < pages {
			sawMixed = true
		}
		require.NoError(t, d.fs.Unmount())
		d.fs = nil
	}
	require.True(t, sawMixed, "no seed tore the file: the torn variant persists all or nothing")
}

// Without torn, a cut drops every unsynced page.
func TestCleanCutDropsEveryUnsyncedPage(t *testing.T) {
	d := newDisk(t)
	d.durable("f", fill('A', 8*PageSize))
	d.write("f", fill('B', 8*PageSize), false)
	st := d.cut(false, 1)
	require.Equal(t, 0, st.TornPages)
	require.Equal(t, 8, st.DroppedPages)
	require.Equal(t, fill('A', 8*PageSize), d.content("f"))
}

// After the cut and before the unmount, nothing gets through.
func TestCutMountFailsEveryOperation(t *testing.T) {
	d := newDisk(t)
	d.durable("f", []byte("x"))
	d.fs.Cut(rand.New(rand.NewPCG(1, 1)), false)
	_, err := os.ReadFile(d.path("f"))
	require.Error(t, err)
	require.Error(t, os.WriteFile(d.path("g"), []byte("y"), 0o600))
}
