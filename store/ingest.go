package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Post is one webhook post: the items understood (messages and reports)
// and those that were not (quarantined raw).
type Post struct {
	Messages   []*Message
	Reports    []Report
	Quarantine []Quarantined
}

// PostResult says what became of each item of a Post.
type PostResult struct {
	Messages []Result
	Reports  []ReportResult
	// QuarantineDups counts quarantined items that were already there.
	QuarantineDups int
}

// Ingest stores one webhook post's messages and reports; see IngestPost.
func (s *Store) Ingest(ctx context.Context, msgs []*Message, reps []Report) ([]Result, []ReportResult, error) {
	r, err := s.IngestPost(ctx, Post{Messages: msgs, Reports: reps})
	return r.Messages, r.Reports, err
}

// IngestPost stores one webhook post: its inbound messages (and reactions
// and deletions), its delivery and seen reports and its quarantined items,
// all in ONE transaction, so a post is stored whole or not at all. Messages
// are handled as SaveInbound does, reports as ApplyReports does (parked
// when their message is not stored yet).
//
// When the post carries only messages and every one of them is already
// known, nothing needs writing: it answers from a read transaction
// without joining the group commit, so a provider resending a batch costs a
// lookup, not an fsync, unless the snapshot holds a commit not yet
// confirmed durable. (Those duplicates are therefore not added to the
// dup:<provider> counter, which counts only duplicates met inside a write.)
func (s *Store) IngestPost(ctx context.Context, p Post) (PostResult, error) {
	if err := validatePost(p.Messages, p.Reports); err != nil {
		return PostResult{}, err
	}
	if len(p.Reports) == 0 && len(p.Quarantine) == 0 && len(p.Messages) > 0 {
		if rs, ok, err := s.allKnown(p.Messages); err != nil {
			return PostResult{}, err
		} else if ok {
			return PostResult{Messages: rs}, nil
		}
	}
	return s.write(ctx, p)
}

func validatePost(msgs []*Message, reps []Report) error {
	for i, m := range msgs {
		if err := validateNew(m, Inbound); err != nil {
			return &ItemError{Index: i, Err: err}
		}
	}
	for i, r := range reps {
		if err := validateReport(r); err != nil {
			return fmt.Errorf("report %d: %w", i, err)
		}
	}
	return nil
}

// write stores validated inbound messages and applies reports in one
// transaction of the group commit.
func (s *Store) write(ctx context.Context, p Post) (PostResult, error) {
	var out PostResult
	err := s.Update(ctx, func(t *Tx) error {
		msgs, reps := p.Messages, p.Reports
		results := make([]Result, len(msgs))
		for i, m := range msgs {
			cp := *m
			r, err := t.insert(&cp)
			if err != nil {
				return &ItemError{Index: i, Err: err}
			}
			results[i] = r
		}
		reports := make([]ReportResult, len(reps))
		for i, r := range reps {
			rr, err := t.applyReport(r)
			if err != nil {
				return fmt.Errorf("report %d: %w", i, err)
			}
			reports[i] = rr
		}
		dups := 0
		for i, q := range p.Quarantine {
			dup, err := t.quarantine(q)
			if err != nil {
				return fmt.Errorf("quarantine %d: %w", i, err)
			}
			if dup {
				dups++
			}
		}
		out = PostResult{Messages: results, Reports: reports, QuarantineDups: dups}
		return nil
	})
	if err != nil {
		return PostResult{}, err
	}
	return out, nil
}

func validateReport(r Report) error {
	if r.Provider == "" || r.ExternalID == "" {
		return Errorf(ErrInvalid, "provider and externalId are required")
	}
	if err := validID("externalId", r.ExternalID); err != nil {
		return err
	}
	if r.Status == "" {
		return Errorf(ErrInvalid, "status is required")
	}
	return nil
}

// allKnown reports, from a read transaction, whether every message's
// (provider, externalId) is already stored, with the duplicate results
// insert would have given.
func (s *Store) allKnown(msgs []*Message) ([]Result, bool, error) {
	rs := make([]Result, len(msgs))
	known := true
	err := s.db.View(func(tx *bolt.Tx) error {
		if uint64(tx.ID()) > s.durable.Load() {
			// This snapshot includes a commit whose fsync is not confirmed
			// yet: answering "duplicate" from it could acknowledge a
			// message a crash then loses. The write path waits for disk.
			known = false
			return nil
		}
		ext := tx.Bucket(bucketExt)
		for i, m := range msgs {
			id := ext.Get(extKey(m.Provider, m.dedupeKey()))
			if id == nil {
				known = false
				return nil
			}
			// Existence is all a resend needs: decoding the stored message
			// here would cost more than the rest of the fast path.
			r := Result{MessageID: string(id), ExternalID: m.ExternalID, Duplicate: true, Action: len(id) == 0}
			rs[i] = r
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("%w: read: %v", ErrUnavailable, err)
	}
	return rs, known, nil
}

// applyReport records one report on its message, or parks it until the
// message (or an alias naming it) is stored.
func (t *Tx) applyReport(r Report) (ReportResult, error) {
	if r.At.IsZero() {
		r.At, r.Untimed = t.now, true
	}
	// Reports name our outbound messages only: an inbound message with the
	// same id is never touched.
	id := t.tx.Bucket(bucketExt).Get(outKey(r.Provider, r.ExternalID))
	if len(id) == 0 && len(r.ExternalID) == 26 {
		// Our own id, sent as the provider's reference (CM).
		if m, err := t.getMessage(r.ExternalID); err == nil && m.Direction == Outbound && m.Provider == r.Provider {
			id = []byte(m.ID)
		}
	}
	if len(id) == 0 && r.IgnoreUnknown {
		return ReportResult{Ignored: true}, nil
	}
	if len(id) == 0 {
		rc := r
		if err := t.park(outKey(r.Provider, r.ExternalID), Pending{Kind: pendingReport, Report: &rc, At: t.now}); err != nil {
			return ReportResult{}, err
		}
		return ReportResult{Parked: true}, nil
	}
	m, err := t.getMessage(string(id))
	if err != nil {
		return ReportResult{}, err
	}
	if err := t.applyReportTo(m, r); err != nil {
		return ReportResult{}, err
	}
	return ReportResult{MessageID: m.ID}, nil
}
