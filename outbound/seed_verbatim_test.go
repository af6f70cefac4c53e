package outbound_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// CTLive's outbound text example (docs/protocols.md#omni-send), as CTLive's page prints it: with a
// trailing comma after the whatsApp object. It is accepted and queued.
func TestSeed000TextExampleVerbatim(t *testing.T) {
	body, err := os.ReadFile("../testdata/send/seed000_text_verbatim.json")
	require.NoError(t, err)
	require.Contains(t, string(body), "},\n}", "the fixture keeps the seed's trailing comma")
	cfg := testConfig("infobip", "http://127.0.0.1:1/unused")
	e := newEnv(t, cfg, nil)
	status, _, out := e.post("/omni/1/advanced", body, bearer(staticToken, appKey))
	require.Equal(t, 200, status, string(out))
	require.Contains(t, string(out), `"PENDING_ENROUTE"`)
	require.Equal(t, 1, e.outboxDepth())
}
