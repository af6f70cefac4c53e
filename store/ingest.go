package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Ingest stores one webhook post: its inbound messages (and reactions and
// deletions) and its delivery and seen reports, all in ONE transaction, so a
// post that mixes both is stored whole or not at all. Messages are handled
// as SaveInbound does, reports as ApplyReports does (parked when their
// message is not stored yet).
//
// When the post carries only messages and every one of them is already
// known, nothing needs writing: Ingest answers from a read transaction
// without joining the group commit, so a provider resending a batch costs a
// lookup, not an fsync, unless the snapshot holds a commit not yet
// confirmed durable. (Those duplicates are therefore not added to the
// dup:<provider> counter, which counts only duplicates met inside a write.)
func (s *Store) Ingest(ctx context.Context, msgs []*Message, reps []Report) ([]Result, []ReportResult, error) {
	if err := validatePost(msgs, reps); err != nil {
		return nil, nil, err
	}
	if len(reps) == 0 && len(msgs) > 0 {
		if rs, ok, err := s.allKnown(msgs); err != nil {
			return nil, nil, err
		} else if ok {
			return rs, nil, nil
		}
	}
	return s.write(ctx, msgs, reps)
}

func validatePost(msgs []*Message, reps []Report) error {
	for i, m := range msgs {
		if err := validateNew(m, Inbound); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
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
func (s *Store) write(ctx context.Context, msgs []*Message, reps []Report) ([]Result, []ReportResult, error) {
	var results []Result
	var reports []ReportResult
	err := s.Update(ctx, func(t *Tx) error {
		results = make([]Result, len(msgs))
		for i, m := range msgs {
			cp := *m
			r, err := t.insert(&cp)
			if err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
			results[i] = r
		}
		reports = make([]ReportResult, len(reps))
		for i, r := range reps {
			rr, err := t.applyReport(r)
			if err != nil {
				return fmt.Errorf("report %d: %w", i, err)
			}
			reports[i] = rr
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return results, reports, nil
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
			id := ext.Get(extKey(m.Provider, m.ExternalID))
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
	id := t.tx.Bucket(bucketExt).Get(extKey(r.Provider, r.ExternalID))
	if len(id) == 0 {
		rc := r
		if err := t.park(r.Provider, r.ExternalID, Pending{Kind: pendingReport, Report: &rc, At: t.now}); err != nil {
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
