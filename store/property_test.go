package store

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestRandomOperationsKeepInvariants applies random sequences of every kind
// of write the service makes (inbound messages with replies and media,
// outbound messages, reports, reactions, deletions, dispatcher outcomes,
// media fetches and deletions, erasure, retention, restarts) and requires
// Check to be clean after each one.
func TestRandomOperationsKeepInvariants(t *testing.T) {
	seeds, steps := 12, 120
	if testing.Short() {
		seeds, steps = 8, 80
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runRandomOps(t, int64(seed), steps) })
	}
}

func runRandomOps(t *testing.T, seed int64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewSource(seed))
	clk := newClock(time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC))
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()

	customers := []string{"31600000001", "+31 6 00000002", "0031600000003"}
	businesses := []string{"1234", "5678"}
	var exts []string // every external id used so far (messages, aliases)
	n := 0
	newExt := func(prefix string) string {
		n++
		e := fmt.Sprintf("%s-%d", prefix, n)
		exts = append(exts, e)
		return e
	}
	anyExt := func() string {
		if len(exts) == 0 || rng.Intn(5) == 0 {
			// Sometimes one that arrives later, sometimes never.
			return fmt.Sprintf("in-%d", n+1+rng.Intn(3))
		}
		return exts[rng.Intn(len(exts))]
	}
	blobs := [][]byte{mediaPattern(10), mediaPattern(ChunkSize + 5), mediaPattern(3)}
	keys := func(bucket []byte) []string {
		var out []string
		_ = s.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucket).ForEach(func(k, _ []byte) error {
				out = append(out, string(k))
				return nil
			})
		})
		return out
	}
	pick := func(xs []string) string {
		if len(xs) == 0 {
			return ""
		}
		return xs[rng.Intn(len(xs))]
	}
	statuses := []string{StatusSent, StatusDelivered, StatusSeen, StatusFailed, StatusUnknown}

	var log []string
	for step := range steps {
		clk.Add(time.Duration(rng.Intn(3000)) * time.Millisecond)
		var op string
		var err error
		switch k := rng.Intn(24); {
		case k >= 20 && k < 22: // a mixed post through Ingest: messages, actions, reports
			var msgs []*Message
			for range 1 + rng.Intn(3) {
				m := inbound(newExt("in"), pick(customers), "batch")
				if rng.Intn(3) == 0 {
					m.ExternalID = anyExt()
				}
				if rng.Intn(3) == 0 {
					m.ReplyTo = &ReplyRef{ExternalID: anyExt()}
				}
				msgs = append(msgs, m)
			}
			reps := []Report{{Provider: ProviderInfobip, ExternalID: anyExt(), Status: statuses[rng.Intn(len(statuses))], At: clk.Now()}}
			op = fmt.Sprintf("ingest %d messages, report on %s", len(msgs), reps[0].ExternalID)
			_, _, err = s.Ingest(ctx, msgs, reps)
		case k == 22: // welcome
			m := outbound(newExt("welcome"), pick(customers), "welcome")
			m.From = pick(businesses)
			op = "welcome to " + m.To
			_, err = s.QueueWelcome(ctx, m)
		case k == 23: // scheduled outbound, or an event on any message
			if rng.Intn(2) == 0 {
				m := outbound(newExt("out"), pick(customers), "later")
				m.Outbound = &OutboundSpec{SendAt: clk.Now().Add(time.Duration(rng.Intn(120)) * time.Second)}
				op = "scheduled " + m.ExternalID
				_, err = s.QueueOutbound(ctx, []*Message{m}, QueueOptions{})
			} else {
				id := pick(keys(bucketMessages))
				if id == "" {
					continue
				}
				op = "event on " + id
				err = s.AddEvent(ctx, id, Event{Status: statuses[rng.Intn(len(statuses))], At: clk.Now()})
			}
		case k < 5: // inbound, sometimes a reply, sometimes with media
			m := inbound(newExt("in"), pick(customers), "hello")
			m.To = pick(businesses)
			if rng.Intn(3) == 0 {
				m.ReplyTo = &ReplyRef{ExternalID: anyExt()}
			}
			if rng.Intn(3) == 0 {
				m.Type = TypeImage
				m.Media = &Media{SourceURL: "http://origin.test/x", ContentType: "image/jpeg"}
			}
			if rng.Intn(4) == 0 {
				// A resend of something already known.
				m.ExternalID = anyExt()
			}
			op = fmt.Sprintf("inbound %s reply=%v media=%v", m.ExternalID, m.ReplyTo, m.Media != nil)
			_, err = s.SaveInbound(ctx, []*Message{m})
		case k < 8: // outbound
			m := outbound(newExt("out"), pick(customers), "answer")
			m.From = pick(businesses)
			op = "outbound " + m.ExternalID
			_, err = s.QueueOutbound(ctx, []*Message{m}, QueueOptions{})
		case k < 11: // a report, possibly early, possibly for an alias
			r := Report{Provider: ProviderInfobip, ExternalID: anyExt(), Status: statuses[rng.Intn(len(statuses))],
				At: clk.Now().Add(time.Duration(rng.Intn(20)-10) * time.Second), Reason: "r"}
			if rng.Intn(3) == 0 {
				r.ExternalID = "p-" + r.ExternalID
			}
			op = fmt.Sprintf("report %s %s", r.ExternalID, r.Status)
			_, err = s.ApplyReports(ctx, []Report{r})
		case k < 13: // dispatcher outcome
			id := pick(keys(bucketOutboxState))
			if id == "" {
				continue
			}
			switch rng.Intn(3) {
			case 0:
				m, merr := s.Message(id)
				if merr != nil {
					t.Fatal(merr)
				}
				op = "sent " + id
				err = s.MarkSent(ctx, id, "p-"+m.ExternalID, Event{})
			case 1:
				op = "failed " + id
				err = s.MarkFailed(ctx, id, "gave up")
			default:
				op = "retry " + id
				err = s.MarkRetry(ctx, id, clk.Now().Add(time.Minute), "503")
			}
		case k < 14: // reaction
			m := &Message{Provider: ProviderInfobip, ExternalID: newExt("react"), From: pick(customers), Type: TypeReaction,
				Target: anyExt(), ReactionEmoji: "👍", ReactionRemoved: rng.Intn(4) == 0}
			op = "reaction on " + m.Target
			_, err = s.SaveInbound(ctx, []*Message{m})
		case k < 15: // deletion
			m := &Message{Provider: ProviderInfobip, ExternalID: newExt("del"), Type: TypeDelete, Target: anyExt()}
			op = "delete " + m.Target
			_, err = s.SaveInbound(ctx, []*Message{m})
		case k < 17: // media outcomes
			id := pick(keys(bucketMedia))
			if id == "" {
				continue
			}
			switch rng.Intn(4) {
			case 0, 1:
				op = "fetched " + id
				_, err = s.MarkMediaFetched(ctx, id, BytesSource(blobs[rng.Intn(len(blobs))]), "image/jpeg", "image/jpeg", nil)
			case 2:
				op = "media failed " + id
				err = s.MarkMediaFailed(ctx, id, MediaFailed, "404")
			default:
				op = "delete media " + id
				err = s.DeleteMedia(ctx, id)
				if isNotFound(err) {
					err = nil
				}
			}
		case k < 18:
			op = "hosted media"
			var h *HostedMedia
			h, err = s.NewHostedMedia(blobs[rng.Intn(len(blobs))], "image/png", "h.png")
			if err == nil {
				m := outbound(fmt.Sprintf("tmpl-%d", step), pick(customers), "")
				m.Type = TypeTemplate
				m.Outbound = &OutboundSpec{TemplateName: "t", HeaderMedia: h.Media.ID}
				_, err = s.QueueWithHosted(ctx, m, h, QueueOptions{})
			}
		case k < 19:
			if rng.Intn(2) == 0 {
				c := pick(customers)
				op = "erase " + c
				_, err = s.EraseNumber(ctx, c)
			} else {
				cut := clk.Now().Add(-time.Duration(rng.Intn(60)) * time.Second)
				op = "purge before " + cut.Format(time.RFC3339Nano)
				_, err = s.PurgeBefore(ctx, cut)
			}
		default:
			op = "reopen"
			if err = s.Close(); err == nil {
				s, err = Open(path, Options{Now: clk.Now})
			}
		}
		log = append(log, op)
		if err != nil {
			t.Fatalf("seed %d step %d %s: %v\n%s", seed, step, op, err, strings.Join(log, "\n"))
		}
		if p := s.Check(); len(p) > 0 {
			t.Fatalf("seed %d step %d after %s:\n%s\nops:\n%s", seed, step, op, strings.Join(p, "\n"), strings.Join(log, "\n"))
		}
	}
}

func isNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), "already deleted")
}
