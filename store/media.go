package store

import bolt "go.etcd.io/bbolt"

// createMedia turns a message's Media (source URL, type, file name) into a
// media record and queues its fetch. The message keeps only the id.
func (t *Tx) createMedia(m *Message) error {
	if m.Media == nil {
		return nil
	}
	md := *m.Media
	if md.ID == "" {
		md.ID = t.s.NewID()
	}
	if md.State == "" {
		md.State = MediaPending
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

// releaseMedia drops a media record's bytes (once nothing else references
// them) and marks it deleted.
func (t *Tx) releaseMedia(id string) error {
	md, err := t.getMedia(id)
	if err != nil {
		return nil // already gone
	}
	if md.State == MediaPending || !md.NextAt.IsZero() {
		_ = t.tx.Bucket(bucketMediaQueue).Delete(timeKey(md.NextAt, md.ID))
	}
	// Blob reference counting lives with the blob code (media fetcher).
	md.State = MediaDeleted
	md.NextAt = timeZero
	return t.putMedia(md)
}

func checkMediaInvariants(tx *bolt.Tx, add addFunc) {
	media := tx.Bucket(bucketMedia)
	_ = tx.Bucket(bucketMediaQueue).ForEach(func(k, _ []byte) error {
		if len(k) < 9 || media.Get(k[8:]) == nil {
			add("media_queue %x points at missing media", k)
		}
		return nil
	})
}
