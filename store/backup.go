package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// Freed pages of a bbolt file keep whatever they held until bbolt reuses
// them: after an erasure, the customer's texts, names, numbers and media
// bytes. A raw page copy (bolt.Tx.WriteTo) would carry them into every
// backup. WriteBackup copies the file page by page as WriteTo does (fast,
// one read transaction, exact size known up front) but writes zeros for
// every page the snapshot's freelist names, so a backup holds only what is
// reachable, never a freed page. Pages in use never hold stale bytes:
// bbolt zeroes its page buffers before reuse.

// Offsets in bbolt's on-disk format (go.etcd.io/bbolt internal/common:
// Page and Meta): a page starts with id uint64, flags uint16, count
// uint16, overflow uint32; a meta page's body is magic, version, pageSize,
// flags (uint32 each), root {pgid, sequence}, then the freelist pgid.
// Integers are in the machine's byte order.
const (
	pageHeaderSize   = 16
	metaFreelistOff  = pageHeaderSize + 4*4 + 16
	freelistPageFlag = 0x10
	noFreelist       = ^uint64(0)
)

// WriteBackup writes tx's snapshot of the database to w with every free
// page zeroed (see above) and returns the bytes written, tx.Size().
func WriteBackup(tx *bolt.Tx, w io.Writer) (int64, error) {
	sw := &scrubWriter{w: w, tx: tx, pageSize: int64(tx.DB().Info().PageSize)}
	n, err := tx.WriteTo(sw)
	if err == nil && sw.err != nil {
		err = sw.err
	}
	return n, err
}

// scrubWriter sits under bolt.Tx.WriteTo, which writes the two meta pages
// (copies of the transaction's meta) and then the data pages in order. It
// reads the freelist page id from the first meta page, loads that page's
// list from the file, and replaces each listed page with zeros.
type scrubWriter struct {
	w        io.Writer
	tx       *bolt.Tx
	pageSize int64
	off      int64
	free     map[uint64]bool
	buf      []byte
	err      error
}

func (s *scrubWriter) Write(p []byte) (int, error) {
	if s.free == nil {
		if s.off != 0 || int64(len(p)) < s.pageSize {
			s.err = fmt.Errorf("backup: unexpected copy layout (first write of %d bytes at %d)", len(p), s.off)
			return 0, s.err
		}
		free, err := s.loadFree(p[:s.pageSize])
		if err != nil {
			s.err = err
			return 0, err
		}
		s.free = free
	}
	out, copied := p, false
	// Zero the parts of p that fall in free pages, in a copy: a Writer must
	// not change the caller's buffer.
	for start := int64(0); start < int64(len(p)); {
		pg := uint64((s.off + start) / s.pageSize)
		end := min(int64(len(p)), (int64(pg)+1)*s.pageSize-s.off)
		if s.free[pg] {
			if !copied {
				if cap(s.buf) < len(p) {
					s.buf = make([]byte, len(p))
				}
				out, copied = s.buf[:len(p)], true
				copy(out, p)
			}
			clear(out[start:end])
		}
		start = end
	}
	n, err := s.w.Write(out)
	s.off += int64(n)
	return n, err
}

// errMetaRead stops tx.WriteTo once the first meta page is captured.
var errMetaRead = errors.New("meta page read")

type metaCapture struct{ meta []byte }

func (m *metaCapture) Write(p []byte) (int, error) {
	m.meta = append(m.meta, p...)
	return len(p), errMetaRead
}

// FreePageResidue counts the free pages of db's current snapshot that are
// not all zeros: data that was deleted or erased but is still in the file
// until bbolt reuses the page or `imchannel compact` writes a copy without
// it. Backups written by WriteBackup have none.
func FreePageResidue(db *bolt.DB) (pages int, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		pageSize := int64(db.Info().PageSize)
		var mc metaCapture
		// WriteTo stops with an error (errMetaRead, flattened to text) once
		// the first meta page is captured.
		if _, err := tx.WriteTo(&mc); err == nil || int64(len(mc.meta)) < pageSize {
			return fmt.Errorf("residue: reading the meta page: %v", err)
		}
		sw := &scrubWriter{tx: tx, pageSize: pageSize}
		free, err := sw.loadFree(mc.meta[:pageSize])
		if err != nil {
			return err
		}
		f, err := os.Open(db.Path())
		if err != nil {
			return err
		}
		defer f.Close()
		buf := make([]byte, pageSize)
		for id := range free {
			if _, err := f.ReadAt(buf, int64(id)*pageSize); err != nil {
				return fmt.Errorf("residue: page %d: %w", id, err)
			}
			for _, c := range buf {
				if c != 0 {
					pages++
					break
				}
			}
		}
		return nil
	})
	return pages, err
}

// loadFree reads the freelist that meta names from the database file. The
// read transaction keeps that page (and every page it lists) from being
// reused while the copy runs.
func (s *scrubWriter) loadFree(meta []byte) (map[uint64]bool, error) {
	id := binary.NativeEndian.Uint64(meta[metaFreelistOff:])
	if id == noFreelist {
		return nil, fmt.Errorf("backup: the file keeps no freelist; free pages cannot be told apart")
	}
	f, err := os.Open(s.tx.DB().Path())
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	hdr := make([]byte, pageHeaderSize)
	if _, err := f.ReadAt(hdr, int64(id)*s.pageSize); err != nil {
		return nil, fmt.Errorf("backup: reading the freelist page: %w", err)
	}
	if binary.NativeEndian.Uint64(hdr) != id || binary.NativeEndian.Uint16(hdr[8:]) != freelistPageFlag {
		return nil, fmt.Errorf("backup: page %d is not the freelist", id)
	}
	overflow := int64(binary.NativeEndian.Uint32(hdr[12:]))
	page := make([]byte, (overflow+1)*s.pageSize)
	if _, err := f.ReadAt(page, int64(id)*s.pageSize); err != nil {
		return nil, fmt.Errorf("backup: reading the freelist: %w", err)
	}
	count := int64(binary.NativeEndian.Uint16(page[10:]))
	ids := page[pageHeaderSize:]
	if count == 0xFFFF { // the real count is the first element
		count = int64(binary.NativeEndian.Uint64(ids))
		ids = ids[8:]
	}
	if count*8 > int64(len(ids)) {
		return nil, fmt.Errorf("backup: freelist of %d ids does not fit its page", count)
	}
	free := make(map[uint64]bool, count)
	for i := int64(0); i < count; i++ {
		free[binary.NativeEndian.Uint64(ids[i*8:])] = true
	}
	return free, nil
}
