package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// /healthz probes a real fsynced write: 200 while the database takes
// writes, 503 with the reason once it cannot (here: closed underneath).
func TestOpsHealthz(t *testing.T) {
	e := opsNewEnv(t)
	status, body := e.do(t, http.MethodGet, "/healthz", nil, nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.JSONEq(t, `{"status":"ok"}`, string(body))

	require.NoError(t, e.app.store.Close())
	status, body = e.do(t, http.MethodGet, "/healthz", nil, nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	var got map[string]string
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, "unavailable", got["status"])
	require.Contains(t, got["error"], "database cannot take writes")
}
