package httpx

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenGuard: an open route group answers only requests addressed to a
// loopback host, and refuses writes from another origin (DNS rebinding and
// cross-site posts from a browser on the same machine; issue 13 item 5).
func TestOpenGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	for _, c := range []struct {
		name, method, host string
		hdr                map[string]string
		want               int
	}{
		{"loopback v4", "GET", "127.0.0.1:8080", nil, 204},
		{"loopback v4 other", "GET", "127.1.2.3", nil, 204},
		{"loopback v6", "GET", "[::1]:8080", nil, 204},
		{"localhost", "GET", "localhost:8080", nil, 204},
		{"localhost upper, trailing dot", "GET", "LOCALHOST.:8080", nil, 204},
		{"sub.localhost", "GET", "app.localhost", nil, 204},
		{"rebinding name", "GET", "attacker.example", nil, 421},
		{"rebinding name with port", "GET", "attacker.example:8080", nil, 421},
		{"name ending in localhost", "GET", "evillocalhost", nil, 421},
		{"localhost as a subdomain", "GET", "localhost.attacker.example", nil, 421},
		{"private address", "GET", "192.168.1.10:8080", nil, 421},
		{"empty host", "GET", "", nil, 421},
		{"write, no origin (curl)", "POST", "127.0.0.1:8080", nil, 204},
		{"write, own origin", "DELETE", "127.0.0.1:8080", map[string]string{"Origin": "http://127.0.0.1:8080"}, 204},
		{"write, foreign origin", "POST", "127.0.0.1:8080", map[string]string{"Origin": "http://attacker.example"}, 403},
		{"write, same host other port", "POST", "127.0.0.1:8080", map[string]string{"Origin": "http://127.0.0.1:9999"}, 403},
		{"write, null origin", "DELETE", "127.0.0.1:8080", map[string]string{"Origin": "null"}, 403},
		{"write, cross-site fetch", "POST", "127.0.0.1:8080", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"read, foreign origin", "GET", "127.0.0.1:8080", map[string]string{"Origin": "http://attacker.example"}, 204},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, "/", nil)
			req.Host = c.host
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			OpenGuard(ok).ServeHTTP(rec, req)
			require.Equal(t, c.want, rec.Code, rec.Body.String())
			if c.want >= 400 {
				require.Contains(t, rec.Body.String(), `"error"`)
			}
			// RequireBasic without credentials is the same guard.
			rec = httptest.NewRecorder()
			RequireBasic(nil, ok).ServeHTTP(rec, req)
			require.Equal(t, c.want, rec.Code)
		})
	}
}

// TestDeclaredLengthRefusedUnread: a Content-Length over the limit gets
// 413 before the body is read and before the handler runs (issue 13
// item 1); ReadBody refuses it the same way.
func TestDeclaredLengthRefusedUnread(t *testing.T) {
	ran := false
	h := LimitBody(100, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran = true }))
	body := &countingReader{r: strings.NewReader(strings.Repeat("x", 1000))}
	req := httptest.NewRequest("POST", "/", body)
	req.ContentLength = 1000
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, 413, rec.Code)
	require.False(t, ran, "the handler never runs")
	require.Zero(t, body.n, "no byte of the body is read")
	require.Equal(t, "close", rec.Header().Get("Connection"))
	require.Contains(t, rec.Body.String(), "larger than the limit of 100 bytes")

	body = &countingReader{r: strings.NewReader(strings.Repeat("x", 1000))}
	req = httptest.NewRequest("POST", "/", body)
	req.ContentLength = 1000
	rec = httptest.NewRecorder()
	_, err := ReadBody(rec, req, 100)
	require.Equal(t, 413, Status(err))
	require.Zero(t, body.n)

	// At the limit it runs.
	req = httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 100)))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.True(t, ran)

	// Routes without a body take at most SmallBody.
	req = httptest.NewRequest("GET", "/", nil)
	req.ContentLength = SmallBody + 1
	rec = httptest.NewRecorder()
	require.True(t, NoBody(rec, req))
	require.Equal(t, 413, rec.Code)
	req.ContentLength = SmallBody
	require.False(t, NoBody(httptest.NewRecorder(), req))
	req = httptest.NewRequest("POST", "/", nil)
	req.ContentLength = 10 << 20
	require.False(t, NoBody(httptest.NewRecorder(), req), "POST routes apply their own limit")
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestCheckKeys: keys that differ only in case or spaces, at any depth,
// are refused with both names and the path (issue 13 item 7).
func TestCheckKeys(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"flat twins", `{"whatsApp":{"imageUrl":"https://x/p.exe","imageurl":"https://x/ok.png"}}`, `whatsApp.imageUrl is given twice (as "imageUrl" and "imageurl")`},
		{"nested twins", `{"whatsApp":{"templateName":"t","mediaTemplateData":{"header":{"imageUrl":"a","IMAGEURL":"b"}}}}`, "whatsApp.mediaTemplateData.header.imageUrl is given twice"},
		{"in an array", `{"destinations":[{"to":{}},{"to":{"phoneNumber":"1","PhoneNumber":"2"}}]}`, "destinations[1].to.phoneNumber is given twice"},
		{"exact repeat", `{"a":1,"a":2}`, "a is given twice; send each key once"},
		{"space twin", `{"whatsApp":{"templateName":"a","templateName ":"b"}}`, "whatsApp.templateName is given twice"},
		{"fine", `{"a":{"b":[{"c":1,"d":2}],"B":3}}`, `a.b is given twice`},
		{"distinct", `{"a":{"b":[{"c":1,"d":2}],"e":3},"f":[1,"x",null,true]}`, ""},
		{"trailing comma tolerated", `{"a":{"b":1,},}`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckKeys([]byte(c.body))
			if c.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Equal(t, 400, Status(err))
			require.Contains(t, err.Error(), c.want)
		})
	}
}
