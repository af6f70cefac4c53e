// Package lazyfs is a FUSE filesystem for power-loss tests, in the spirit of
// LazyFS (etcd's robustness suite, jepsen.lazyfs): a passthrough to a
// backing directory that keeps every unsynced change in its own memory, so
// a simulated power cut can throw exactly that away.
//
// What stays in memory until it is made durable:
//   - written bytes and size changes (truncate, growth) of a file, until that
//     file is fsynced or fdatasynced;
//   - creates, renames, unlinks, mkdirs and rmdirs, until the directory that
//     holds the name is fsynced. A file whose data was fsynced but whose name
//     never was is gone after a cut, as on a real filesystem.
//
// The backing directory holds the durable state only, under the real names
// (browsable while unmounted). Durable file contents live in
// BACKING/.lazyfs/f-ID, and every durable name of a file is a hard link to
// it, so a file's data and its names become durable independently. A
// directory that was fsynced before its own name was durable lives in
// .lazyfs/d-ID until its parent is fsynced. Mount rebuilds the tree from the
// real names and drops everything in .lazyfs that no name reaches.
//
// A power cut (Cut) makes every later operation fail with EIO, optionally
// after writing a random subset of the unsynced pages in random order (a
// torn write); the caller then unmounts and mounts the backing directory
// again. Directory renames, symlinks and xattrs are not supported: the
// service under test uses none of them.
package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// PageSize is the unit of the unsynced cache and of torn writes.
const PageSize = 4096

// metaDir is the backing directory's private part, hidden from the mount.
const metaDir = ".lazyfs"

// Stats counts what the filesystem did since it was mounted.
type Stats struct {
	Fsyncs      int // file fsyncs and fdatasyncs
	DirFsyncs   int // directory fsyncs
	SyncedPages int // pages written to the backing files by fsync
	// At the cut:
	DroppedPages int // unsynced pages thrown away
	TornPages    int // unsynced pages written anyway (torn variant)
	DirtyFiles   int // files that had unsynced pages
}

// FS is one mount of a backing directory.
type FS struct {
	backing string
	mnt     string
	server  *fuse.Server

	mu     sync.Mutex
	dead   bool // after Cut: every operation fails
	nextID uint64
	files  map[uint64]*fileNode // every file seen in this mount
	stats  Stats
}

// Mount serves backing at mountpoint (both must exist). The backing
// directory's names are the durable state; anything unsynced from an earlier
// mount is already gone.
func Mount(backing, mountpoint string) (*FS, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	// Inode numbers are the ids; 1 is the root's, and go-fuse merges nodes
	// that share one.
	f := &FS{backing: backing, mnt: mountpoint, files: map[uint64]*fileNode{}, nextID: 1}
	// What no durable name reaches is garbage from before the cut.
	if err := os.RemoveAll(f.meta()); err != nil {
		return nil, fmt.Errorf("lazyfs: clear %s: %w", f.meta(), err)
	}
	if err := os.Mkdir(f.meta(), 0o700); err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	tree, err := f.scan(backing, map[devIno]*fileNode{})
	if err != nil {
		f.closeFiles()
		return nil, err
	}
	root := &dirNode{lfs: f, isRoot: true, durDirs: map[string]*dirNode{}, mode: 0o755, mtime: time.Now(), scanned: tree}
	one := time.Second
	opts := &fs.Options{
		EntryTimeout: &one,
		AttrTimeout:  &one,
		MountOptions: fuse.MountOptions{
			FsName:        "lazyfs",
			Name:          "lazyfs",
			DirectMount:   true, // as root: no fusermount needed, else it is the fallback
			DisableXAttrs: true, // spares a getxattr before every write
			// The kernel must never drop its page cache while mounted
			// (no invalidation on open, FOPEN_KEEP_CACHE; none on an mtime
			// change, this flag). Its FUSE write path marks a page up to
			// date and unlocks it before the WRITE reaches us: an
			// invalidation in that window lets a concurrent readahead
			// cache the old bytes, and bbolt then reads a stale page
			// through its mmap. Nothing changes the backing files behind
			// the kernel while mounted, so keeping the cache is exact.
			ExplicitDataCacheControl: true,
			MaxBackground:            64,
		},
	}
	srv, err := fs.Mount(mountpoint, root, opts)
	if err != nil {
		f.closeFiles()
		return nil, fmt.Errorf("lazyfs: mount %s: %w", mountpoint, err)
	}
	f.server = srv
	return f, nil
}

// Available reports why FUSE mounts cannot work here (nil when they can):
// it mounts and unmounts an empty lazyfs.
func Available() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no /dev/fuse: %w", err)
	}
	dir, err := os.MkdirTemp("", "lazyfs-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, m := filepath.Join(dir, "b"), filepath.Join(dir, "m")
	if err := errors.Join(os.Mkdir(b, 0o700), os.Mkdir(m, 0o700)); err != nil {
		return err
	}
	f, err := Mount(b, m)
	if err != nil {
		return err
	}
	return f.Unmount()
}

// Dir is the mountpoint.
func (f *FS) Dir() string { return f.mnt }

// Backing is the backing directory.
func (f *FS) Backing() string { return f.backing }

// Stats returns the counters.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Cut simulates a power cut: every unsynced byte and namespace change is
// dropped, and every later operation on this mount fails with EIO. With
// torn set, a random subset of the unsynced pages of files that have a
// durable identity (synced before, or named by a synced directory) is
// written first, in random order. Unmount next.
func (f *FS) Cut(rng *rand.Rand, torn bool) Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return f.stats
	}
	type pg struct {
		n   *fileNode
		idx int64
	}
	var all []pg
	for _, n := range f.files {
		if len(n.pages) > 0 {
			f.stats.DirtyFiles++
		}
		if n.backing == nil {
			// No durable identity, so no durable name: its pages
			// would land nowhere.
			f.stats.DroppedPages += len(n.pages)
			continue
		}
		for idx := range n.pages {
			all = append(all, pg{n, idx})
		}
	}
	// Map order is not random enough to call it a shuffle.
	sort.Slice(all, func(i, j int) bool {
		if all[i].n.id != all[j].n.id {
			return all[i].n.id < all[j].n.id
		}
		return all[i].idx < all[j].idx
	})
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	keep := 0
	if torn && len(all) > 0 {
		keep = rng.IntN(len(all) + 1)
	}
	for i, p := range all {
		if i >= keep {
			f.stats.DroppedPages++
			continue
		}
		if err := p.n.writePage(p.idx); err != nil {
			f.stats.DroppedPages++
			continue
		}
		f.stats.TornPages++
	}
	f.dead = true
	return f.stats
}

// Unmount unmounts (retrying while the kernel still sees open files) and
// closes the backing files. Whatever was not synced is lost, as after Cut.
func (f *FS) Unmount() error {
	f.mu.Lock()
	f.dead = true
	f.mu.Unlock()
	var err error
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err = f.server.Unmount(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.closeFiles()
	if err != nil {
		return fmt.Errorf("lazyfs: unmount %s: %w", f.mnt, err)
	}
	return nil
}

func (f *FS) closeFiles() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.files {
		if n.backing != nil {
			_ = n.backing.Close()
			n.backing = nil
		}
	}
}

func (f *FS) meta() string { return filepath.Join(f.backing, metaDir) }

func (f *FS) newID() uint64 {
	f.nextID++
	return f.nextID
}

// ---- loading the durable tree ----

type devIno struct{ dev, ino uint64 }

// scanned is one directory of the backing tree as found at mount.
type scanned struct {
	dirs  map[string]*scanned
	files map[string]*fileNode
	mode  uint32
	mtime time.Time
}

// scan reads dir's durable entries. Hard links of one file share a node.
func (f *FS) scan(dir string, seen map[devIno]*fileNode) (*scanned, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	s := &scanned{dirs: map[string]*scanned{}, files: map[string]*fileNode{}}
	for _, e := range ents {
		name := e.Name()
		if dir == f.backing && name == metaDir {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("lazyfs: %w", err)
		}
		switch {
		case fi.IsDir():
			sub, err := f.scan(p, seen)
			if err != nil {
				return nil, err
			}
			sub.mode, sub.mtime = uint32(fi.Mode().Perm()), fi.ModTime()
			s.dirs[name] = sub
		case fi.Mode().IsRegular():
			st := fi.Sys().(*syscall.Stat_t)
			key := devIno{uint64(st.Dev), st.Ino}
			if n := seen[key]; n != nil {
				s.files[name] = n
				continue
			}
			n := &fileNode{lfs: f, id: f.newID(), pages: map[int64][]byte{},
				size: fi.Size(), limit: fi.Size(), mode: uint32(fi.Mode().Perm()), mtime: fi.ModTime()}
			if err := os.Link(p, n.backingPath()); err != nil {
				return nil, fmt.Errorf("lazyfs: %w", err)
			}
			if n.backing, err = os.OpenFile(n.backingPath(), os.O_RDWR, 0); err != nil {
				return nil, fmt.Errorf("lazyfs: %w", err)
			}
			n.backInfo = fi
			f.files[n.id] = n
			seen[key] = n
			s.files[name] = n
		}
		// Other kinds (symlinks, devices) are not served.
	}
	return s, nil
}

// ---- directories ----

type dirNode struct {
	fs.Inode
	lfs *FS
	id  uint64

	// The durable position: the root, a name in a durable parent, an
	// orphan directory under .lazyfs, or none at all.
	isRoot    bool
	durParent *dirNode
	durName   string
	orphan    bool
	// durDirs are the durable subdirectories by name.
	durDirs map[string]*dirNode

	mode  uint32
	mtime time.Time

	scanned *scanned // the root's tree, consumed by OnAdd
}

var (
	_ fs.NodeOnAdder   = (*dirNode)(nil)
	_ fs.NodeGetattrer = (*dirNode)(nil)
	_ fs.NodeSetattrer = (*dirNode)(nil)
	_ fs.NodeCreater   = (*dirNode)(nil)
	_ fs.NodeMkdirer   = (*dirNode)(nil)
	_ fs.NodeUnlinker  = (*dirNode)(nil)
	_ fs.NodeRmdirer   = (*dirNode)(nil)
	_ fs.NodeRenamer   = (*dirNode)(nil)
	_ fs.NodeLinker    = (*dirNode)(nil)
	_ fs.NodeFsyncer   = (*dirNode)(nil)
	_ fs.NodeStatfser  = (*dirNode)(nil)
	_ fs.NodeOpendirer = (*dirNode)(nil)
)

// OnAdd builds the inode tree from the scan, at mount.
func (d *dirNode) OnAdd(ctx context.Context) {
	if d.scanned == nil {
		return
	}
	var build func(parent *dirNode, s *scanned)
	build = func(parent *dirNode, s *scanned) {
		for name, fn := range s.files {
			ch := fn.EmbeddedInode()
			if ch.StableAttr().Ino == 0 { // else a second hard link
				ch = parent.NewPersistentInode(ctx, fn, fs.StableAttr{Mode: syscall.S_IFREG, Ino: fn.id})
			}
			parent.AddChild(name, ch, false)
		}
		for name, sub := range s.dirs {
			dn := &dirNode{lfs: d.lfs, id: d.lfs.newID(), durParent: parent, durName: name,
				durDirs: map[string]*dirNode{}, mode: sub.mode, mtime: sub.mtime}
			parent.durDirs[name] = dn
			ch := parent.NewPersistentInode(ctx, dn, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: dn.id})
			parent.AddChild(name, ch, false)
			build(dn, sub)
		}
	}
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	build(d, d.scanned)
	d.scanned = nil
}

// path is the backing directory that holds d's durable entries.
func (d *dirNode) path() (string, bool) {
	switch {
	case d.isRoot:
		return d.lfs.backing, true
	case d.orphan:
		return filepath.Join(d.lfs.meta(), fmt.Sprintf("d-%d", d.id)), true
	case d.durParent != nil:
		p, ok := d.durParent.path()
		if !ok {
			return "", false
		}
		return filepath.Join(p, d.durName), true
	}
	return "", false
}

// detach forgets d's durable position and its subdirectories' (their
// backing directory is gone).
func (d *dirNode) detach() {
	d.durParent, d.durName, d.orphan = nil, "", false
	for _, c := range d.durDirs {
		c.detach()
	}
	d.durDirs = map[string]*dirNode{}
}

func (d *dirNode) Opendir(ctx context.Context) syscall.Errno {
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	if d.lfs.dead {
		return syscall.EIO
	}
	return 0
}

func (d *dirNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	if d.lfs.dead {
		return syscall.EIO
	}
	d.attr(&out.Attr)
	return 0
}

func (d *dirNode) attr(a *fuse.Attr) {
	a.Ino = d.StableAttr().Ino
	a.Mode = syscall.S_IFDIR | d.mode
	a.Nlink = 2
	a.Size = 4096
	a.Blksize = PageSize
	a.SetTimes(nil, &d.mtime, &d.mtime)
	a.Owner = fuse.Owner{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
}

func (d *dirNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	if d.lfs.dead {
		return syscall.EIO
	}
	if m, ok := in.GetMode(); ok {
		d.mode = m & 0o7777
	}
	if t, ok := in.GetMTime(); ok {
		d.mtime = t
	}
	d.attr(&out.Attr)
	return 0
}

func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return statfs(d.lfs, out)
}

func statfs(f *FS, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(f.backing, &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatfsT(&st)
	return 0
}

func (d *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	if d.lfs.dead {
		return nil, nil, 0, syscall.EIO
	}
	if ch := d.GetChild(name); ch != nil {
		// Lost a race with another create: open what is there.
		if flags&syscall.O_EXCL != 0 {
			return nil, nil, 0, syscall.EEXIST
		}
		fn, ok := ch.Operations().(*fileNode)
		if !ok {
			return nil, nil, 0, syscall.EISDIR
		}
		if flags&syscall.O_TRUNC != 0 {
			fn.truncate(0)
		}
		fn.attr(&out.Attr)
		return ch, nil, 0, 0
	}
	n := &fileNode{lfs: d.lfs, id: d.lfs.newID(), pages: map[int64][]byte{}, mode: mode & 0o7777, mtime: time.Now()}
	d.lfs.files[n.id] = n
	ch := d.NewPersistentInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG, Ino: n.id})
	n.attr(&out.Attr)
	return ch, nil, 0, 0
}

func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	if d.lfs.dead {
		return nil, syscall.EIO
	}
	if d.GetChild(name) != nil {
		return nil, syscall.EEXIST
	}
	n := &dirNode{lfs: d.lfs, id: d.lfs.newID(), durDirs: map[string]*dirNode{}, mode: mode & 0o7777, mtime: time.Now()}
	ch := d.NewPersistentInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: n.id})
	n.attr(&out.Attr)
	return ch, 0
}

func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	if d.lfs.dead {
		return syscall.EIO
	}
	ch := d.GetChild(name)
	if ch == nil {
		return syscall.ENOENT
	}
	if ch.IsDir() {
		return syscall.EISDIR
	}
	return 0 // the bridge drops the name from the tree
}

func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	if d.lfs.dead {
		return syscall.EIO
	}
	ch := d.GetChild(name)
	if ch == nil {
		return syscall.ENOENT
	}
	if !ch.IsDir() {
		return syscall.ENOTDIR
	}
	if len(ch.Children()) > 0 {
		return syscall.ENOTEMPTY
	}
	return 0
}

func (d *dirNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	if d.lfs.dead {
		return syscall.EIO
	}
	if flags != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE / RENAME_NOREPLACE: not needed
	}
	src := d.GetChild(name)
	if src == nil {
		return syscall.ENOENT
	}
	if src.IsDir() {
		return syscall.ENOTSUP // directory renames are not modelled
	}
	if dst := newParent.EmbeddedInode().GetChild(newName); dst != nil && dst.IsDir() {
		return syscall.EISDIR
	}
	return 0 // the bridge moves the name in the tree
}

// Link gives a file another name; like any name, it is durable once the
// directory is fsynced.
func (d *dirNode) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d.lfs.mu.Lock()
	defer d.lfs.mu.Unlock()
	if d.lfs.dead {
		return nil, syscall.EIO
	}
	n, ok := target.(*fileNode)
	if !ok {
		return nil, syscall.EPERM // no hard links to directories
	}
	if d.GetChild(name) != nil {
		return nil, syscall.EEXIST
	}
	n.attr(&out.Attr)
	return n.EmbeddedInode(), 0
}

// Fsync on a directory makes its current entries durable: each file name
// becomes a hard link to the file's durable content (empty if its data
// was never synced), each new subdirectory a directory (empty unless it
// was synced itself before), and names no longer there are removed.
func (d *dirNode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	return d.lfs.fsync(d.persist, &d.lfs.stats.DirFsyncs)
}

func (d *dirNode) persist() error {
	p, ok := d.path()
	if !ok {
		d.orphan = true
		p, _ = d.path()
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
	}
	current := d.Children()
	ents, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if d.isRoot && name == metaDir {
			continue
		}
		if _, ok := current[name]; !ok {
			if err := d.removeDurable(p, name); err != nil {
				return err
			}
		}
	}
	for name, ch := range current {
		target := filepath.Join(p, name)
		switch n := ch.Operations().(type) {
		case *fileNode:
			if err := n.ensureBacking(); err != nil {
				return err
			}
			if fi, err := os.Lstat(target); err == nil {
				if os.SameFile(fi, n.backInfo) {
					continue
				}
				if err := d.removeDurable(p, name); err != nil {
					return err
				}
			}
			if err := os.Link(n.backingPath(), target); err != nil {
				return err
			}
		case *dirNode:
			if d.durDirs[name] == n {
				continue
			}
			if err := d.removeDurable(p, name); err != nil {
				return err
			}
			if n.orphan {
				from, _ := n.path()
				if err := os.Rename(from, target); err != nil {
					return err
				}
				n.orphan = false
			} else {
				if err := os.Mkdir(target, os.FileMode(n.mode|0o700)); err != nil {
					return err
				}
				n.detach() // a fresh, empty durable directory
			}
			n.durParent, n.durName = d, name
			d.durDirs[name] = n
		}
	}
	return nil
}

// removeDurable removes a durable name of d (a directory: with its tree).
func (d *dirNode) removeDurable(p, name string) error {
	if c := d.durDirs[name]; c != nil {
		c.detach()
		delete(d.durDirs, name)
	}
	err := os.RemoveAll(filepath.Join(p, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ---- files ----

type fileNode struct {
	fs.Inode
	lfs *FS
	id  uint64

	// backing is the durable content (.lazyfs/f-ID), nil until the file
	// is synced or a durable name is given to it.
	backing  *os.File
	backInfo os.FileInfo
	// limit is how much of the backing file is still the file's content:
	// a shrink that is not synced yet hides the rest.
	limit int64
	size  int64
	pages map[int64][]byte // unsynced pages by index, PageSize each

	mode  uint32
	mtime time.Time
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeWriter    = (*fileNode)(nil)
	_ fs.NodeFsyncer   = (*fileNode)(nil)
	_ fs.NodeFlusher   = (*fileNode)(nil)
	_ fs.NodeStatfser  = (*fileNode)(nil)
)

func (n *fileNode) backingPath() string {
	return filepath.Join(n.lfs.meta(), fmt.Sprintf("f-%d", n.id))
}

func (n *fileNode) ensureBacking() error {
	if n.backing != nil {
		return nil
	}
	f, err := os.OpenFile(n.backingPath(), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	n.backing, n.backInfo, n.limit = f, fi, 0
	return nil
}

func (n *fileNode) attr(a *fuse.Attr) {
	a.Ino = n.id
	a.Mode = syscall.S_IFREG | n.mode
	a.Nlink = 1
	a.Size = uint64(n.size)
	a.Blocks = (uint64(n.size) + 511) / 512
	a.Blksize = PageSize
	a.SetTimes(nil, &n.mtime, &n.mtime)
	a.Owner = fuse.Owner{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if n.lfs.dead {
		return nil, 0, syscall.EIO
	}
	if flags&syscall.O_TRUNC != 0 {
		n.truncate(0)
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0 // see Mount: the page cache is never invalidated
}

func (n *fileNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

func (n *fileNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return statfs(n.lfs, out)
}

func (n *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if n.lfs.dead {
		return syscall.EIO
	}
	n.attr(&out.Attr)
	return 0
}

func (n *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if n.lfs.dead {
		return syscall.EIO
	}
	if sz, ok := in.GetSize(); ok {
		n.truncate(int64(sz))
		n.mtime = time.Now()
	}
	if m, ok := in.GetMode(); ok {
		n.mode = m & 0o7777
	}
	if t, ok := in.GetMTime(); ok {
		n.mtime = t
	}
	n.attr(&out.Attr)
	return 0
}

// truncate sets the size in memory; the bytes past it read as zeros from
// now on, even if the file grows again before a sync.
func (n *fileNode) truncate(size int64) {
	if size < n.size {
		for idx := range n.pages {
			if idx*PageSize >= size {
				delete(n.pages, idx)
			}
		}
		if pg := n.pages[size/PageSize]; pg != nil {
			clear(pg[size%PageSize:])
		}
		n.limit = min(n.limit, size)
	}
	n.size = size
}

// page returns page idx for writing, filled from the backing file.
func (n *fileNode) page(idx int64) ([]byte, error) {
	if pg := n.pages[idx]; pg != nil {
		return pg, nil
	}
	pg := make([]byte, PageSize)
	if err := n.readBacking(pg, idx*PageSize); err != nil {
		return nil, err
	}
	n.pages[idx] = pg
	return pg, nil
}

// readBacking fills dst with the durable bytes at off, zeros past limit.
func (n *fileNode) readBacking(dst []byte, off int64) error {
	clear(dst)
	if n.backing == nil || off >= n.limit {
		return nil
	}
	want := dst[:min(int64(len(dst)), n.limit-off)]
	if _, err := n.backing.ReadAt(want, off); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (n *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if n.lfs.dead {
		return nil, syscall.EIO
	}
	if off >= n.size {
		return fuse.ReadResultData(nil), 0
	}
	buf := dest[:min(int64(len(dest)), n.size-off)]
	for done := int64(0); done < int64(len(buf)); {
		pos := off + done
		idx, in := pos/PageSize, pos%PageSize
		chunk := buf[done:min(int64(len(buf)), done+PageSize-in)]
		if pg := n.pages[idx]; pg != nil {
			copy(chunk, pg[in:])
		} else if err := n.readBacking(chunk, pos); err != nil {
			return nil, fs.ToErrno(err)
		}
		done += int64(len(chunk))
	}
	return fuse.ReadResultData(buf), 0
}

func (n *fileNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n.lfs.mu.Lock()
	defer n.lfs.mu.Unlock()
	if n.lfs.dead {
		return 0, syscall.EIO
	}
	for done := 0; done < len(data); {
		pos := off + int64(done)
		idx, in := pos/PageSize, pos%PageSize
		pg, err := n.page(idx)
		if err != nil {
			return uint32(done), fs.ToErrno(err)
		}
		done += copy(pg[in:], data[done:])
	}
	n.size = max(n.size, off+int64(len(data)))
	n.mtime = time.Now()
	return uint32(len(data)), 0
}

// Fsync (and fdatasync, which the kernel sends the same way) makes the
// file's content and size durable; its names are the directory's business.
func (n *fileNode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	return n.lfs.fsync(n.sync, &n.lfs.stats.Fsyncs)
}

// fsync runs a file's or directory's sync under the lock and counts it in
// *count; after Cut it fails like every other operation.
func (f *FS) fsync(sync func() error, count *int) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return syscall.EIO
	}
	if err := sync(); err != nil {
		return fs.ToErrno(err)
	}
	*count++
	return 0
}

func (n *fileNode) sync() error {
	if err := n.ensureBacking(); err != nil {
		return err
	}
	fi, err := n.backing.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > n.limit {
		if err := n.backing.Truncate(n.limit); err != nil {
			return err
		}
	}
	idxs := make([]int64, 0, len(n.pages))
	for idx := range n.pages {
		idxs = append(idxs, idx)
	}
	sort.Slice(idxs, func(i, j int) bool { return idxs[i] < idxs[j] })
	for _, idx := range idxs {
		if err := n.writePage(idx); err != nil {
			return err
		}
		n.lfs.stats.SyncedPages++
	}
	if err := n.backing.Truncate(n.size); err != nil {
		return err
	}
	n.limit = n.size
	clear(n.pages)
	return nil
}

// writePage writes one unsynced page to the backing file, cut at the size.
func (n *fileNode) writePage(idx int64) error {
	off := idx * PageSize
	end := min(off+PageSize, n.size)
	if end <= off {
		return nil
	}
	_, err := n.backing.WriteAt(n.pages[idx][:end-off], off)
	return err
}
