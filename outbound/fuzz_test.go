package outbound

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"imchannel/config"
	"imchannel/store"
)

// fuzzRouter is the send API on a real store in a temp dir, with no [api]
// credentials (the group is open) so every input reaches validation.
func fuzzRouter(f testing.TB) http.Handler {
	f.Helper()
	st, err := store.Open(filepath.Join(f.TempDir(), "fuzz.db"), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	cfg := config.Default()
	cfg.Outbox.CheckWindow = false
	// The seeds' servicePhoneNumbers are configured business numbers.
	cfg.Provider.Numbers = map[string]string{"KEY-SEED001": "3902124122690", "KEY-NL": "31100000000"}
	r := mux.NewRouter()
	NewAPI(Deps{Store: st, Config: cfg}).Register(r)
	// httptest.NewRequest says Host: example.com, which open mode refuses.
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req.Host = "127.0.0.1"
		r.ServeHTTP(w, req)
	})
}

// answerOK fails unless the answer is a 2xx or a 4xx carrying a JSON
// error: no input may produce a 5xx or a panic.
func answerOK(t *testing.T, rec *httptest.ResponseRecorder, body []byte) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("status %d with a non-JSON answer %q", rec.Code, rec.Body.Bytes())
	}
	if rec.Code >= 400 && !bytes.Contains(rec.Body.Bytes(), []byte(`"error"`)) {
		t.Fatalf("status %d without an error: %s", rec.Code, rec.Body.Bytes())
	}
}

// FuzzSendAPI posts arbitrary bodies to /omni/1/advanced: validation
// answers every one with a 2xx or a 4xx naming the problem, never a 5xx or
// a panic. Seeded with the requests of testdata/outbound/*.json.
func FuzzSendAPI(f *testing.F) {
	files, _ := filepath.Glob("../testdata/outbound/*.json")
	if len(files) == 0 {
		f.Fatal("no seeds in ../testdata/outbound")
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var c struct{ Request json.RawMessage }
		if err := json.Unmarshal(b, &c); err != nil || len(c.Request) == 0 {
			f.Fatalf("%s: no request: %v", p, err)
		}
		f.Add(string(c.Request))
	}
	f.Add(`{"destinations":[{"to":{"phoneNumber":"41793026727"}}],"whatsApp":{"latitude":91,"longitude":4,"locationName":"x"},"sendAt":"2019-07-19T11:21:27.861+0000"}`)
	h := fuzzRouter(f)
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/omni/1/advanced", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		answerOK(t, rec, []byte(body))
	})
}

// FuzzTemplate posts arbitrary bodies and domains to the template
// endpoint (docs/protocols.md#template-endpoint), seeded from testdata/template/*.json.
func FuzzTemplate(f *testing.F) {
	files, _ := filepath.Glob("../testdata/template/*.json")
	if len(files) == 0 {
		f.Fatal("no seeds in ../testdata/template")
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("default", string(b))
	}
	f.Add("a.b_c-d", `{"customerPhoneNumber":"1","servicePhoneNumber":"2","templateName":"t","language":"en","header":{"type":"video","data":"AAAA","documentType":"mp4","fileName":"../../x.mp4"},"headerData":[null],"bodyData":[""],"dynamicUrl":[1]}`)
	h := fuzzRouter(f)
	f.Fuzz(func(t *testing.T, domain, body string) {
		req := httptest.NewRequest("POST", "/", strings.NewReader(body))
		// Set the path directly so any bytes reach the {domain} check.
		req.URL.Path = "/livechat/" + domain + "/sendExternalTemplateMessageToCtlivesocial"
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed ||
			(rec.Code == http.StatusMovedPermanently && rec.Header().Get("Location") != "") {
			// The domain did not route: a "/" in it (404/405), or "." or
			// ".." that mux cleans with a redirect (testdata/fuzz crasher).
			return
		}
		answerOK(t, rec, []byte(body))
	})
}

// TestFuzzSeedsAccepted keeps the seeds useful: each valid seed is
// accepted, so the fuzzer starts from inputs that pass validation.
func TestFuzzSeedsAccepted(t *testing.T) {
	h := fuzzRouter(t)
	files, _ := filepath.Glob("../testdata/template/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("POST", "/livechat/default/sendExternalTemplateMessageToCtlivesocial", bytes.NewReader(b))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body.Bytes())
		}
	}
}
