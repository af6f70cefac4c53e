package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"imchannel/migrations"
)

// Options tune Open. The zero value is what serve uses.
type Options struct {
	Logger *slog.Logger
	// Now is the clock; tests pass a fake one.
	Now func() time.Time
	// ReadOnly opens the file without taking the write lock (check, backup).
	ReadOnly bool
	// NoMigrate refuses a file whose schema is behind instead of migrating.
	NoMigrate bool
	// MaxBatch caps how many writers share one commit.
	MaxBatch int
	// OpenTimeout bounds the wait for another process's file lock.
	OpenTimeout time.Duration
	// OnCommit, if set, is told each commit's batch size and duration.
	OnCommit func(size int, d time.Duration)
	// HMACKey keys the erasure audit's number hashes (package hmackey; it
	// lives in its own file, never in the database). Without it an
	// erasure's audit line records no number hash at all.
	HMACKey []byte
	// OnCommitPages, if set, is told after each commit how many pages it
	// rewrote in each bucket (benchmarks; see dirtyPages).
	OnCommitPages func(size int, pages map[string]int)
}

// Store is the conversation store over one bbolt file.
type Store struct {
	db   *bolt.DB
	path string
	log  *slog.Logger
	now  func() time.Time
	opts Options

	ops     chan *op
	closing chan struct{}
	done    chan struct{}
	closeMu sync.Once
	// sendMu orders hand-overs before close(closing): once closing is
	// closed no op can enter ops, so the committer's drain sees them all.
	sendMu sync.RWMutex

	idMu    sync.Mutex
	entropy io.Reader

	// durable is the id of the last transaction known to be fsynced. bbolt
	// shows a commit to new readers once its meta page is written, before
	// that page is fsynced, so a read that leads to an acknowledgement
	// (Ingest's resend fast path) must not rely on anything newer.
	durable atomic.Uint64

	hub hub
	// feed wakes readers of the events log after a commit appended to it.
	feed feedSignal
	// reads caches decoded messages for the agents' read paths.
	reads *readCache

	healthMu   sync.Mutex
	lastWrite  error
	lastWriteT time.Time
}

// Open opens (creating if needed) the database at path, brings its schema up
// to date (writing a backup beside it first when it holds data) and starts
// the group committer.
func Open(path string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	db, err := OpenBolt(path, opts.ReadOnly, opts.OpenTimeout)
	if err != nil {
		return nil, err
	}
	s := &Store{
		db:      db,
		path:    path,
		log:     opts.Logger.With("component", "store"),
		now:     opts.Now,
		opts:    opts,
		ops:     make(chan *op, 4096),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		entropy: ulid.Monotonic(rand.Reader, 0),
		reads:   newReadCache(16384),
	}
	if err := s.prepareSchema(); err != nil {
		_ = db.Close()
		return nil, err
	}
	// Everything in the file at open is on disk.
	_ = db.View(func(tx *bolt.Tx) error {
		s.durable.Store(uint64(tx.ID()))
		return nil
	})
	go s.committer()
	return s, nil
}

// OpenBolt opens the raw bbolt file with the options imchannel always uses:
// the hashmap freelist and a mapping far larger than the file (mmapSize),
// so long readers (backups, agents' pages) never block a writer remapping
// the file.
func OpenBolt(path string, readOnly bool, timeout time.Duration) (*bolt.DB, error) {
	if readOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, Errorf(ErrNotFound, "database %s: %v", path, err)
		}
	}
	created := false
	if !readOnly {
		_, err := os.Stat(path)
		created = errors.Is(err, os.ErrNotExist)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         timeout,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: mmapSize(path),
		ReadOnly:        readOnly,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: the file is locked by another process (is imchannel serve running?): %w", path, err)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// bbolt fsyncs a new file's first pages, not the directory entry that
	// names it: without this a power cut could take the whole new file,
	// and everything acknowledged into it, away (TestPowerLoss round 0).
	if created {
		if err := SyncDir(filepath.Dir(path)); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	return db, nil
}

func (s *Store) prepareSchema() error {
	var version uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		version = migrations.Version(tx)
		return nil
	}); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > migrations.Latest() {
		return fmt.Errorf("%s has schema version %d, newer than this binary's %d: use a newer imchannel", s.path, version, migrations.Latest())
	}
	if version == migrations.Latest() {
		return nil
	}
	if s.opts.ReadOnly || s.opts.NoMigrate {
		return fmt.Errorf("%s has schema version %d, this binary needs %d: run imchannel migrate --db %s", s.path, version, migrations.Latest(), s.path)
	}
	if version > 0 || s.holdsData() {
		out := fmt.Sprintf("%s.pre-v%d.%s.bak", s.path, migrations.Latest(), s.now().UTC().Format("20060102T150405Z"))
		if _, err := BackupDB(s.db, out); err != nil {
			return fmt.Errorf("backup before migration: %w", err)
		}
		s.log.Info("wrote backup before migrating", "path", out, "from", version, "to", migrations.Latest())
	}
	applied, err := migrations.Apply(s.db)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", s.path, err)
	}
	if len(applied) > 0 {
		s.log.Info("migrated schema", "steps", applied)
	}
	return nil
}

// holdsData reports whether any bucket of the file has a key: a file
// without a schema version may still hold data worth a backup.
func (s *Store) holdsData() bool {
	found := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			if k, _ := b.Cursor().First(); k != nil {
				found = true
			}
			return nil
		})
	})
	return found
}

// DB exposes the bbolt handle for read-only tooling (backup, check, bench).
func (s *Store) DB() *bolt.DB { return s.db }

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// NewID returns a fresh time-ordered ULID.
func (s *Store) NewID() string {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(s.now()), s.entropy).String()
}

// Close stops the committer after pending writes and closes the file.
func (s *Store) Close() error {
	var err error
	s.closeMu.Do(func() {
		// A read-only store runs the committer too (it only ever refuses
		// writes), so it must be stopped as well.
		s.sendMu.Lock()
		close(s.closing)
		s.sendMu.Unlock()
		<-s.done
		s.hub.closeAll()
		err = s.db.Close()
	})
	return err
}

// ---- group commit ----

// op is one writer's function waiting for a shared commit.
type op struct {
	fn   func(*Tx) error
	done chan error
}

// Tx is a write transaction shared by a batch of writers. Its functions may
// run more than once (when another writer in the batch fails), so they must
// not have side effects outside the transaction: results go into variables
// the caller reads after update returns, and notifications go through
// Notify, which fires only after a successful commit.
type Tx struct {
	tx    *bolt.Tx
	s     *Store
	now   time.Time
	notes []Change
	// logged is set when the op appended to the events log.
	logged bool
	// words, when not nil, collects text-index keys to put sorted at the
	// end of a bulk load (see flushWords).
	words *[][]byte
}

// Now is the commit's clock reading.
func (t *Tx) Now() time.Time { return t.now }

// Notify queues a change to publish once the commit is durable.
func (t *Tx) Notify(c Change) { t.notes = append(t.notes, c) }

// Update runs fn in a write transaction shared with concurrent writers, and
// returns only once that transaction is committed and fsynced.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	if s.opts.ReadOnly {
		return Errorf(ErrInvalid, "store opened read-only")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	o := &op{fn: fn, done: make(chan error, 1)}
	s.sendMu.RLock()
	select {
	case <-s.closing:
		s.sendMu.RUnlock()
		return Errorf(ErrUnavailable, "store is closing")
	default:
	}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		s.sendMu.RUnlock()
		return ctx.Err()
	}
	s.sendMu.RUnlock()
	// Once handed over the op will be committed or failed; wait for it
	// even if ctx ends, so the caller never reports a write it cannot vouch for.
	return <-o.done
}

// View runs fn in a read transaction.
func (s *Store) View(fn func(*bolt.Tx) error) error { return s.db.View(fn) }

func (s *Store) committer() {
	defer close(s.done)
	batch := make([]*op, 0, s.opts.MaxBatch)
	for {
		batch = batch[:0]
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-s.closing:
			// Drain what was handed over before closing began.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit runs a batch in one transaction. A writer whose function fails is
// answered with its error and the rest are retried without it.
func (s *Store) commit(batch []*op) {
	for len(batch) > 0 {
		start := time.Now()
		failed := -1
		var failErr error
		var notes []Change
		var txid int
		logged := false
		var pages map[string]int
		err := s.db.Update(func(btx *bolt.Tx) error {
			txid = btx.ID()
			fillAppended(btx)
			now := s.now()
			for i, o := range batch {
				t := &Tx{tx: btx, s: s, now: now}
				if err := runOp(o.fn, t); err != nil {
					failed, failErr = i, err
					return err
				}
				notes = append(notes, t.notes...)
				logged = logged || t.logged
			}
			if s.opts.OnCommitPages != nil {
				pages = dirtyPages(btx)
			}
			return nil
		})
		if err == nil {
			s.durable.Store(uint64(txid))
			s.setWriteHealth(nil)
			if s.opts.OnCommit != nil {
				s.opts.OnCommit(len(batch), time.Since(start))
			}
			if s.opts.OnCommitPages != nil {
				s.opts.OnCommitPages(len(batch), pages)
			}
			for _, o := range batch {
				o.done <- nil
			}
			s.hub.publish(notes)
			if logged {
				s.feed.fire()
			}
			return
		}
		if failed >= 0 {
			batch[failed].done <- failErr
			batch = append(batch[:failed:failed], batch[failed+1:]...)
			continue
		}
		// The commit itself failed: the disk refused the write.
		werr := fmt.Errorf("%w: commit: %v", ErrUnavailable, err)
		s.setWriteHealth(werr)
		s.log.Error("commit failed", "err", err, "writers", len(batch))
		for _, o := range batch {
			o.done <- werr
		}
		return
	}
}

func runOp(fn func(*Tx) error, t *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: panic in write: %v", ErrInternal, r)
		}
	}()
	return fn(t)
}

func (s *Store) setWriteHealth(err error) {
	s.healthMu.Lock()
	s.lastWrite = err
	s.lastWriteT = time.Now()
	s.healthMu.Unlock()
}

// Health probes writability with a tiny fsynced write and reports why the
// store cannot take writes, or nil.
func (s *Store) Health(ctx context.Context) error {
	return s.Update(ctx, func(t *Tx) error {
		return t.tx.Bucket(bucketMeta).Put(keyHealth, []byte(t.now.UTC().Format(time.RFC3339Nano)))
	})
}

// ---- change notifications ----

// Change tells subscribers what a commit touched.
type Change struct {
	Kind           string // message, status, media, outbox, conversation
	ConversationID string
	MessageID      string
}

type hub struct {
	mu sync.Mutex
	// subs maps each subscriber to the kinds it wants (nil: all), so a
	// worker's buffer is not filled by changes it ignores.
	subs map[chan Change]map[string]bool
}

// Subscribe returns a channel of changes (of the given kinds, or all) and a
// function to stop. Slow subscribers miss changes rather than slowing
// commits down.
func (s *Store) Subscribe(buffer int, kinds ...string) (<-chan Change, func()) {
	ch := make(chan Change, buffer)
	var only map[string]bool // nil: every kind
	if len(kinds) > 0 {
		only = make(map[string]bool, len(kinds))
		for _, k := range kinds {
			only[k] = true
		}
	}
	s.hub.mu.Lock()
	if s.hub.subs == nil {
		s.hub.subs = map[chan Change]map[string]bool{}
	}
	s.hub.subs[ch] = only
	s.hub.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.hub.mu.Lock()
			if _, ok := s.hub.subs[ch]; ok {
				delete(s.hub.subs, ch)
				close(ch)
			}
			s.hub.mu.Unlock()
		})
	}
}

func (h *hub) publish(cs []Change) {
	if len(cs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch, only := range h.subs {
		for _, c := range cs {
			if only != nil && !only[c.Kind] {
				continue
			}
			select {
			case ch <- c:
			default:
			}
		}
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		close(ch)
		delete(h.subs, ch)
	}
}

// ---- backup ----

// Backup streams a consistent copy of the database to w, free pages
// zeroed (WriteBackup).
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = WriteBackup(tx, w)
		return err
	})
	return n, err
}

// BackupSize is the size the next Backup will write.
func (s *Store) BackupSize() int64 {
	var n int64
	_ = s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// BackupDB writes a consistent copy of db, free pages zeroed, to out
// atomically: temp file, fsync, rename, directory fsync.
func BackupDB(db *bolt.DB, out string) (int64, error) {
	var n int64
	err := WriteFileAtomic(out, func(w io.Writer) error {
		return db.View(func(tx *bolt.Tx) error {
			var err error
			n, err = WriteBackup(tx, w)
			return err
		})
	}, nil)
	return n, err
}

// WriteFileAtomic writes path through a temp file in the same directory,
// fsyncs it, runs verify on the temp file (when given), renames it into
// place and fsyncs the directory. On any failure the temp file is removed
// and path is left as it was.
func WriteFileAtomic(path string, write func(io.Writer) error, verify func(tmp string) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if verify != nil {
		if err := verify(tmp); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	ok = true
	return SyncDir(dir)
}

// MkdirAll is os.MkdirAll that also fsyncs the parent of each directory it
// creates: a new directory's name is not durable until its parent is
// synced, and a file renamed into it would vanish with it in a power cut.
func MkdirAll(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // made by someone else meanwhile
		}
		return err
	}
	return SyncDir(parent)
}

// SyncDir fsyncs a directory so a rename in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
