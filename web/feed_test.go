package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

type feedPage struct {
	Events []struct {
		Cursor         string          `json:"cursor"`
		Type           string          `json:"type"`
		At             time.Time       `json:"at"`
		ConversationID string          `json:"conversationId"`
		MessageID      string          `json:"messageId"`
		Status         *TimelineJSON   `json:"status"`
		Message        *MessageJSON    `json:"message"`
		NumberHMAC     string          `json:"numberHmac"`
		Raw            map[string]bool `json:"-"`
	} `json:"events"`
	Next string `json:"next"`
}

// The feed pages through every change in commit order, each event with its
// cursor, type, time, conversation and message JSON; next resumes.
func TestFeedPagesInCommitOrder(t *testing.T) {
	e := newEnv(t)
	in1 := e.save(in("a", "31612345678", "hello"))[0]
	o := e.queue(out("ct-1", "31612345678", "hi"))[0]
	e.report(store.Report{Provider: store.ProviderInfobip, ExternalID: "ct-1", Status: store.StatusDelivered, At: time.Now()})

	var p feedPage
	e.getJSON("/api/v1/events?limit=2", http.StatusOK, &p)
	require.Len(t, p.Events, 2)
	require.Equal(t, "1", p.Events[0].Cursor)
	require.Equal(t, store.EventMessageReceived, p.Events[0].Type)
	require.Equal(t, in1.ConversationID, p.Events[0].ConversationID)
	require.Equal(t, "hello", p.Events[0].Message.Text)
	require.False(t, p.Events[0].At.IsZero())
	require.Equal(t, store.EventMessageQueued, p.Events[1].Type)
	require.Equal(t, "2", p.Next)

	var p2 feedPage
	e.getJSON("/api/v1/events?after="+p.Next, http.StatusOK, &p2)
	require.Len(t, p2.Events, 1)
	require.Equal(t, store.EventMessageStatus, p2.Events[0].Type)
	require.Equal(t, o.MessageID, p2.Events[0].MessageID)
	require.Equal(t, store.StatusDelivered, p2.Events[0].Status.Status)
	require.Equal(t, store.StatusDelivered, p2.Events[0].Message.Status)

	var empty feedPage
	e.getJSON("/api/v1/events?after=3", http.StatusOK, &empty)
	require.Empty(t, empty.Events)
	require.Equal(t, "3", empty.Next, "next stays put when nothing is new")
}

// wait long-polls: an append while the request waits answers it.
func TestFeedLongPoll(t *testing.T) {
	e := newEnv(t)
	type answer struct {
		status int
		body   string
	}
	done := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/v1/events?after=0&wait=60", nil)
		req.SetBasicAuth(agentUser, agentPass)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			done <- answer{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		done <- answer{resp.StatusCode, b.String()}
	}()
	require.Eventually(t, func() bool { return e.w.polls.Load() == 1 }, 30*time.Second, time.Millisecond, "the request waits")
	e.save(in("late", "31612345678", "late"))
	select {
	case a := <-done:
		require.Equal(t, http.StatusOK, a.status, a.body)
		require.Contains(t, a.body, `"late"`)
	case <-time.After(30 * time.Second):
		t.Fatal("the long poll was not answered by the append")
	}
}

// A cursor from before the retention window is 410 with the oldest valid
// cursor; bad parameters are 400 naming them; credentials are required.
func TestFeedErrors(t *testing.T) {
	e := newEnv(t)
	e.save(in("a", "31612345678", "x"), in("b", "31612345678", "y"))
	_, err := e.st.PurgeEvents(context.Background(), time.Now().Add(time.Hour))
	require.NoError(t, err)
	e.save(in("c", "31612345678", "z"))

	resp, body := e.get("/api/v1/events?after=1")
	require.Equal(t, http.StatusGone, resp.StatusCode, body)
	require.Contains(t, body, `"oldest":"2"`)
	var p feedPage
	e.getJSON("/api/v1/events?after=2", http.StatusOK, &p)
	require.Len(t, p.Events, 1)
	require.Equal(t, "3", p.Events[0].Cursor)

	resp, body = e.get("/api/v1/events?after=99")
	require.Equal(t, http.StatusGone, resp.StatusCode, body)
	require.Contains(t, body, "ahead of the events log")

	for _, c := range []struct{ query, says string }{
		{"after=abc", "cursor"},
		{"after=-1", "cursor"},
		{"limit=0", "limit"},
		{"limit=5000", "limit"},
		{"wait=61", "wait"},
		{"wait=forever", "wait"},
	} {
		require.Contains(t, e.apiError("/api/v1/events?"+c.query, http.StatusBadRequest), c.says, c.query)
	}
	resp, _ = e.do("/api/v1/events", "", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// An erased customer's past events leave the feed; a customer.erased
// event says so.
func TestFeedForgetsErasedCustomers(t *testing.T) {
	e := newEnv(t)
	gone := e.save(in("a", "31612345678", "secret"))[0]
	e.save(in("b", "31600000001", "keep"))
	_, err := e.st.EraseNumber(context.Background(), "31612345678")
	require.NoError(t, err)
	var p feedPage
	e.getJSON("/api/v1/events", http.StatusOK, &p)
	require.Len(t, p.Events, 2)
	require.Equal(t, "keep", p.Events[0].Message.Text)
	require.Equal(t, store.EventCustomerErased, p.Events[1].Type)
	require.Equal(t, gone.ConversationID, p.Events[1].ConversationID)
	require.Nil(t, p.Events[1].Message)
	_, body := e.get("/api/v1/events")
	require.NotContains(t, body, "secret")
	require.NotContains(t, body, "31612345678")
}

// The status page shows each relay target's lag, failures and quarantine.
func TestStatusPageShowsRelays(t *testing.T) {
	e := newEnv(t, func(d *Deps) {
		d.Relays = func() []store.RelayStatus {
			return []store.RelayStatus{{Name: "ctlive", LagEvents: 7, Oldest: time.Now().Add(-time.Minute),
				State:      store.RelayState{Failures: 3, Consecutive: 2, LastError: "HTTP 503", Quarantined: 1},
				Quarantine: []store.RelayQuarantined{{Seq: 4, Type: store.EventMessageReceived, ExternalID: "<b>wamid</b>", HTTPStatus: 422, Reason: "HTTP 422: bad"}}}}
		}
	})
	resp, body := e.get("/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, want := range []string{"Relay to CTLive", "ctlive", "7 events", "2 in a row", "HTTP 503", "quarantined #4", "&lt;b&gt;wamid&lt;/b&gt;", "HTTP 422: bad"} {
		require.Contains(t, body, want)
	}
}
