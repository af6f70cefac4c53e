package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// step is one thing that happens to an outbound message "o1": it is queued,
// a report arrives (for "o1" or the provider's alias "p1"), or the alias
// becomes known.
type step struct {
	queue bool
	alias bool
	rep   string // status of a report
	sec   int    // the report's own time, seconds after the clock's start
	ext   string // report's external id; "o1" if empty
}

func queue() step                     { return step{queue: true} }
func alias() step                     { return step{alias: true} }
func rep(status string, sec int) step { return step{rep: status, sec: sec} }

func TestStatusTimelines(t *testing.T) {
	cases := []struct {
		name     string
		steps    []step
		status   string
		timeline string // status@sec in timeline order; queued is at 0
		failed   int
		errText  string
	}{
		{
			name:     "in order",
			steps:    []step{queue(), rep(StatusSent, 1), rep(StatusDelivered, 2), rep(StatusSeen, 3)},
			status:   StatusSeen,
			timeline: "queued@0 sent@1 delivered@2 seen@3",
		},
		{
			name:     "seen before delivered before the message exists",
			steps:    []step{rep(StatusSeen, 3), rep(StatusDelivered, 2), queue()},
			status:   StatusSeen,
			timeline: "queued@0 delivered@2 seen@3",
		},
		{
			name:     "early reports, then a late sent",
			steps:    []step{rep(StatusSeen, 3), rep(StatusDelivered, 2), queue(), rep(StatusSent, 1)},
			status:   StatusSeen,
			timeline: "queued@0 sent@1 delivered@2 seen@3",
		},
		{
			name:     "never backwards: an older-ranked report with a later time",
			steps:    []step{queue(), rep(StatusSeen, 3), rep(StatusSent, 4), rep(StatusDelivered, 5)},
			status:   StatusSeen,
			timeline: "queued@0 seen@3 sent@4 delivered@5",
		},
		{
			name:     "failed after delivered stays delivered",
			steps:    []step{queue(), rep(StatusDelivered, 2), rep(StatusFailed, 3)},
			status:   StatusDelivered,
			timeline: "queued@0 delivered@2 failed@3",
		},
		{
			name:     "failed after seen stays seen",
			steps:    []step{queue(), rep(StatusSeen, 2), rep(StatusFailed, 3)},
			status:   StatusSeen,
			timeline: "queued@0 seen@2 failed@3",
		},
		{
			name:     "failed after sent",
			steps:    []step{queue(), rep(StatusSent, 1), rep(StatusFailed, 2)},
			status:   StatusFailed,
			timeline: "queued@0 sent@1 failed@2",
			failed:   1,
			errText:  "reason for failed",
		},
		{
			name:     "failed, then a delivered report that was late",
			steps:    []step{queue(), rep(StatusFailed, 3), rep(StatusDelivered, 2)},
			status:   StatusDelivered,
			timeline: "queued@0 delivered@2 failed@3",
		},
		{
			name:     "failed before the message exists",
			steps:    []step{rep(StatusFailed, 2), queue()},
			status:   StatusFailed,
			timeline: "queued@0 failed@2",
			failed:   1,
			errText:  "reason for failed",
		},
		{
			name:     "identical report twice",
			steps:    []step{queue(), rep(StatusDelivered, 2), rep(StatusDelivered, 2)},
			status:   StatusDelivered,
			timeline: "queued@0 delivered@2",
		},
		{
			name:     "identical report twice while parked",
			steps:    []step{rep(StatusDelivered, 2), rep(StatusDelivered, 2), queue()},
			status:   StatusDelivered,
			timeline: "queued@0 delivered@2",
		},
		{
			name: "reports by the provider's alias before the alias is known",
			steps: []step{queue(), {rep: StatusSeen, sec: 3, ext: "p1"}, {rep: StatusDelivered, sec: 2, ext: "p1"},
				alias(), {rep: StatusDelivered, sec: 2, ext: "p1"}},
			status:   StatusSeen,
			timeline: "queued@0 delivered@2 seen@3",
		},
		{
			name:     "an unknown status is kept and changes nothing",
			steps:    []step{queue(), rep(StatusSent, 1), rep(StatusUnknown, 2)},
			status:   StatusSent,
			timeline: "queued@0 sent@1 unknown@2",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock(at(0))
			s := openTemp(t, Options{Now: clk.Now})
			var msgID, convID string
			for _, st := range tc.steps {
				switch {
				case st.queue:
					r := queueOne(t, s, outbound("o1", customer, "hello"))
					msgID, convID = r.MessageID, r.ConversationID
				case st.alias:
					require.NoError(t, s.Update(ctx, func(t *Tx) error { return t.AddAlias(msgID, ProviderInfobip, "p1") }))
				default:
					ext := st.ext
					if ext == "" {
						ext = "o1"
					}
					_, err := s.ApplyReports(ctx, []Report{{Provider: ProviderInfobip, ExternalID: ext, Status: st.rep,
						At: at(st.sec), GroupName: strings.ToUpper(st.rep), Reason: "reason for " + st.rep}})
					require.NoError(t, err)
				}
			}
			m := mustMessage(t, s, msgID)
			require.Equal(t, tc.status, m.Status)
			var tl []string
			for _, e := range m.Timeline {
				tl = append(tl, fmt.Sprintf("%s@%d", e.Status, int(e.At.Sub(at(0))/time.Second)))
			}
			require.Equal(t, tc.timeline, strings.Join(tl, " "))
			require.Equal(t, tc.errText, m.Error)
			require.Equal(t, tc.failed, mustConversation(t, s, convID).FailedCount)
			require.EqualValues(t, tc.failed, s.Counter(counterFailedSends))
			requireClean(t, s)

			// Nothing is left parked.
			require.NoError(t, s.View(func(tx *bolt.Tx) error {
				require.Zero(t, tx.Bucket(bucketPending).Stats().KeyN, "pending entries left")
				return nil
			}))
		})
	}
}

// A report for a message that never arrives is parked, not dropped, and
// survives a restart.
func TestParkedReportSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/p.db"
	s, err := Open(path, Options{})
	require.NoError(t, err)
	rr, err := s.ApplyReports(ctx, []Report{{Provider: ProviderCM, ExternalID: "later", Status: StatusDelivered, At: at(5)}})
	require.NoError(t, err)
	require.True(t, rr[0].Parked)
	require.NoError(t, s.Close())

	s = openAt(t, path, Options{})
	m := outbound("later", customer, "hi")
	m.Provider = ProviderCM
	r := queueOne(t, s, m)
	require.Equal(t, StatusDelivered, mustMessage(t, s, r.MessageID).Status)
	requireClean(t, s)
}

func TestApplyReportsValidates(t *testing.T) {
	s := openTemp(t, Options{})
	for _, r := range []Report{
		{ExternalID: "x", Status: StatusSent},
		{Provider: ProviderInfobip, Status: StatusSent},
		{Provider: ProviderInfobip, ExternalID: "x"},
	} {
		_, err := s.ApplyReports(context.Background(), []Report{r})
		require.ErrorIs(t, err, ErrInvalid)
	}
}
