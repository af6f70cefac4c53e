package e2e

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServeStartsAndStops is the harness's own check: the built binary
// starts on a fresh port, answers /healthz, stops cleanly on SIGTERM and
// leaves a file that passes `imchannel check`.
func TestServeStartsAndStops(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, options{})
	db := dir + "/smoke.db"
	s := start(t, cfg, db)
	code, body := s.do(t, "GET", "/healthz", authNone, nil, nil)
	require.Equal(t, 200, code, "%s", body)
	s.stop(t)
	check(t, db)
}
