package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// ChunkSize is how blobs are cut: every chunk but the last holds exactly
// this many bytes, so an offset maps to a chunk by division. 256 KiB keeps
// each value a modest bbolt overflow run, never a multi-megabyte value.
const ChunkSize = 256 << 10

// Blob is the content-addressed record of some bytes: stored once however
// many media records reference them.
type Blob struct {
	Size        int64  `json:"size"`
	Chunks      int    `json:"chunks"`
	ChunkSize   int    `json:"chunkSize"`
	Refs        int    `json:"refs"`
	ContentType string `json:"contentType,omitempty"`
}

// BlobSource is bytes to store: their SHA-256 and a way to read them. The
// write function may run more than once, so ReadAt must be repeatable.
type BlobSource struct {
	SHA256 [32]byte
	Size   int64
	R      io.ReaderAt
}

// BytesSource wraps an in-memory slice.
func BytesSource(b []byte) BlobSource {
	return BlobSource{SHA256: sha256.Sum256(b), Size: int64(len(b)), R: bytesReaderAt(b)}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// slice returns b[off:off+n] without copying; bbolt keeps the reference
// until commit, and the slice outlives the transaction.
func (b bytesReaderAt) slice(off, n int64) []byte { return b[off : off+n] }

func chunkKey(sum []byte, i uint32) []byte {
	k := make([]byte, 36)
	copy(k, sum)
	binary.BigEndian.PutUint32(k[32:], i)
	return k
}

func (t *Tx) getBlob(sum []byte) (*Blob, error) {
	v := t.tx.Bucket(bucketBlobs).Get(sum)
	if v == nil {
		return nil, Errorf(ErrNotFound, "blob %x not found", sum)
	}
	var b Blob
	if err := decode(v, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

func (t *Tx) putBlob(sum []byte, b *Blob) error {
	v, err := encode(b)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketBlobs).Put(sum, v)
}

// writeBlob stores src (once) and takes one reference to it.
func (t *Tx) writeBlob(src BlobSource, contentType string) error {
	sum := src.SHA256[:]
	if b, err := t.getBlob(sum); err == nil {
		b.Refs++
		return t.putBlob(sum, b)
	}
	chunks := t.tx.Bucket(bucketChunks)
	n := 0
	for off := int64(0); off < src.Size; off += ChunkSize {
		size := min(int64(ChunkSize), src.Size-off)
		var buf []byte
		if br, ok := src.R.(bytesReaderAt); ok {
			buf = br.slice(off, size)
		} else {
			// A fresh buffer per chunk: bbolt holds the slice until commit.
			buf = make([]byte, size)
			if _, err := src.R.ReadAt(buf, off); err != nil && !(err == io.EOF && int64(len(buf)) == size) {
				return fmt.Errorf("%w: read blob at %d: %v", ErrInternal, off, err)
			}
		}
		if err := chunks.Put(chunkKey(sum, uint32(n)), buf); err != nil {
			return err
		}
		n++
	}
	return t.putBlob(sum, &Blob{Size: src.Size, Chunks: n, ChunkSize: ChunkSize, Refs: 1, ContentType: contentType})
}

// releaseBlob drops one reference; the last one deletes the chunks.
func (t *Tx) releaseBlob(hexSum string) error {
	sum, err := hex.DecodeString(hexSum)
	if err != nil || len(sum) != 32 {
		return nil // nothing stored under a malformed sum
	}
	b, err := t.getBlob(sum)
	if err != nil {
		return nil // already gone
	}
	b.Refs--
	if b.Refs > 0 {
		return t.putBlob(sum, b)
	}
	chunks := t.tx.Bucket(bucketChunks)
	for i := 0; i < b.Chunks; i++ {
		if err := chunks.Delete(chunkKey(sum, uint32(i))); err != nil {
			return err
		}
	}
	return t.tx.Bucket(bucketBlobs).Delete(sum)
}

// checkBlobInvariants: refcounts equal the cached media referencing each
// blob, every chunk exists with the right sizes, and no chunk is orphaned.
func checkBlobInvariants(tx *bolt.Tx, refs map[string]int, add addFunc) {
	blobs := tx.Bucket(bucketBlobs)
	chunks := tx.Bucket(bucketChunks)
	seen := map[string]bool{}
	_ = blobs.ForEach(func(k, v []byte) error {
		key := hex.EncodeToString(k)
		seen[key] = true
		var b Blob
		if err := decode(v, &b); err != nil {
			add("blob %s: %v", key, err)
			return nil
		}
		if b.Refs != refs[key] {
			add("blob %s: refcount %d, but %d media reference it", key, b.Refs, refs[key])
		}
		var total int64
		for i := 0; i < b.Chunks; i++ {
			c := chunks.Get(chunkKey(k, uint32(i)))
			if c == nil {
				add("blob %s: chunk %d missing", key, i)
				continue
			}
			if len(c) > ChunkSize {
				add("blob %s: chunk %d is %d bytes, over %d", key, i, len(c), ChunkSize)
			}
			total += int64(len(c))
		}
		if total != b.Size {
			add("blob %s: chunks hold %d bytes, blob says %d", key, total, b.Size)
		}
		return nil
	})
	for key, n := range refs {
		if !seen[key] {
			add("blob %s missing, referenced by %d media", key, n)
		}
	}
	_ = chunks.ForEach(func(k, _ []byte) error {
		if len(k) != 36 {
			add("chunks: malformed key %x", k)
			return nil
		}
		v := blobs.Get(k[:32])
		if v == nil {
			add("chunk %x/%d has no blob", k[:32], binary.BigEndian.Uint32(k[32:]))
			return nil
		}
		var b Blob
		if decode(v, &b) == nil && int(binary.BigEndian.Uint32(k[32:])) >= b.Chunks {
			add("chunk %x/%d beyond the blob's %d chunks", k[:32], binary.BigEndian.Uint32(k[32:]), b.Chunks)
		}
		return nil
	})
}

// BlobReader reads a stored blob chunk by chunk, each chunk copied out of
// its own short read transaction: a long download never pins a bbolt
// transaction (which would block remapping the file) and never holds more
// than one chunk in memory.
type BlobReader struct {
	s      *Store
	sum    []byte
	size   int64
	chunks int
	off    int64
	buf    []byte
	bufIdx int
}

// OpenMedia opens a cached media record's bytes. Media in any other state
// is ErrNotFound naming that state.
func (s *Store) OpenMedia(md *Media) (*BlobReader, error) {
	if md.State != MediaCached {
		return nil, Errorf(ErrNotFound, "media %s is %s", md.ID, md.State)
	}
	sum, err := hex.DecodeString(md.SHA256)
	if err != nil || len(sum) != 32 {
		return nil, Errorf(ErrInternal, "media %s has a malformed sha256", md.ID)
	}
	var b *Blob
	err = s.db.View(func(tx *bolt.Tx) error {
		var err error
		b, err = (&Tx{tx: tx, s: s}).getBlob(sum)
		return err
	})
	if err != nil {
		return nil, Errorf(ErrNotFound, "media %s: bytes are gone", md.ID)
	}
	return &BlobReader{s: s, sum: sum, size: b.Size, chunks: b.Chunks, bufIdx: -1}, nil
}

// Size is the blob's length in bytes.
func (r *BlobReader) Size() int64 { return r.size }

// Read implements io.Reader.
func (r *BlobReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	idx := int(r.off / ChunkSize)
	if idx != r.bufIdx {
		err := r.s.db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketChunks).Get(chunkKey(r.sum, uint32(idx)))
			if v == nil {
				return Errorf(ErrNotFound, "blob %x: chunk %d is gone", r.sum, idx)
			}
			r.buf = append(r.buf[:0], v...)
			return nil
		})
		if err != nil {
			r.bufIdx = -1
			return 0, err
		}
		r.bufIdx = idx
	}
	start := int(r.off - int64(idx)*ChunkSize)
	if start >= len(r.buf) {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, r.buf[start:])
	r.off += int64(n)
	return n, nil
}

// Seek implements io.Seeker.
func (r *BlobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, Errorf(ErrInvalid, "seek: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, Errorf(ErrInvalid, "seek to negative offset %d", offset)
	}
	r.off = offset
	return offset, nil
}

// Blob returns the blob stored under a hex SHA-256.
func (s *Store) Blob(sha256Hex string) (*Blob, error) {
	sum, err := hex.DecodeString(sha256Hex)
	if err != nil || len(sum) != 32 {
		return nil, Errorf(ErrInvalid, "%q is not a hex sha256", sha256Hex)
	}
	var b *Blob
	err = s.db.View(func(tx *bolt.Tx) error {
		var err error
		b, err = (&Tx{tx: tx, s: s}).getBlob(sum)
		return err
	})
	return b, err
}

// BlobCounts reports how many blobs and chunks are stored.
func (s *Store) BlobCounts() (blobs, chunks int) {
	_ = s.db.View(func(tx *bolt.Tx) error {
		blobs = tx.Bucket(bucketBlobs).Stats().KeyN
		chunks = tx.Bucket(bucketChunks).Stats().KeyN
		return nil
	})
	return blobs, chunks
}
