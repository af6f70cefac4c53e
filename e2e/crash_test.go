package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loadClients is how many clients post at once.
const loadClients = 32

// ackLog records what the service acknowledged (2xx) and what was tried.
type ackLog struct {
	mu       sync.Mutex
	inbound  []string // external ids acknowledged on a webhook
	outbound []string // messageIds acknowledged by the send API
	tried    []string // every id sent, acknowledged or not
	refused  []string // valid messages answered neither 2xx nor 503
}

func (a *ackLog) add(kind, id string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tried = append(a.tried, id)
	if !ok {
		return
	}
	if kind == "out" {
		a.outbound = append(a.outbound, id)
	} else {
		a.inbound = append(a.inbound, id)
	}
}

func (a *ackLog) outboundCopy() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.outbound...)
}

// load runs loadClients clients posting unique messages through the two
// inbound routes and the send API until ctx ends or the service dies.
func load(ctx context.Context, s *svc, iter int, acks *ackLog) *sync.WaitGroup {
	tr := &http.Transport{MaxIdleConnsPerHost: loadClients * 2}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for cl := range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tr.CloseIdleConnections()
			for n := 0; ctx.Err() == nil; n++ {
				id := fmt.Sprintf("crash-i%d-c%d-n%d", iter, cl, n)
				from := fmt.Sprintf("3161%07d", cl*1000+iter)
				var path, kind string
				var body []byte
				var a auth
				switch (cl + n) % 3 {
				case 0:
					path, kind, a, body = "/imchannel/message", "in", authInbound, infobipInbound(id, from, "load "+id)
				case 1:
					path, kind, a, body = "/webhooks/cm", "in", authInbound, cmInbound(id, from, "load "+id)
				default:
					path, kind, a, body = "/omni/1/advanced", "out", authAPI, sendAPI(id, from, "reply "+id)
				}
				req, _ := http.NewRequestWithContext(context.Background(), "POST", s.base+path, bytesReader(body))
				req.Header.Set("Content-Type", "application/json")
				a.apply(req)
				resp, err := c.Do(req)
				if err != nil {
					acks.add(kind, id, false)
					if !s.alive() {
						return
					}
					continue
				}
				_ = resp.Body.Close()
				acks.add(kind, id, resp.StatusCode/100 == 2)
				if resp.StatusCode/100 != 2 && resp.StatusCode != 503 {
					// A refusal of a valid message is a bug, not load.
					acks.mu.Lock()
					acks.refused = append(acks.refused, fmt.Sprintf("%s %s: status %d", path, id, resp.StatusCode))
					acks.mu.Unlock()
				}
			}
		}()
	}
	return &wg
}

// TestCrashUnderLoad: 32 clients post unique messages through
// /imchannel/message, /webhooks/cm and /omni/1/advanced; the service is
// SIGKILLed at a random moment and restarted on the same file, several
// times. After every kill the file passes `imchannel check`; after every
// restart the outbox resumes (the provider receives every acknowledged
// send); at the end every acknowledged id is stored exactly once and no id
// at all is stored twice.
func TestCrashUnderLoad(t *testing.T) {
	iterations := 3
	if long() {
		iterations = 20
	}
	prov := newProvider(t)
	dir := t.TempDir()
	db := dir + "/crash.db"
	cfg := writeConfig(t, dir, options{providerURL: prov.url()})

	s := start(t, cfg, db)
	s.healthy(t)
	for _, p := range []string{"/imchannel/message", "/webhooks/cm", "/omni/1/advanced"} {
		a := authInbound
		if p == "/omni/1/advanced" {
			a = authAPI
		}
		if !s.routeExists(t, "POST", p, a) {
			t.Skipf("%s is not mounted", p)
		}
	}

	acks := &ackLog{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for iter := range iterations {
		ctx, cancel := context.WithCancel(context.Background())
		wg := load(ctx, s, iter, acks)
		// Kill at a random moment while the clients are busy.
		wait := 200*time.Millisecond + time.Duration(rng.Int64N(int64(800*time.Millisecond)))
		killAt := time.NewTimer(wait)
		<-killAt.C
		s.kill()
		cancel()
		wg.Wait()
		check(t, db) // the file a SIGKILL left behind is consistent

		s = start(t, cfg, db)
		s.healthy(t)
		want := acks.outboundCopy()
		require.Eventually(t, func() bool {
			for _, id := range want {
				if prov.count(id) == 0 {
					return false
				}
			}
			return true
		}, 60*time.Second, 20*time.Millisecond, "iteration %d: the outbox did not resume: some acknowledged sends never reached the provider", iter)
		t.Logf("iteration %d: killed after %s; acknowledged so far: %d inbound, %d outbound; tried %d",
			iter, wait.Round(time.Millisecond), len(acks.inbound), len(acks.outbound), len(acks.tried))
	}
	s.stop(t)
	check(t, db)
	require.Empty(t, acks.refused, "valid messages were refused")

	st := openStopped(t, db)
	lost, doubled := 0, 0
	for _, id := range append(append([]string{}, acks.inbound...), acks.outbound...) {
		msgs, err := st.MessagesByExternalID(id)
		require.NoError(t, err)
		switch {
		case len(msgs) == 0:
			lost++
			t.Errorf("acknowledged %s is not stored", id)
		case len(msgs) > 1:
			doubled++
			t.Errorf("acknowledged %s is stored %d times", id, len(msgs))
		}
	}
	for _, id := range acks.tried {
		msgs, err := st.MessagesByExternalID(id)
		require.NoError(t, err)
		require.LessOrEqual(t, len(msgs), 1, "%s stored more than once", id)
	}
	resent := 0
	for _, n := range prov.snapshot() {
		if n > 1 {
			resent++
		}
	}
	t.Logf("crash under load: %d iterations, %d inbound + %d outbound acknowledged, lost %d, duplicated %d; "+
		"%d sends reached the provider more than once (same messageId, after a kill cut off the answer)",
		iterations, len(acks.inbound), len(acks.outbound), lost, doubled, resent)
}
