package outbound_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// A message erased after the dispatcher read it into a batch, but before
// its turn came, never reaches the provider.
func TestErasedWhileBatchedIsNotSent(t *testing.T) {
	release := make(chan struct{})
	prov := newFake(t, func(n int, body []byte) (int, http.Header, string) {
		if n == 0 {
			<-release // hold the only worker on the first message
		}
		return infobipOK(n, body)
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	cfg := testConfig("infobip", prov.URL)
	cfg.Outbox.Workers = 1
	e := newEnv(t, cfg, prov)
	e.send(text("a1", "41790000001", "first"))
	e.send(text("b1", "41790000002", "to be erased"))
	e.dispatch()
	prov.waitRequests(t, 1) // a1 is at the provider; b1 was read with it

	n, err := e.st.EraseNumber(context.Background(), "41790000002")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	close(release)

	// One worker takes the batch in order: once c1 arrives, b1 had its turn.
	e.send(text("c1", "41790000003", "after"))
	e.waitStatus("c1", "sent")
	require.Equal(t, []string{"a1", "c1"}, destinationIDs(t, prov.requests()))
}
