package webhook

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"

	"imchannel/store"
)

// addSeeds adds every file matching pattern (relative to webhook/testdata/)
// to f's seed corpus.
func addSeeds(f *testing.F, patterns ...string) {
	f.Helper()
	n := 0
	for _, pattern := range patterns {
		files, err := filepath.Glob(filepath.Join("testdata", pattern))
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			n++
		}
	}
	if n == 0 {
		f.Fatalf("no seed files for %v", patterns)
	}
}

// invalidOnly fails unless err is nil or an Invalid error: a parser's
// every refusal must become a 400 naming the problem, never a 500.
func invalidOnly(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("parser error is not Invalid (would answer %v): %v", err, err)
	}
	if err != nil && !utf8.ValidString(err.Error()) {
		t.Fatalf("error message is not valid UTF-8: %q", err.Error())
	}
}

// fuzzStore opens one store for a fuzz target. What a parser accepts must
// also be writable: a store error other than Invalid would be a 500.
func fuzzStore(f *testing.F) *store.Store {
	f.Helper()
	st, err := store.Open(filepath.Join(f.TempDir(), "fuzz.db"), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	return st
}

// FuzzInfobip: the CTLive IM channel parser (inbound messages, delivery
// and seen reports) never panics, refuses only with Invalid, and what it
// accepts names every message and report by its external id.
func FuzzInfobip(f *testing.F) {
	addSeeds(f, "infobip/*.json", "corpus/infobip/*.json")
	st := fuzzStore(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := parseInfobip(body, time.Now())
		invalidOnly(t, err)
		if err != nil {
			return
		}
		for i := range b.quarantine {
			b.quarantine[i].Route = "/imchannel/message"
		}
		if _, err := st.IngestPost(context.Background(), store.Post{Messages: b.msgs, Reports: b.reports, Quarantine: b.quarantine}); err != nil {
			t.Fatalf("accepted a post the store cannot write: %v", err)
		}
		for _, m := range b.msgs {
			if m.ExternalID == "" {
				t.Fatalf("accepted a message without messageId: %+v", m)
			}
			if m.Type == "" {
				t.Fatalf("accepted a message without a type: %+v", m)
			}
		}
		for _, r := range b.reports {
			if r.ExternalID == "" || r.Status == "" {
				t.Fatalf("accepted a report without messageId or status: %+v", r)
			}
		}
	})
}

// FuzzCMMO: the CM.com MO parser never panics, refuses only with Invalid,
// and an accepted message has a reference and a type.
func FuzzCMMO(f *testing.F) {
	addSeeds(f, "cm/*.json", "corpus/cm/*.json")
	st := fuzzStore(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseCMMO(body, time.Now())
		var q *cmQuarantine
		if errors.As(err, &q) {
			if q.reason == "" {
				t.Fatalf("quarantined without a reason")
			}
			return
		}
		invalidOnly(t, err)
		if err != nil {
			return
		}
		if m == nil || m.ExternalID == "" || m.Type == "" {
			t.Fatalf("accepted an MO without reference or type: %+v", m)
		}
		if m.From == "" {
			return // the handler looks the customer up, or quarantines it
		}
		if _, err := st.SaveInbound(context.Background(), []*store.Message{m}); err != nil {
			t.Fatalf("accepted an MO the store cannot write: %v", err)
		}
	})
}

// FuzzCMStatus: the CM.com status-report parser never panics, refuses only
// with Invalid, and every accepted report names its reference and status.
func FuzzCMStatus(f *testing.F) {
	addSeeds(f, "cm/status_*.json", "corpus/cmstatus/*.json")
	st := fuzzStore(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		sp, err := parseCMStatus(body, time.Now())
		invalidOnly(t, err)
		if err != nil {
			return
		}
		for i := range sp.quarantine {
			sp.quarantine[i].Route = "/webhooks/cm/status"
		}
		if _, err := st.IngestPost(context.Background(), store.Post{Reports: sp.reports, Quarantine: sp.quarantine}); err != nil {
			t.Fatalf("accepted reports the store cannot write: %v", err)
		}
		for _, r := range sp.reports {
			if r.ExternalID == "" || r.Status == "" {
				t.Fatalf("accepted a report without reference or status: %+v", r)
			}
		}
	})
}
