package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// The quarantine is listed, newest first and paged, at /api/v1/quarantine
// (agent credentials) and on the status page, customer text escaped.
func TestQuarantineAPIAndPage(t *testing.T) {
	e := newEnv(t)
	resp, _ := e.do("/api/v1/quarantine", "", "")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	var empty struct {
		Items []map[string]any `json:"items"`
		Total int              `json:"total"`
	}
	e.getJSON("/api/v1/quarantine", http.StatusOK, &empty)
	require.Empty(t, empty.Items)
	require.NotNil(t, empty.Items, "an empty list, not null")

	var items []store.Quarantined
	for _, raw := range []string{`{"n":1}`, `{"n":2,"text":"<script>alert(1)</script>"}`, `{"n":3}`} {
		items = append(items, store.Quarantined{Provider: store.ProviderInfobip, Route: "/imchannel/message",
			Reason: "results[0].messageId is required", Raw: json.RawMessage(raw)})
	}
	_, err := e.st.IngestPost(context.Background(), store.Post{Quarantine: items})
	require.NoError(t, err)

	var page struct {
		Items []store.Quarantined `json:"items"`
		Next  string              `json:"next"`
		Total int                 `json:"total"`
	}
	e.getJSON("/api/v1/quarantine?limit=2", http.StatusOK, &page)
	require.Equal(t, 3, page.Total)
	require.Len(t, page.Items, 2)
	require.JSONEq(t, `{"n":3}`, string(page.Items[0].Raw), "newest first")
	require.Equal(t, "results[0].messageId is required", page.Items[0].Reason)
	require.Equal(t, "/imchannel/message", page.Items[0].Route)
	require.Equal(t, 1, page.Items[0].Count)
	require.NotEmpty(t, page.Next)
	next := page.Next
	page.Items, page.Next = nil, ""
	e.getJSON("/api/v1/quarantine?limit=2&cursor="+next, http.StatusOK, &page)
	require.Len(t, page.Items, 1)
	require.JSONEq(t, `{"n":1}`, string(page.Items[0].Raw))
	require.Empty(t, page.Next)
	require.Contains(t, e.apiError("/api/v1/quarantine?cursor=nope", http.StatusBadRequest), "cursor")

	resp, body := e.get("/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `id="ov-quarantined">3<`)
	require.Contains(t, body, "results[0].messageId is required")
	require.NotContains(t, body, "<script>alert(1)</script>")
	require.True(t, strings.Contains(body, "&lt;script&gt;") || strings.Contains(body, `\u003cscript`), "raw shown escaped")
}
