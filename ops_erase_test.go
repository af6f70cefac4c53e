package main

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/hmackey"
	"imchannel/store"
)

func TestOpsEraseRoute(t *testing.T) {
	e := opsNewEnv(t)
	ctx := context.Background()
	client := e.srv.Client()
	// One customer in three number formats, and a bystander.
	for i, from := range []string{"385919998888", "+385 91 999 8888", "00385919998888"} {
		require.NoError(t, e.postInbound(ctx, client, "erase-me-"+string(rune('a'+i)), from, "private"))
	}
	require.NoError(t, e.postInbound(ctx, client, "bystander", "31611112222", "hello"))

	status, body := e.do(t, http.MethodDelete, "/api/v1/customers/385919998888", nil, nil)
	require.Equal(t, http.StatusUnauthorized, status, "%s", body)
	status, body = e.do(t, http.MethodDelete, "/api/v1/customers/no-digits", nil, asAgent)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, string(body), `"error"`)

	status, body = e.do(t, http.MethodDelete, "/api/v1/customers/+385%2091%20999%208888", nil, asAgent)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.JSONEq(t, `{"erased": 3}`, string(body))

	for _, ext := range []string{"erase-me-a", "erase-me-b", "erase-me-c"} {
		ms, err := e.app.store.MessagesByExternalID(ext)
		require.NoError(t, err)
		require.Empty(t, ms)
	}
	ms, err := e.app.store.MessagesByExternalID("bystander")
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Empty(t, e.app.store.Check())

	lines, err := e.app.store.Audit(5)
	require.NoError(t, err)
	require.Len(t, lines, 1)
	require.Equal(t, store.NumberHMAC(e.app.key, "385919998888"), lines[0].NumberHMAC)
	require.NotEmpty(t, lines[0].NumberHMAC)
	require.Equal(t, 3, lines[0].Count)
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, "customer erased") {
			require.Contains(t, l, lines[0].NumberHMAC)
			require.NotContains(t, l, "385919998888")
		}
	}

	// Again: nothing left.
	status, body = e.do(t, http.MethodDelete, "/api/v1/customers/385919998888", nil, asAgent)
	require.Equal(t, http.StatusOK, status)
	var got map[string]int
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, map[string]int{"erased": 0}, got)
}

func TestOpsEraseCommand(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "imchannel.db")
	st, err := store.Open(path, store.Options{})
	require.NoError(t, err)
	prefill(t, st, 300) // customers 31600000000..31600000299, one message each
	require.NoError(t, st.Close())

	so, se, err := runCLI(ctx, "erase", "--db", path, "--number", "+31 600 000 042")
	require.NoError(t, err, se)
	require.Contains(t, so, "erased 1 message(s)")
	key, err := hmackey.Load(path + ".key")
	require.NoError(t, err, "erase created the key beside the database")
	require.Contains(t, so, store.NumberHMAC(key, "31600000042"))
	require.NotContains(t, so, "31600000042")
	// The same key answers "was this number erased?".
	so, se, err = runCLI(ctx, "erased", "--db", path, "--number", "0031600000042")
	require.NoError(t, err, se)
	require.Contains(t, so, "erased at ")
	require.Contains(t, so, "1 message(s)")
	_, se, err = runCLI(ctx, "erased", "--db", path, "--number", "31600000043")
	require.Error(t, err)
	require.Contains(t, se+err.Error(), "no erasure")
	so, _, err = runCLI(ctx, "check", "--db", path)
	require.NoError(t, err, so)

	for _, args := range [][]string{
		{"erase", "--db", path},
		{"erase", "--number", "316"},
		{"erase", "--db", path, "--number", "abc"},
	} {
		_, _, err := runCLI(ctx, args...)
		require.Error(t, err)
		require.Equal(t, 2, exitCode(err), "%q", args)
	}
	_, _, err = runCLI(ctx, "erase", "--db", filepath.Join(t.TempDir(), "missing.db"), "--number", "316")
	require.Error(t, err)
	require.NoFileExists(t, filepath.Join(t.TempDir(), "missing.db"))
}
