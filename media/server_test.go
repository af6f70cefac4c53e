package media

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/stretchr/testify/require"

	"imchannel/httpx"
	"imchannel/store"
)

// cached stores bytes as a fetched inbound media and returns its record.
func cached(t *testing.T, st *store.Store, ext, fileName, contentType string, data []byte) *store.Media {
	t.Helper()
	m := &store.Message{
		Provider: store.ProviderInfobip, ExternalID: ext, From: "31612345678", To: "1234",
		Type: store.TypeDocument, Media: &store.Media{SourceURL: "https://example.com/" + ext, FileName: fileName},
	}
	rs, err := st.SaveInbound(context.Background(), []*store.Message{m})
	require.NoError(t, err)
	msg, err := st.Message(rs[0].MessageID)
	require.NoError(t, err)
	md, err := st.MarkMediaFetched(context.Background(), msg.Media.ID, store.BytesSource(data), contentType, "", nil)
	require.NoError(t, err)
	return md
}

func jsonError(t *testing.T, body []byte) string {
	t.Helper()
	var e struct{ Error string }
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	require.NotEmpty(t, e.Error)
	return e.Error
}

func TestServeHeadersAndBody(t *testing.T) {
	st := openStore(t, tempDB(t))
	api := newAPI(t, st)
	data := pattern(700 << 10)
	md := cached(t, st, "doc1", `Q3 "report"; évaluation.pdf`, "application/pdf", data)
	url := api.URL + "/media/" + md.ID

	resp, body := do(t, http.MethodGet, url, true, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, data, body)
	require.Equal(t, "application/pdf", resp.Header.Get("Content-Type"))
	require.Equal(t, fmt.Sprint(len(data)), resp.Header.Get("Content-Length"))
	require.Equal(t, `"`+sum(data)+`"`, resp.Header.Get("ETag"))
	require.Equal(t, "private, immutable", resp.Header.Get("Cache-Control"))
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "default-src 'none'; sandbox", resp.Header.Get("Content-Security-Policy"))
	require.Equal(t, "bytes", resp.Header.Get("Accept-Ranges"))
	require.Equal(t, `attachment; filename*=utf-8''Q3%20%22report%22%3B%20%C3%A9valuation.pdf`, resp.Header.Get("Content-Disposition"))

	resp, body = do(t, http.MethodHead, url, true, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, body)
	require.Equal(t, fmt.Sprint(len(data)), resp.Header.Get("Content-Length"))

	// Images are inline and carry no disposition without a name.
	img := cached(t, st, "img1", "", "image/jpeg", []byte("\xff\xd8\xff jpeg"))
	resp, _ = do(t, http.MethodGet, api.URL+"/media/"+img.ID, true, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Content-Disposition"))
}

func TestServeRangeAndConditional(t *testing.T) {
	st := openStore(t, tempDB(t))
	api := newAPI(t, st)
	data := pattern(3*store.ChunkSize + 17)
	md := cached(t, st, "vid", "clip.mp4", "video/mp4", data)
	url := api.URL + "/media/" + md.ID
	n := len(data)
	cases := []struct {
		name, rng   string
		status      int
		from, to    int // inclusive
		contentRang string
	}{
		{"head of file", "bytes=0-99", http.StatusPartialContent, 0, 99, fmt.Sprintf("bytes 0-99/%d", n)},
		{"across a chunk boundary", fmt.Sprintf("bytes=%d-%d", store.ChunkSize-10, store.ChunkSize+9), http.StatusPartialContent,
			store.ChunkSize - 10, store.ChunkSize + 9, fmt.Sprintf("bytes %d-%d/%d", store.ChunkSize-10, store.ChunkSize+9, n)},
		{"suffix", "bytes=-17", http.StatusPartialContent, n - 17, n - 1, fmt.Sprintf("bytes %d-%d/%d", n-17, n-1, n)},
		{"open end", fmt.Sprintf("bytes=%d-", 2*store.ChunkSize), http.StatusPartialContent, 2 * store.ChunkSize, n - 1,
			fmt.Sprintf("bytes %d-%d/%d", 2*store.ChunkSize, n-1, n)},
		{"beyond the end", fmt.Sprintf("bytes=%d-", n+5), http.StatusRequestedRangeNotSatisfiable, 0, -1, fmt.Sprintf("bytes */%d", n)},
		{"zero-length suffix", "bytes=-0", http.StatusRequestedRangeNotSatisfiable, 0, -1, fmt.Sprintf("bytes */%d", n)},
		{"zero-length suffixes", "bytes=-00, -0", http.StatusRequestedRangeNotSatisfiable, 0, -1, fmt.Sprintf("bytes */%d", n)},
		{"zero-length suffix beside a good range", "bytes=-0,0-99", http.StatusPartialContent, 0, 99, fmt.Sprintf("bytes 0-99/%d", n)},
		{"end before start", "bytes=5-2", http.StatusRequestedRangeNotSatisfiable, 0, -1, ""},
		{"garbage", "bytes=abc", http.StatusRequestedRangeNotSatisfiable, 0, -1, ""},
		{"empty set", "bytes=", http.StatusOK, 0, n - 1, ""},
		{"unit in capitals", "Bytes=0-99", http.StatusPartialContent, 0, 99, fmt.Sprintf("bytes 0-99/%d", n)},
		// RFC 9110 §14.2: a unit the server does not know is ignored.
		{"other unit", "items=0-5", http.StatusOK, 0, n - 1, ""},
		{"no unit", "0-5", http.StatusOK, 0, n - 1, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, url, true, map[string]string{"Range": c.rng})
			require.Equal(t, c.status, resp.StatusCode)
			require.Equal(t, c.contentRang, resp.Header.Get("Content-Range"))
			if c.status == http.StatusPartialContent || c.status == http.StatusOK {
				require.Equal(t, data[c.from:c.to+1], body)
				require.Equal(t, fmt.Sprint(c.to-c.from+1), resp.Header.Get("Content-Length"))
			}
		})
	}

	// Several ranges: one multipart/byteranges answer with both parts.
	resp, body := do(t, http.MethodGet, url, true, map[string]string{"Range": fmt.Sprintf("bytes=0-9,%d-%d", store.ChunkSize, store.ChunkSize+9)})
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/byteranges", mt)
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for _, want := range [][2]int{{0, 9}, {store.ChunkSize, store.ChunkSize + 9}} {
		part, err := mr.NextPart()
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("bytes %d-%d/%d", want[0], want[1], n), part.Header.Get("Content-Range"))
		got, err := io.ReadAll(part)
		require.NoError(t, err)
		require.Equal(t, data[want[0]:want[1]+1], got)
	}
	_, err = mr.NextPart()
	require.Equal(t, io.EOF, err)

	etag := `"` + md.SHA256 + `"`
	resp, body = do(t, http.MethodGet, url, true, map[string]string{"If-None-Match": etag})
	require.Equal(t, http.StatusNotModified, resp.StatusCode)
	require.Empty(t, body)
	resp, body = do(t, http.MethodGet, url, true, map[string]string{"If-None-Match": `"something-else"`})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, body, n)
	// If-Range with a stale tag sends the whole file.
	resp, body = do(t, http.MethodGet, url, true, map[string]string{"Range": "bytes=0-9", "If-Range": `"old"`})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, body, n)
}

func TestServeStatesAndAuth(t *testing.T) {
	st := openStore(t, tempDB(t))
	api := newAPI(t, st)
	_, pending, _ := saveMedia(t, st, store.ProviderInfobip, "pend", "https://example.com/p.jpg")
	_, failed, _ := saveMedia(t, st, store.ProviderInfobip, "fail", "https://example.com/f.jpg")
	require.NoError(t, st.MarkMediaFailed(context.Background(), failed, store.MediaFailed, "HTTP 404 Not Found"))
	ok := cached(t, st, "ok", "", "image/png", []byte("\x89PNG\r\n\x1a\n"))

	for _, c := range []struct {
		name, id, want string
	}{
		{"pending", pending, "is pending"},
		{"failed", failed, "is failed"},
		{"unknown", "01HXXXXXXXXXXXXXXXXXXXXXXX", "not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, api.URL+"/media/"+c.id, true, nil)
			require.Equal(t, http.StatusNotFound, resp.StatusCode)
			require.Contains(t, jsonError(t, body), c.want)
		})
	}
	resp, body := do(t, http.MethodGet, api.URL+"/media/"+ok.ID, false, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	jsonError(t, body)
	resp, _ = do(t, http.MethodDelete, api.URL+"/media/"+ok.ID, false, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = do(t, http.MethodPost, api.URL+"/media/"+ok.ID, true, nil)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestServeDelete(t *testing.T) {
	st := openStore(t, tempDB(t))
	api := newAPI(t, st)
	data := pattern(2*store.ChunkSize + 1)
	md := cached(t, st, "gone", "a.bin", "application/octet-stream", data)
	url := api.URL + "/media/" + md.ID
	_, chunks := st.BlobCounts()
	require.Equal(t, 3, chunks)

	resp, body := do(t, http.MethodDelete, url, true, nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Empty(t, body)
	resp, body = do(t, http.MethodDelete, url, true, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, jsonError(t, body), "already deleted")
	resp, body = do(t, http.MethodGet, url, true, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, jsonError(t, body), "is deleted")

	blobs, chunks := st.BlobCounts()
	require.Zero(t, blobs)
	require.Zero(t, chunks)
	require.Empty(t, st.Check())
	rec, err := st.Media(md.ID)
	require.NoError(t, err)
	require.Equal(t, store.MediaDeleted, rec.State)
}

// Hosted media is public under its token, and only there.
func TestServePublicHostedMedia(t *testing.T) {
	st := openStore(t, tempDB(t))
	api := newAPI(t, st)
	data := append([]byte("%PDF-1.7\n"), pattern(5000)...)
	h, err := st.NewHostedMedia(data, "application/pdf", "offer.pdf")
	require.NoError(t, err)
	md := h.Media
	_, err = st.QueueWithHosted(context.Background(), &store.Message{Provider: store.ProviderInfobip, ExternalID: "tmpl-1", From: "1234",
		To: "31612345678", Type: store.TypeTemplate, Outbound: &store.OutboundSpec{TemplateName: "t", HeaderMedia: md.ID}}, h, store.QueueOptions{})
	require.NoError(t, err)
	publicURL := api.URL + "/media/public/" + md.Token

	resp, body := do(t, http.MethodGet, publicURL, false, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, data, body)
	require.Equal(t, "application/pdf", resp.Header.Get("Content-Type"))
	require.Equal(t, `attachment; filename=offer.pdf`, resp.Header.Get("Content-Disposition"))

	resp, body = do(t, http.MethodGet, api.URL+"/media/public/"+md.Token[:20], false, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	jsonError(t, body)
	// The id is no capability: without credentials the agent route refuses.
	resp, _ = do(t, http.MethodGet, api.URL+"/media/"+md.ID, false, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp, _ = do(t, http.MethodDelete, api.URL+"/media/"+md.ID, true, nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp, body = do(t, http.MethodGet, publicURL, false, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, jsonError(t, body), "deleted")
	require.Empty(t, st.Check())
}

func TestDisposition(t *testing.T) {
	for _, c := range []struct{ name, ct, want string }{
		{"", "application/pdf", "attachment"},
		{"a.pdf", "application/pdf", "attachment; filename=a.pdf"},
		{"x.svg", "image/svg+xml", "attachment; filename=x.svg"},
		{"p.jpg", "image/jpeg", "inline; filename=p.jpg"},
		{"evil\r\nSet-Cookie: a=b", "text/plain", `attachment; filename="evilSet-Cookie: a=b"`},
		{"../../etc/passwd", "text/plain", "attachment; filename=....etcpasswd"},
	} {
		require.Equal(t, c.want, disposition(&store.Media{FileName: c.name, ContentType: c.ct}), c.name)
	}
}

// A download slower than the server's write timeout still completes while
// bytes keep flowing: the deadline bounds a stalled client, not a slow link.
func TestServeSlowDownloadOutlivesWriteTimeout(t *testing.T) {
	st := openStore(t, tempDB(t))
	data := pattern(12 << 20)
	md := cached(t, st, "big", "big.mp4", "video/mp4", data)

	r := mux.NewRouter()
	s := NewServer(st, nil, []httpx.Credential{agent})
	// Generous next to the time a blocked write waits for the socket
	// buffers to drain; far longer than the server's write timeout.
	s.writeIdle = 2 * time.Second
	s.Register(r)
	srv := httptest.NewUnstartedServer(r)
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/media/"+md.ID, nil)
	require.NoError(t, err)
	req.SetBasicAuth(agent.User, agent.Password)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// An agent on a slow link: at most about 6 MB/s, so the whole file
	// takes several write timeouts.
	var got []byte
	buf := make([]byte, 64<<10)
	start := time.Now()
	for {
		n, err := io.ReadFull(resp.Body, buf)
		got = append(got, buf[:n]...)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		require.NoError(t, err, "after %d of %d bytes", len(got), len(data))
		time.Sleep(10 * time.Millisecond) // the slow link, not a wait for a condition
	}
	require.Equal(t, len(data), len(got), "download cut off")
	require.Greater(t, time.Since(start), 4*srv.Config.WriteTimeout)
	require.Equal(t, sum(data), sum(got))
}
