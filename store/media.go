package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"mime"
	"net/http"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

const counterMediaFailed = "media_failed"

// createMedia turns a message's Media (source URL, type, file name) into a
// media record and queues its fetch. The message keeps only the id.
func (t *Tx) createMedia(m *Message) error {
	if m.Media == nil {
		return nil
	}
	if m.Direction == Outbound && m.Media.ID == "" {
		// What we sent by URL is the provider's to fetch: the message
		// keeps the link, and no record is made that the fetcher would
		// download (with provider credentials, from a host of CTLive's).
		m.Media = &Media{SourceURL: m.Media.SourceURL, ContentType: m.Media.ContentType, FileName: m.Media.FileName}
		return nil
	}
	md := *m.Media
	if md.ID == "" {
		md.ID = t.s.NewID()
	}
	if md.State == "" {
		md.State = MediaPending
	}
	if md.State == MediaPending && md.SourceURL == "" {
		// Nothing to fetch: say so rather than wait for ever.
		md.State, md.Error = MediaFailed, "no source URL"
	}
	md.MessageID = m.ID
	md.Provider = m.Provider
	md.CreatedAt = t.now
	if md.State == MediaPending && md.SourceURL != "" {
		md.NextAt = t.now
		if err := t.tx.Bucket(bucketMediaQueue).Put(timeKey(md.NextAt, md.ID), nil); err != nil {
			return err
		}
		t.Notify(Change{Kind: "media", MessageID: m.ID})
	}
	if err := t.putMedia(&md); err != nil {
		return err
	}
	m.Media = &Media{ID: md.ID, State: md.State}
	return nil
}

func (t *Tx) putMedia(md *Media) error {
	v, err := encode(md)
	if err != nil {
		return err
	}
	return t.tx.Bucket(bucketMedia).Put([]byte(md.ID), v)
}

func (t *Tx) getMedia(id string) (*Media, error) {
	v := t.tx.Bucket(bucketMedia).Get([]byte(id))
	if v == nil {
		return nil, Errorf(ErrNotFound, "media %s not found", id)
	}
	var md Media
	if err := decode(v, &md); err != nil {
		return nil, err
	}
	return &md, nil
}

// dequeueMedia removes a media record from the fetch queue.
func (t *Tx) dequeueMedia(md *Media) error {
	if !md.NextAt.IsZero() || md.State == MediaPending {
		if err := t.tx.Bucket(bucketMediaQueue).Delete(timeKey(md.NextAt, md.ID)); err != nil {
			return err
		}
	}
	md.NextAt = timeZero
	return nil
}

// releaseMedia drops a media record's bytes (once nothing else references
// them) and marks it deleted.
func (t *Tx) releaseMedia(id string) error {
	md, err := t.getMedia(id)
	if err != nil {
		return nil // already gone
	}
	if md.State == MediaDeleted {
		return nil
	}
	if err := t.dequeueMedia(md); err != nil {
		return err
	}
	if md.State == MediaCached {
		if err := t.releaseBlob(md.SHA256); err != nil {
			return err
		}
	}
	if md.Thumb != "" {
		if err := t.tx.Bucket(bucketThumbs).Delete([]byte(md.ID)); err != nil {
			return err
		}
		md.Thumb = ""
	}
	md.State = MediaDeleted
	t.Notify(Change{Kind: "media", MessageID: md.MessageID})
	return t.putMedia(md)
}

// ---- reading ----

// Media returns one media record (all fields, bookkeeping included).
func (s *Store) Media(id string) (*Media, error) {
	var md *Media
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		md, err = (&Tx{tx: tx, s: s}).getMedia(id)
		return err
	})
	return md, err
}

// MediaByToken returns the hosted media published under a capability token.
func (s *Store) MediaByToken(token string) (*Media, error) {
	var md *Media
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketMediaToken).Get([]byte(token))
		if id == nil || token == "" {
			return Errorf(ErrNotFound, "no media under this token")
		}
		var err error
		md, err = (&Tx{tx: tx, s: s}).getMedia(string(id))
		return err
	})
	return md, err
}

// QueuedMedia is one entry of the fetch queue.
type QueuedMedia struct {
	ID string
	At time.Time
}

// MediaQueue lists the first limit entries of the fetch queue, earliest
// first, due or not.
func (s *Store) MediaQueue(limit int) ([]QueuedMedia, error) {
	var out []QueuedMedia
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMediaQueue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) > 8 {
				out = append(out, QueuedMedia{ID: string(k[8:]), At: time.Unix(0, int64(u64(k[:8])))})
			}
		}
		return nil
	})
	return out, err
}

// ---- writing ----

// NewMediaToken returns 32 random bytes, base64url: an unguessable
// capability for a public media URL.
func NewMediaToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// HostedMedia is bytes we publish for a provider to fetch (an outbound
// template's header): prepared outside any transaction, so the message can
// name its id and public URL, then stored with that message by
// QueueWithHosted, in the same transaction.
type HostedMedia struct {
	Media *Media
	src   BlobSource
}

// NewHostedMedia prepares a cached media record with a random token, served
// at /media/public/{token}. Nothing is written yet.
func (s *Store) NewHostedMedia(data []byte, contentType, fileName string) (*HostedMedia, error) {
	if len(data) == 0 {
		return nil, Errorf(ErrInvalid, "media is empty")
	}
	src := BytesSource(data)
	ct, sniffed := ReconcileType(contentType, http.DetectContentType(data[:min(len(data), 512)]))
	return &HostedMedia{src: src, Media: &Media{
		ID:          s.NewID(),
		ContentType: ct,
		SniffedType: sniffed,
		FileName:    fileName,
		Size:        src.Size,
		SHA256:      hex.EncodeToString(src.SHA256[:]),
		State:       MediaCached,
		Token:       NewMediaToken(),
	}}, nil
}

// putHosted writes h, owned by message msgID.
func (t *Tx) putHosted(h *HostedMedia, msgID string) error {
	md := h.Media
	md.CreatedAt = t.now
	md.MessageID = msgID
	if err := t.writeBlob(h.src, md.ContentType); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketMediaToken).Put([]byte(md.Token), []byte(md.ID)); err != nil {
		return err
	}
	t.Notify(Change{Kind: "media"})
	return t.putMedia(md)
}

// ReconcileType picks the content type to serve: the declared one, or the
// sniffed one when none was declared. sniffed comes back non-empty only when
// it disagrees with the declared type (both are kept). "Unknown" sniffs
// (application/octet-stream) never count as disagreeing.
func ReconcileType(declared, sniffed string) (contentType, disagreeing string) {
	declared = strings.TrimSpace(declared)
	if declared == "" {
		return sniffed, ""
	}
	if baseType(sniffed) == "application/octet-stream" || container(sniffed) == container(declared) {
		return declared, ""
	}
	return declared, sniffed
}

// container reduces audio and video types to their container, so that a
// voice note declared audio/ogg and sniffed application/ogg, or an m4a
// declared audio/mp4 and sniffed video/mp4, agree.
func container(ct string) string {
	mt := baseType(ct)
	switch mt {
	case "application/ogg", "audio/opus":
		return "ogg"
	}
	if major, sub, ok := strings.Cut(mt, "/"); ok && (major == "audio" || major == "video") {
		return sub
	}
	return mt
}

func baseType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// pendingMedia loads a media record the fetcher is working on; ok is false
// when it is no longer pending (deleted meanwhile), and then nothing changes.
func (t *Tx) pendingMedia(id string) (*Media, bool, error) {
	md, err := t.getMedia(id)
	if err != nil {
		return nil, false, err
	}
	return md, md.State == MediaPending, nil
}

// MarkMediaFetched stores fetched bytes and marks the media cached.
// contentType is the response's (falling back to the webhook's when the
// response has none or says application/octet-stream); sniffed is
// http.DetectContentType's, kept when it disagrees.
//
// img, when not nil, is what the fetcher read of an image: its size and a
// preview, kept beside the bytes and dropped with them.
func (s *Store) MarkMediaFetched(ctx context.Context, id string, src BlobSource, contentType, sniffed string, img *ImageInfo) (*Media, error) {
	var out *Media
	err := s.Update(ctx, func(t *Tx) error {
		md, ok, err := t.pendingMedia(id)
		if err != nil || !ok {
			out = md
			return err
		}
		// A response without a real type falls back to the type the
		// webhook announced.
		declared := contentType
		if md.ContentType != "" && (declared == "" || baseType(declared) == "application/octet-stream") {
			declared = md.ContentType
		}
		ct, disagree := ReconcileType(declared, sniffed)
		if err := t.dequeueMedia(md); err != nil {
			return err
		}
		if err := t.writeBlob(src, ct); err != nil {
			return err
		}
		md.State = MediaCached
		md.ContentType, md.SniffedType = ct, disagree
		md.Size = src.Size
		md.SHA256 = hex.EncodeToString(src.SHA256[:])
		md.Error = ""
		if img != nil {
			md.Width, md.Height = img.Width, img.Height
			if len(img.Thumb) > 0 && img.ThumbType != "" {
				if err := t.tx.Bucket(bucketThumbs).Put([]byte(md.ID), img.Thumb); err != nil {
					return err
				}
				md.Thumb = img.ThumbType
			}
		}
		md.Attempts++
		if md.FirstTry.IsZero() {
			md.FirstTry = t.now
		}
		t.Notify(Change{Kind: "media", MessageID: md.MessageID})
		out = md
		if err := t.putMedia(md); err != nil {
			return err
		}
		return t.logEvent(EventRecord{Type: EventMediaCached, MessageID: md.MessageID})
	})
	return out, err
}

// endAttempt takes a pending media off the fetch queue and counts the
// attempt that just ended; ok is false when it is no longer pending.
func (t *Tx) endAttempt(id string) (*Media, bool, error) {
	md, ok, err := t.pendingMedia(id)
	if err != nil || !ok {
		return nil, ok, err
	}
	if err := t.dequeueMedia(md); err != nil {
		return nil, false, err
	}
	md.Attempts++
	if md.FirstTry.IsZero() {
		md.FirstTry = t.now
	}
	return md, true, nil
}

// MarkMediaRetry records a failed attempt and requeues the fetch at next.
func (s *Store) MarkMediaRetry(ctx context.Context, id string, next time.Time, reason string) error {
	return s.Update(ctx, func(t *Tx) error {
		md, ok, err := t.endAttempt(id)
		if err != nil || !ok {
			return err
		}
		md.Error = reason
		md.NextAt = next
		if err := t.tx.Bucket(bucketMediaQueue).Put(timeKey(md.NextAt, md.ID), nil); err != nil {
			return err
		}
		return t.putMedia(md)
	})
}

// MarkMediaFailed ends a fetch for good: state is MediaFailed or
// MediaTooLarge, reason is kept, the source URL too.
func (s *Store) MarkMediaFailed(ctx context.Context, id, state, reason string) error {
	if state != MediaFailed && state != MediaTooLarge {
		return Errorf(ErrInvalid, "media state %q is not a final failure", state)
	}
	return s.Update(ctx, func(t *Tx) error {
		md, ok, err := t.endAttempt(id)
		if err != nil || !ok {
			return err
		}
		md.State, md.Error = state, reason
		if state == MediaFailed {
			if err := t.addCounter(counterMediaFailed, 1); err != nil {
				return err
			}
		}
		t.Notify(Change{Kind: "media", MessageID: md.MessageID})
		if err := t.putMedia(md); err != nil {
			return err
		}
		return t.logEvent(EventRecord{Type: EventMediaFailed, MessageID: md.MessageID})
	})
}

// DeleteMedia releases a media record's bytes for good (DELETE /media/{id}).
// A record already deleted is ErrNotFound.
func (s *Store) DeleteMedia(ctx context.Context, id string) error {
	return s.Update(ctx, func(t *Tx) error {
		md, err := t.getMedia(id)
		if err != nil {
			return err
		}
		if md.State == MediaDeleted {
			return Errorf(ErrNotFound, "media %s is already deleted", id)
		}
		return t.releaseMedia(id)
	})
}

func checkMediaInvariants(tx *bolt.Tx, add addFunc) {
	media := tx.Bucket(bucketMedia)
	queue := tx.Bucket(bucketMediaQueue)
	_ = queue.ForEach(func(k, _ []byte) error {
		if len(k) < 9 || media.Get(k[8:]) == nil {
			add("media_queue %x points at missing media", k)
		}
		return nil
	})
	hostedRefs := headerMediaRefs(tx)
	refs := map[string]int{}
	_ = media.ForEach(func(k, v []byte) error {
		var md Media
		if err := decode(v, &md); err != nil {
			add("media %s: %v", k, err)
			return nil
		}
		if md.MessageID != "" && tx.Bucket(bucketMessages).Get([]byte(md.MessageID)) == nil {
			add("media %s: belongs to missing message %s", md.ID, md.MessageID)
		} else if md.MessageID == "" && !hostedRefs[md.ID] {
			add("media %s: orphaned (no message uses it; compact or the retention pass reclaims it)", md.ID)
		}
		switch md.State {
		case MediaCached:
			refs[md.SHA256]++
		case MediaPending:
			if md.SourceURL != "" && queue.Get(timeKey(md.NextAt, md.ID)) == nil {
				add("media %s: pending but not in media_queue", md.ID)
			}
		}
		if (md.Thumb != "") != (tx.Bucket(bucketThumbs).Get([]byte(md.ID)) != nil) {
			add("media %s: thumb %q disagrees with media_thumbs", md.ID, md.Thumb)
		}
		if md.Thumb != "" && md.State != MediaCached {
			add("media %s: a preview kept for %s media", md.ID, md.State)
		}
		if md.Token != "" && string(tx.Bucket(bucketMediaToken).Get([]byte(md.Token))) != md.ID {
			add("media %s: media_token entry missing", md.ID)
		}
		return nil
	})
	_ = tx.Bucket(bucketMediaToken).ForEach(func(k, v []byte) error {
		mv := media.Get(v)
		if mv == nil {
			add("media_token points at missing media %s", v)
			return nil
		}
		var md Media
		if decode(mv, &md) == nil && md.Token != string(k) {
			add("media_token entry for media %s does not match its token", v)
		}
		return nil
	})
	checkBlobInvariants(tx, refs, add)
}

var headerMediaMarker = []byte(`"headerMedia":"`)

// headerMediaRefs are the media ids messages name as their template
// header. Hosted media stored before QueueWithHosted have no owner id, so
// this is how an orphan (a crash between storing the bytes and queueing
// the message) is told from a header in use. A byte search skips decoding
// the many messages that have no header.
func headerMediaRefs(tx *bolt.Tx) map[string]bool {
	out := map[string]bool{}
	_ = tx.Bucket(bucketMessages).ForEach(func(_, v []byte) error {
		i := bytes.Index(v, headerMediaMarker)
		if i < 0 {
			return nil
		}
		rest := v[i+len(headerMediaMarker):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			out[string(rest[:j])] = true
		}
		return nil
	})
	return out
}

// orphanMedia lists hosted media that no message uses.
func (t *Tx) orphanMedia() []string {
	refs := headerMediaRefs(t.tx)
	var out []string
	_ = t.tx.Bucket(bucketMedia).ForEach(func(k, v []byte) error {
		var md Media
		if decode(v, &md) == nil && md.MessageID == "" && !refs[md.ID] {
			out = append(out, md.ID)
		}
		return nil
	})
	return out
}

// ReclaimOrphanMedia removes hosted media that no message uses, with their
// bytes (unless other media share them), and reports how many went. The
// retention pass runs it; `imchannel compact` runs ReclaimOrphanMediaIn on
// its copy.
func (s *Store) ReclaimOrphanMedia(ctx context.Context) (int, error) {
	n := 0
	err := s.Update(ctx, func(t *Tx) error {
		var err error
		n, err = t.reclaimOrphans()
		return err
	})
	return n, err
}

// ReclaimOrphanMediaIn is ReclaimOrphanMedia on a raw bbolt file no store
// has open (the copy `compact` writes).
func ReclaimOrphanMediaIn(db *bolt.DB) (int, error) {
	n := 0
	err := db.Update(func(btx *bolt.Tx) error {
		var err error
		n, err = (&Tx{tx: btx, now: time.Now()}).reclaimOrphans()
		return err
	})
	return n, err
}

func (t *Tx) reclaimOrphans() (int, error) {
	n := 0
	for _, id := range t.orphanMedia() {
		if err := t.dropMedia(id, ""); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ImageInfo is what the fetcher read of a cached image.
type ImageInfo struct {
	Width, Height int
	// Thumb is a preview (ThumbType, e.g. image/jpeg), or nil when the
	// image is small enough to be its own.
	Thumb     []byte
	ThumbType string
}

// MediaThumb returns a media record and its preview's bytes (nil when it
// has none).
func (s *Store) MediaThumb(id string) (*Media, []byte, error) {
	var md *Media
	var b []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if md, err = (&Tx{tx: tx, s: s}).getMedia(id); err != nil {
			return err
		}
		if md.Thumb != "" {
			b = bytes.Clone(tx.Bucket(bucketThumbs).Get([]byte(id)))
		}
		return nil
	})
	return md, b, err
}
