package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// TestProviderOutage: the provider answers 500, then hangs beyond
// provider.timeout, then recovers; the service is restarted in the middle
// of the outage. Every queued message reaches the provider after
// recovery, each under its own messageId (once, or again with the same id
// where an answer was cut off), nothing else arrives, and the store shows
// every one of them sent.
func TestProviderOutage(t *testing.T) {
	perPhase := 20
	if long() {
		perPhase = 200
	}
	prov := newProvider(t)
	prov.setMode("fail")
	dir := t.TempDir()
	db := dir + "/outage.db"
	cfg := writeConfig(t, dir, options{providerURL: prov.url()})
	s := start(t, cfg, db)
	s.healthy(t)
	if !s.routeExists(t, "POST", "/omni/1/advanced", authAPI) {
		t.Skip("send API not mounted")
	}

	var queued []string
	send := func(s *svc, phase string) {
		for i := range perPhase {
			id := fmt.Sprintf("outage-%s-%d", phase, i)
			code, body := s.do(t, "POST", "/omni/1/advanced", authAPI, sendAPI(id, fmt.Sprintf("316333%05d", i), "during the outage"), nil)
			require.Equal(t, 200, code, "%s: %s", id, body)
			queued = append(queued, id)
		}
	}

	// Phase 1: 500s.
	send(s, "fail")
	require.Eventually(t, func() bool { return prov.attemptsIn("fail") >= 2*perPhase }, 30*time.Second, 10*time.Millisecond,
		"the dispatcher did not retry after 500s\n%s", s.logs.String())

	// Phase 2: the provider hangs longer than provider.timeout (500ms).
	prov.setMode("hang")
	send(s, "hang")
	require.Eventually(t, func() bool { return prov.attemptsIn("hang") >= 4 }, 30*time.Second, 10*time.Millisecond,
		"the dispatcher never reached the hanging provider")

	// Restart in the middle of the outage: a clean stop must not wait on
	// the hung calls beyond their timeout, and the new process resumes.
	stopStart := time.Now()
	s.stop(t)
	t.Logf("stopped with provider calls hanging in %s", time.Since(stopStart).Round(time.Millisecond))
	check(t, db)
	s = start(t, cfg, db)
	s.dumpOnFailure(t)
	s.healthy(t)
	send(s, "after-restart")
	hangBefore := prov.attemptsIn("hang")
	require.Eventually(t, func() bool { return prov.attemptsIn("hang") > hangBefore }, 30*time.Second, 10*time.Millisecond,
		"the restarted service did not resume sending\n%s", s.tail(40))

	// Phase 3: recovery.
	prov.setMode("ok")
	require.Eventually(t, func() bool {
		for _, id := range queued {
			if prov.count(id) == 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 20*time.Millisecond, "not every queued message reached the provider after recovery: %d of %d\n%s",
		len(prov.snapshot()), len(queued), s.tail(40))

	got := prov.snapshot()
	want := map[string]bool{}
	for _, id := range queued {
		want[id] = true
	}
	again := 0
	for id, n := range got {
		require.True(t, want[id], "the provider received %q, which was never queued", id)
		if n > 1 {
			again++
		}
	}
	// Wait for the dispatcher to record every success, then check the file.
	// The provider counts a call when it arrives: a stop before its answer
	// is recorded leaves the message queued (it is sent again), which is
	// right, but not what this check is about.
	require.Eventually(t, func() bool {
		for _, id := range queued {
			code, body := s.do(t, "GET", "/api/v1/messages?externalId="+id, authAgent, nil, nil)
			if code != 200 || !(strings.Contains(string(body), `"status":"sent"`) || strings.Contains(string(body), `"status":"delivered"`)) {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the dispatcher did not record every success\n%s", s.tail(40))
	s.stop(t)
	check(t, db)
	st := openStopped(t, db)
	for _, id := range queued {
		msgs, err := st.MessagesByExternalID(id)
		require.NoError(t, err)
		require.Len(t, msgs, 1, id)
		require.Contains(t, []string{store.StatusSent, store.StatusDelivered}, msgs[0].Status, "%s after recovery", id)
	}
	t.Logf("provider outage: %d queued, %d delivered after recovery, %d delivered more than once (same messageId); "+
		"provider saw %d 500s and %d hung calls", len(queued), len(got), again, prov.attemptsIn("fail"), prov.attemptsIn("hang"))
}
