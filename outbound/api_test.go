package outbound_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/config"
	"imchannel/store"
)

func errorOf(t *testing.T, b []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(b, &e), "%s", b)
	require.NotEmpty(t, e.Error, "%s", b)
	return e.Error
}

// Every validation rule of the OMNI send (docs/protocols.md#omni-send) answers 400 naming the field, and
// queues nothing.
func TestValidation(t *testing.T) {
	e := newEnv(t, testConfig("infobip", "http://127.0.0.1:1/unused"), nil)
	dest := `"destinations":[{"messageId":"v-1","to":{"phoneNumber":"41793026727"}}]`
	long := strings.Repeat("a", 2049)
	cases := []struct{ name, body, want string }{
		{"empty body", ``, "empty"},
		{"malformed", `{"destinations":`, "malformed JSON"},
		{"wrong type", `{"destinations":"x"}`, "destinations"},
		{"no destinations", `{"whatsApp":{"text":"x"}}`, "destinations is required"},
		{"empty destinations", `{"destinations":[],"whatsApp":{"text":"x"}}`, "destinations is required"},
		{"missing to", `{"destinations":[{"messageId":"v-1"}],"whatsApp":{"text":"x"}}`, "destinations[0].to.phoneNumber is required"},
		{"missing phone", `{"destinations":[{"messageId":"v-1","to":{}}],"whatsApp":{"text":"x"}}`, "destinations[0].to.phoneNumber is required"},
		{"national number", `{"destinations":[{"messageId":"v-1","to":{"phoneNumber":"0612345678"}}],"whatsApp":{"text":"x"}}`, "destinations[0].to.phoneNumber"},
		{"letters in number", `{"destinations":[{"messageId":"v-1","to":{"phoneNumber":"155****8467"}}],"whatsApp":{"text":"x"}}`, "international format"},
		{"short number", `{"destinations":[{"messageId":"v-1","to":{"phoneNumber":"12345"}}],"whatsApp":{"text":"x"}}`, "7 to 15 digits"},
		{"second destination bad", `{"destinations":[{"messageId":"v-1","to":{"phoneNumber":"41793026727"}},{"messageId":"v-2","to":{"phoneNumber":"x"}}],"whatsApp":{"text":"x"}}`, "destinations[1].to.phoneNumber"},
		{"repeated messageId", `{"destinations":[{"messageId":"v-1","to":{"phoneNumber":"41793026727"}},{"messageId":"v-1","to":{"phoneNumber":"41793026728"}}],"whatsApp":{"text":"x"}}`, "destinations[1].messageId"},
		{"no whatsApp", `{` + dest + `}`, "whatsApp is required"},
		{"whatsApp not object", `{` + dest + `,"whatsApp":"hi"}`, "whatsApp must be an object"},
		{"no content", `{` + dest + `,"whatsApp":{}}`, "whatsApp has no content"},
		{"text wrong type", `{` + dest + `,"whatsApp":{"text":5}}`, "whatsApp.text"},
		{"ftp url", `{` + dest + `,"whatsApp":{"imageUrl":"ftp://x.example/a.jpg"}}`, "whatsApp.imageUrl must be an http or https URL"},
		{"relative url", `{` + dest + `,"whatsApp":{"fileUrl":"/a.pdf"}}`, "whatsApp.fileUrl must be an http or https URL"},
		{"long url", `{` + dest + `,"whatsApp":{"fileUrl":"https://x.example/` + long + `"}}`, "whatsApp.fileUrl is longer than 2048"},
		{"gif image", `{` + dest + `,"whatsApp":{"imageUrl":"https://x.example/a.gif"}}`, "whatsApp.imageUrl has type GIF; must be JPG, JPEG, PNG"},
		{"mp3 audio", `{` + dest + `,"whatsApp":{"audioUrl":"https://x.example/a.mp3"}}`, "whatsApp.audioUrl has type MP3; must be AAC"},
		{"avi video", `{` + dest + `,"whatsApp":{"videoUrl":"https://x.example/a.avi"}}`, "whatsApp.videoUrl has type AVI; must be MP4"},
		{"two media", `{` + dest + `,"whatsApp":{"imageUrl":"https://x.example/a.png","videoUrl":"https://x.example/a.mp4"}}`, "only one of imageUrl"},
		{"long locationName", `{` + dest + `,"whatsApp":{"latitude":1,"longitude":2,"locationName":"` + strings.Repeat("é", 1001) + `"}}`, "whatsApp.locationName is longer than 1000"},
		{"long address", `{` + dest + `,"whatsApp":{"latitude":1,"longitude":2,"address":"` + strings.Repeat("b", 1001) + `"}}`, "whatsApp.address is longer than 1000"},
		{"latitude", `{` + dest + `,"whatsApp":{"latitude":90.5,"longitude":2}}`, "whatsApp.latitude 90.5 is outside -90..90"},
		{"longitude", `{` + dest + `,"whatsApp":{"latitude":-90,"longitude":-180.01}}`, "whatsApp.longitude -180.01 is outside -180..180"},
		{"latitude alone", `{` + dest + `,"whatsApp":{"latitude":1}}`, "latitude and longitude must be given together"},
		{"location without coordinates", `{` + dest + `,"whatsApp":{"locationName":"HQ"}}`, "needs latitude and longitude"},
		{"text too long", `{` + dest + `,"whatsApp":{"text":"` + strings.Repeat("x", 4097) + `"}}`, "whatsApp.text is longer than 4096"},
		{"templateData null value", `{` + dest + `,"whatsApp":{"templateName":"t","templateData":["a",null]}}`, "whatsApp.templateData[1] is null"},
		{"placeholders null", `{` + dest + `,"whatsApp":{"templateName":"t","mediaTemplateData":{"body":{"placeholders":null}}}}`, "placeholders must not be null"},
		{"placeholder null", `{` + dest + `,"whatsApp":{"templateName":"t","mediaTemplateData":{"body":{"placeholders":["a",null]}}}}`, "placeholders[1] is null"},
		{"placeholder empty", `{` + dest + `,"whatsApp":{"templateName":"t","mediaTemplateData":{"body":{"placeholders":[""]}}}}`, "placeholders[0] is empty"},
		{"header gif", `{` + dest + `,"whatsApp":{"templateName":"t","mediaTemplateData":{"header":{"imageUrl":"https://x.example/h.gif"}}}}`, "header.imageUrl has type GIF"},
		{"header latitude", `{` + dest + `,"whatsApp":{"templateName":"t","mediaTemplateData":{"header":{"latitude":100,"longitude":1}}}}`, "header.latitude 100 is outside"},
		{"empty header", `{` + dest + `,"whatsApp":{"templateName":"t","mediaTemplateData":{"header":{}}}}`, "header is empty"},
		{"empty button", `{` + dest + `,"whatsApp":{"templateName":"t","mediaTemplateData":{"buttons":[{}]}}}`, "buttons[0] needs urlPlaceholder or quickReplyPayload"},
		{"mediaTemplateData without template", `{` + dest + `,"whatsApp":{"text":"x","mediaTemplateData":{"body":{"placeholders":[]}}}}`, "mediaTemplateData needs templateName"},
		{"templateName twice", `{` + dest + `,"whatsApp":{"templateName":"a","templateName ":"b"}}`, "whatsApp.templateName is given twice"},
		{"sendAt garbage", `{` + dest + `,"whatsApp":{"text":"x"},"sendAt":"tomorrow"}`, "sendAt"},
		{"sendAt too far", `{` + dest + `,"whatsApp":{"text":"x"},"sendAt":"` + time.Now().Add(181*24*time.Hour).UTC().Format(time.RFC3339) + `"}`, "more than 180 days ahead"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := e.post(sendPath, c.body, okAuth)
			require.Equal(t, http.StatusBadRequest, status, "%s", b)
			require.Contains(t, errorOf(t, b), c.want)
			require.Equal(t, 0, e.outboxDepth(), "nothing is queued")
		})
	}
	t.Run("body limit", func(t *testing.T) {
		big := `{` + dest + `,"whatsApp":{"text":"` + strings.Repeat("x", int(e.cfg.Limits.BodyBytes)) + `"}}`
		status, _, b := e.post(sendPath, big, okAuth)
		require.Equal(t, http.StatusRequestEntityTooLarge, status)
		require.Contains(t, errorOf(t, b), "limit")
	})
	t.Run("sendAt within 180 days is fine", func(t *testing.T) {
		status, _, b := e.post(sendPath, `{`+dest+`,"whatsApp":{"text":"x"},"sendAt":"`+time.Now().Add(179*24*time.Hour).UTC().Format(time.RFC3339)+`"}`, okAuth)
		require.Equal(t, http.StatusOK, status, "%s", b)
		require.Equal(t, store.StatusScheduled, e.message("v-1").Status)
	})
}

// The business number comes from numbers[scenarioKey], else the default.
func TestBusinessNumber(t *testing.T) {
	cfg := testConfig("infobip", "http://127.0.0.1:1/unused")
	cfg.Provider.Numbers = map[string]string{"KEY-A": "+31 20 555 0100"}
	e := newEnv(t, cfg, nil)
	req := text("bn-1", "41793026727", "x")
	req["scenarioKey"] = "KEY-A"
	e.send(req)
	require.Equal(t, "31205550100", e.message("bn-1").From)
	e.send(text("bn-2", "41793026727", "x"))
	require.Equal(t, business, e.message("bn-2").From)

	cfg.Provider.DefaultNumber, cfg.Provider.From = "", ""
	e2 := newEnv(t, cfg, nil)
	status, _, b := e2.post(sendPath, text("bn-3", "41793026727", "x"), okAuth)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, errorOf(t, b), "no business number")
}

// A retried request queues nothing new and gets the same answer.
func TestDuplicateRequest(t *testing.T) {
	prov := newFake(t, infobipOK)
	e := newEnv(t, testConfig("infobip", prov.URL), prov)
	req := map[string]any{
		"destinations": []any{
			map[string]any{"messageId": "dup-1", "to": map[string]any{"phoneNumber": "41793026727"}},
			map[string]any{"to": map[string]any{"phoneNumber": "41793026728"}},
		},
		"whatsApp": map[string]any{"text": "once"},
	}
	first := e.send(req)
	require.Len(t, first.Messages, 2)
	require.NotEmpty(t, first.BulkID, "bulkId is generated")
	require.NotEmpty(t, first.Messages[1].MessageID, "messageId is generated")
	// The retry names the generated id too, as a client keeping our answer would.
	req["destinations"].([]any)[1].(map[string]any)["messageId"] = first.Messages[1].MessageID
	second := e.send(req)
	require.Equal(t, first, second)
	require.Equal(t, 2, e.outboxDepth())
	st, err := e.st.Stats()
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Messages)

	e.dispatch()
	e.waitStatus("dup-1", store.StatusSent)
	e.waitStatus(first.Messages[1].MessageID, store.StatusSent)
	e.send(req) // after sending too
	e.send(text("dup-2", "41793026727", "sentinel"))
	e.waitStatus("dup-2", store.StatusSent)
	require.ElementsMatch(t, []string{"dup-1", first.Messages[1].MessageID, "dup-2"}, destinationIDs(t, prov.requests()))
}

// Free-form text needs the customer's last message within the window;
// templates always pass; the check can be turned off.
func TestWindow(t *testing.T) {
	cfg := testConfig("infobip", "http://127.0.0.1:1/unused")
	cfg.Outbox.CheckWindow = true
	e := newEnv(t, cfg, nil)
	status, _, b := e.post(sendPath, text("w-1", "41793026727", "hi"), okAuth)
	require.Equal(t, http.StatusBadRequest, status)
	msg := errorOf(t, b)
	require.Contains(t, msg, "destinations[0]")
	require.Contains(t, msg, "window")
	require.Equal(t, 0, e.outboxDepth())

	tmpl := map[string]any{
		"destinations": []any{map[string]any{"messageId": "w-t", "to": map[string]any{"phoneNumber": "41793026727"}}},
		"whatsApp":     map[string]any{"templateName": "welcome", "templateData": []string{}, "language": "en"},
	}
	e.send(tmpl)

	ctx := context.Background()
	_, err := e.st.SaveInbound(ctx, []*store.Message{{Provider: "infobip", ExternalID: "in-1", From: "41793026727", To: business,
		Type: store.TypeText, Text: "hello", ReceivedAt: time.Now().Add(-time.Hour)}})
	require.NoError(t, err)
	e.send(text("w-2", "41793026727", "within the window"))

	_, err = e.st.SaveInbound(ctx, []*store.Message{{Provider: "infobip", ExternalID: "in-2", From: "41793026799", To: business,
		Type: store.TypeText, Text: "old", ReceivedAt: time.Now().Add(-25 * time.Hour)}})
	require.NoError(t, err)
	status, _, b = e.post(sendPath, text("w-3", "41793026799", "too late"), okAuth)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, errorOf(t, b), "window")

	cfg.Outbox.CheckWindow = false
	e2 := newEnv(t, cfg, nil)
	e2.send(text("w-4", "41793026727", "no check"))
}

// clock is a settable clock for token expiry.
type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.d) }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.d += d; c.mu.Unlock() }

func (e *env) token(key, secret string) (int, http.Header, map[string]string) {
	status, h, b := e.post("/apigovernance/api/oauth/tokenByAkSk", map[string]string{"app_key": key, "app_secret": secret}, nil)
	var out map[string]string
	_ = json.Unmarshal(b, &out)
	return status, h, out
}

func TestAuth(t *testing.T) {
	clk := &clock{}
	e := newEnv(t, testConfig("infobip", "http://127.0.0.1:1/unused"), nil)
	e.now = clk.now
	e.close()
	e.open()

	status, h, tok := e.token(appKey, appSecret)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "Bearer", tok["ApplyType"])
	require.NotEmpty(t, tok["AccessToken"])
	require.NotEmpty(t, tok["CreateTime"])
	require.Equal(t, "3600", tok["Expires"])
	require.Equal(t, "3600", h.Get("X-Token-Expire"))
	issued := tok["AccessToken"]

	status, _, _ = e.token(appKey, "wrong")
	require.Equal(t, http.StatusUnauthorized, status)
	status, _, _ = e.token("wrong", appSecret)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _, b := e.post("/apigovernance/api/oauth/tokenByAkSk", `{"app_key":`, nil)
	require.Equal(t, http.StatusBadRequest, status, "%s", b)

	basic := func(u, p string) auth { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	n := 0
	try := func(a auth) int {
		n++
		status, _, b := e.post(sendPath, text("auth-"+string(rune('a'+n)), "41793026727", "x"), a)
		if status == http.StatusUnauthorized {
			require.NotEmpty(t, errorOf(t, b))
		}
		return status
	}
	cases := []struct {
		name string
		a    auth
		want int
	}{
		{"static bearer", bearer(staticToken, appKey), 200},
		{"issued token", bearer(issued, appKey), 200},
		{"issued token, wrong x-app-key", bearer(issued, "other"), 401},
		{"static bearer, no x-app-key", bearer(staticToken, ""), 401},
		{"wrong bearer", bearer("nope", appKey), 401},
		{"empty bearer", bearer("", appKey), 401},
		{"basic with app key and secret", basic(appKey, appSecret), 200},
		{"basic with wrong secret", basic(appKey, "x"), 401},
		{"basic with the token", basic(staticToken, ""), 401},
		{"nothing", nil, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { require.Equal(t, c.want, try(c.a)) })
	}

	t.Run("issued token survives a restart", func(t *testing.T) {
		e.close()
		e.open()
		require.Equal(t, 200, try(bearer(issued, appKey)))
	})
	t.Run("expired token", func(t *testing.T) {
		clk.add(time.Hour + time.Second)
		require.Equal(t, 401, try(bearer(issued, appKey)))
		require.Equal(t, 200, try(bearer(staticToken, appKey)), "the static token keeps working")
	})
	t.Run("template endpoint", func(t *testing.T) {
		status, _, b := e.post("/livechat/default/sendExternalTemplateMessageToCtlivesocial", seed001, nil)
		require.Equal(t, 401, status)
		require.JSONEq(t, `{"result":false,"error":"missing or wrong credentials: send Authorization: Bearer <token> with x-app-key, or HTTP Basic with the app key and secret"}`, string(b))
	})
}

func TestAuthOpenWithoutCredentials(t *testing.T) {
	cfg := testConfig("infobip", "http://127.0.0.1:1/unused")
	cfg.API = config.API{TokenTTL: config.Duration{Duration: 10 * time.Minute}}
	e := newEnv(t, cfg, nil)
	status, _, b := e.post(sendPath, text("open-1", "41793026727", "x"), nil)
	require.Equal(t, 200, status, "%s", b)
	status, h, _ := e.token("any", "thing")
	require.Equal(t, 200, status)
	require.Equal(t, "600", h.Get("X-Token-Expire"))

	// Only a static token configured: tokenByAkSk cannot check anything.
	cfg.API.BearerToken = "only-static"
	e2 := newEnv(t, cfg, nil)
	status, _, _ = e2.token("any", "thing")
	require.Equal(t, 401, status)
	status, _, _ = e2.post(sendPath, text("open-2", "41793026727", "x"), bearer("only-static", ""))
	require.Equal(t, 200, status, "no app key configured: x-app-key is not checked")
}

const seed001 = `{
"customerPhoneNumber": "393403603062",
"servicePhoneNumber": "3902124122690",
"templateName": "shipping_confirmation",
"language":"en_GB",
"header": null,
"headerData": ["Griffin"],
"bodyData": ["5"],
"dynamicUrl": ["contact-highway/"]
}`

const templatePath = "/livechat/acme/sendExternalTemplateMessageToCtlivesocial"

func TestTemplateEndpoint(t *testing.T) {
	prov := newFake(t, infobipOK)
	e := newEnv(t, testConfig("infobip", prov.URL), prov)
	e.dispatch()

	status, _, b := e.post(templatePath, seed001, okAuth)
	require.Equal(t, 200, status, "%s", b)
	require.JSONEq(t, `{"result":true,"error":null}`, string(b))
	rs := prov.waitRequests(t, 1)
	var got struct {
		ScenarioKey  string          `json:"scenarioKey"`
		Destinations json.RawMessage `json:"destinations"`
		WhatsApp     json.RawMessage `json:"whatsApp"`
	}
	require.NoError(t, json.Unmarshal(rs[0].Body, &got))
	require.Equal(t, seed001Key, got.ScenarioKey, "the scenarioKey mapped to servicePhoneNumber")
	require.JSONEq(t, `{"templateName":"shipping_confirmation","templateData":["5"],"language":"en_GB",
		"mediaTemplateData":{"header":{"textPlaceholder":"Griffin"},"body":{"placeholders":["5"]},"buttons":[{"urlPlaceholder":"contact-highway/"}]}}`, string(got.WhatsApp))
	conv, err := e.st.ConversationByNumbers("3902124122690", "393403603062")
	require.NoError(t, err)
	require.Equal(t, "acme", conv.Domain)
	msgs, _, err := e.st.ConversationMessages(conv.ID, 10, "")
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, store.TypeTemplate, msgs[0].Type)
	require.Equal(t, "shipping_confirmation", msgs[0].Outbound.TemplateName)
	e.waitStatus(msgs[0].ExternalID, store.StatusSent)

	// A base64 header is hosted; the provider fetches the same bytes from
	// the public URL without credentials.
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 3000)...)
	withHeader := strings.Replace(seed001, `"header": null`, `"header": {"type":"IMAGE","data":"`+base64.StdEncoding.EncodeToString(png)+`","documentType":"png","fileName":"banner.png"}`, 1)
	withHeader = strings.Replace(withHeader, `"headerData": ["Griffin"]`, `"headerData": []`, 1)
	status, _, b = e.post(templatePath, withHeader, okAuth)
	require.Equal(t, 200, status, "%s", b)
	rs = prov.waitRequests(t, 2)
	var wa struct {
		WhatsApp struct {
			MediaTemplateData struct {
				Header struct {
					ImageURL string `json:"imageUrl"`
				} `json:"header"`
			} `json:"mediaTemplateData"`
		} `json:"whatsApp"`
	}
	require.NoError(t, json.Unmarshal(rs[1].Body, &wa))
	u := wa.WhatsApp.MediaTemplateData.Header.ImageURL
	require.True(t, strings.HasPrefix(u, e.api.URL+"/media/public/"), u)
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	fetched, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, png, fetched)
	require.Equal(t, "image/png", resp.Header.Get("Content-Type"))
}

func TestTemplateValidation(t *testing.T) {
	e := newEnv(t, testConfig("infobip", "http://127.0.0.1:1/unused"), nil)
	var base map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(seed001), &base))
	without := func(k string) string {
		m := map[string]json.RawMessage{}
		for kk, v := range base {
			if kk != k {
				m[kk] = v
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	// with replaces keys: with(k1, v1, k2, v2, …).
	with := func(kv ...string) string {
		m := map[string]json.RawMessage{}
		for kk, vv := range base {
			m[kk] = vv
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = json.RawMessage(kv[i+1])
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	cases := []struct{ name, path, body, want string }{
		{"malformed", templatePath, `{`, "malformed JSON"},
		{"bad domain", "/livechat/a%20b/sendExternalTemplateMessageToCtlivesocial", seed001, "domain"},
		{"null bodyData", templatePath, with("bodyData", "null"), "bodyData must not be null"},
		{"null headerData", templatePath, with("headerData", "null"), "headerData must not be null"},
		{"empty templateName", templatePath, with("templateName", `""`), "templateName must not be empty"},
		{"empty language", templatePath, with("language", `""`), "language must not be empty"},
		{"bad customer number", templatePath, with("customerPhoneNumber", `"abc"`), "customerPhoneNumber"},
		{"bad service number", templatePath, with("servicePhoneNumber", `"0612"`), "servicePhoneNumber"},
		{"null in bodyData", templatePath, with("bodyData", `["a",null]`), "bodyData[1] is null"},
		{"empty in bodyData", templatePath, with("bodyData", `[""]`), "bodyData[0] is empty"},
		{"two header values", templatePath, with("headerData", `["a","b"]`), "headerData has 2 values"},
		{"header type", templatePath, with("headerData", `[]`, "header", `{"type":"AUDIO","data":"AAAA","documentType":"aac","fileName":"a.aac"}`), "header.type"},
		{"header base64", templatePath, with("headerData", `[]`, "header", `{"type":"DOCUMENT","data":"%%%","documentType":"pdf","fileName":"a.pdf"}`), "not valid base64"},
		{"header no data", templatePath, with("headerData", `[]`, "header", `{"type":"DOCUMENT","data":"","documentType":"pdf","fileName":"a.pdf"}`), "header.data is required"},
		{"header no fileName", templatePath, with("headerData", `[]`, "header", `{"type":"DOCUMENT","data":"AAAA","documentType":"pdf","fileName":""}`), "header.fileName"},
		{"header image type", templatePath, with("headerData", `[]`, "header", `{"type":"IMAGE","data":"AAAA","documentType":"gif","fileName":"a.gif"}`), "header.documentType"},
		{"header and headerData", templatePath, with("header", `{"type":"DOCUMENT","data":"AAAA","documentType":"pdf","fileName":"a.pdf"}`), "either a media header or headerData"},
	}
	for _, k := range []string{"customerPhoneNumber", "servicePhoneNumber", "templateName", "language", "header", "headerData", "bodyData", "dynamicUrl"} {
		cases = append(cases, struct{ name, path, body, want string }{"missing " + k, templatePath, without(k), k + " is required"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, b := e.post(c.path, c.body, okAuth)
			require.Equal(t, http.StatusBadRequest, status, "%s", b)
			var ans struct {
				Result *bool   `json:"result"`
				Error  *string `json:"error"`
			}
			require.NoError(t, json.Unmarshal(b, &ans), "%s", b)
			require.NotNil(t, ans.Result)
			require.False(t, *ans.Result)
			require.NotNil(t, ans.Error)
			require.Contains(t, *ans.Error, c.want)
			require.Equal(t, 0, e.outboxDepth())
		})
	}
	t.Run("document header without headerData", func(t *testing.T) {
		body := with("headerData", `[]`, "header", `{"type":"DOCUMENT","data":"`+base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 hello"))+`","documentType":"pdf","fileName":"terms.pdf"}`)
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(body), &m))
		m["headerData"] = json.RawMessage(`[]`)
		b, _ := json.Marshal(m)
		status, _, ans := e.post(templatePath, b, okAuth)
		require.Equal(t, 200, status, "%s", ans)
		require.Equal(t, 1, e.outboxDepth())
	})
}
