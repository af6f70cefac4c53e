// Package outbound is CTLive's way out: the OMNI send API
// (docs/protocols.md#omni-send), the template endpoint (docs/protocols.md#template-endpoint), the issued bearer tokens, and the
// dispatcher that delivers the durable outbox to the configured provider
// (infobip.go, cm.go) with retries.
package outbound

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"imchannel/config"
	"imchannel/hmackey"
	"imchannel/httpx"
	"imchannel/metrics"
	"imchannel/store"
)

// Deps is what the outbound handlers and the dispatcher use.
type Deps struct {
	Store   *store.Store
	Log     *slog.Logger
	Metrics *metrics.Metrics
	Config  config.Config
	// Client talks to the provider; nil means one with [provider] timeout.
	Client *http.Client
	// Now is the clock (the store's by default).
	Now func() time.Time
	// HMACKey keys the fingerprint that binds issued tokens to the app key
	// and secret (package hmackey). Without it (tests) the fingerprint is
	// an unkeyed hash.
	HMACKey []byte
}

func (d *Deps) defaults() {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	if d.Now == nil {
		d.Now = d.Store.Now
	}
	// Zero values (tests build Deps by hand) take config.Default()'s.
	def := config.Default()
	if d.Config.Limits.BodyBytes <= 0 {
		d.Config.Limits.BodyBytes = def.Limits.BodyBytes
	}
	if d.Config.Limits.TemplateBytes <= 0 {
		d.Config.Limits.TemplateBytes = def.Limits.TemplateBytes
	}
	if d.Config.API.TokenTTL.Duration <= 0 || d.Config.API.TokenTTL.Duration > time.Hour {
		d.Config.API.TokenTTL = def.API.TokenTTL
	}
}

// API serves the send routes.
type API struct {
	d   Deps
	log *slog.Logger
}

// NewAPI makes the send API.
func NewAPI(d Deps) *API {
	d.defaults()
	return &API{d: d, log: d.Log.With("component", "outbound")}
}

// Register mounts the send API, the token endpoint and the template endpoint.
func (a *API) Register(r *mux.Router) {
	// Each route refuses a declared body over its limit before anything
	// else, and checks credentials before reading the body. tokenByAkSk
	// answers before it knows the caller, so it takes only a small body.
	lim := a.d.Config.Limits
	send := a.limit(lim.BodyBytes, a.requireAPI(http.HandlerFunc(a.serveSend), false), false)
	r.Handle("/omni/1/advanced", send).Methods(http.MethodPost)
	r.Handle("/apiaccess/rest/ccmessaging/omni/1/advanced", send).Methods(http.MethodPost)
	token := http.Handler(http.HandlerFunc(a.serveToken))
	if !a.d.Config.HasAPIAuth() {
		token = httpx.OpenGuard(token)
	}
	r.Handle("/apigovernance/api/oauth/tokenByAkSk", a.limit(httpx.SmallBody, token, false)).Methods(http.MethodPost)
	r.Handle("/livechat/{domain}/sendExternalTemplateMessageToCtlivesocial",
		a.limit(lim.TemplateBytes, a.requireAPI(http.HandlerFunc(a.serveTemplate), true), true)).Methods(http.MethodPost)
}

// limit refuses a declared body over limit before h runs, unread, and
// counts the refusal; the template endpoint answers in its own shape.
func (a *API) limit(limit int64, h http.Handler, template bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := httpx.DeclaredTooLarge(w, r, limit); err != nil {
			if template {
				a.d.Metrics.Rejections.WithLabelValues(httpx.RouteOf(r), httpx.ReasonTooLarge).Inc()
				templateFail(w, http.StatusRequestEntityTooLarge, err.Error())
				return
			}
			a.reject(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ---- authentication ----

// authorized checks [api] credentials: a Bearer token (static or issued,
// unexpired) plus x-app-key when an app key is configured, or HTTP Basic
// with app_key/app_secret. With no [api] credentials at all the group is
// open (serve refuses non-loopback addresses then).
func (a *API) authorized(r *http.Request) bool {
	c := a.d.Config.API
	if !a.d.Config.HasAPIAuth() {
		return true
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		tok := strings.TrimSpace(h[7:])
		if tok == "" {
			return false
		}
		if c.AppKey != "" && !httpx.Equal(r.Header.Get("x-app-key"), c.AppKey) {
			return false
		}
		static := c.BearerToken != "" && httpx.Equal(tok, c.BearerToken)
		return static || a.d.Store.TokenValid(tok, a.d.Now(), a.fingerprint())
	}
	if c.AppKey != "" && c.AppSecret != "" {
		return httpx.BasicOK(r, []httpx.Credential{{User: c.AppKey, Password: c.AppSecret}})
	}
	return false
}

// requireAPI answers 401 to requests without [api] credentials; the
// template endpoint's answer also carries "result": false (docs/protocols.md#template-endpoint).
func (a *API) requireAPI(h http.Handler, template bool) http.Handler {
	const msg = "missing or wrong credentials: send Authorization: Bearer <token> with x-app-key, or HTTP Basic with the app key and secret"
	if !a.d.Config.HasAPIAuth() {
		return httpx.OpenGuard(h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			a.d.Metrics.Rejections.WithLabelValues(httpx.RouteOf(r), httpx.ReasonUnauthorized).Inc()
			httpx.Challenge(w, "Bearer")
			if template {
				templateFail(w, http.StatusUnauthorized, msg)
				return
			}
			httpx.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": msg})
			return
		}
		h.ServeHTTP(w, r)
	})
}

type tokenRequest struct {
	AppKey    string `json:"app_key"`
	AppSecret string `json:"app_secret"`
}

// tokenResponse is tokenByAkSk's answer as Huawei CEC's API page shows it
// (support.huaweicloud.com/intl/en-us/api-cec/cec_07_0005.html): every
// value a string.
type tokenResponse struct {
	AccessToken string `json:"AccessToken"`
	ApplyType   string `json:"ApplyType"`
	CreateTime  string `json:"CreateTime"` // unix seconds
	Expires     string `json:"Expires"`    // seconds
	Scope       string `json:"Scope"`
	AppKey      string `json:"AppKey"`
	UserID      string `json:"UserID"`
}

// fingerprint binds issued tokens to the credentials that issued them: a
// token is valid only while [api] app_key and app_secret are what they were,
// so changing the secret (and restarting) revokes every issued token.
func (a *API) fingerprint() string {
	c := a.d.Config.API
	parts := []string{"tokenByAkSk", c.AppKey, c.AppSecret}
	if len(a.d.HMACKey) > 0 {
		return hmackey.Sum(a.d.HMACKey, parts...)
	}
	return hmackey.Sum(nil, parts...)
}

// tokenTTL is the lifetime asked for in X-Token-Expire (seconds), capped
// by api.token_ttl (itself at most an hour); absent, api.token_ttl.
func (a *API) tokenTTL(r *http.Request) (time.Duration, error) {
	limit := a.d.Config.API.TokenTTL.Duration
	v := strings.TrimSpace(r.Header.Get("X-Token-Expire"))
	if v == "" {
		return limit, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, httpx.Errorf(store.ErrInvalid, "X-Token-Expire %q: must be a number of seconds, 1 to 3600", v)
	}
	if n > int64(limit/time.Second) {
		return limit, nil
	}
	return time.Duration(n) * time.Second, nil
}

// serveToken is tokenByAkSk: app key and secret in, a short-lived bearer
// token out. The token is kept hashed in the store, bound to the
// credentials that issued it, so it survives a restart and expires there.
func (a *API) serveToken(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decodeChecked(w, r, httpx.SmallBody, &req); err != nil {
		httpx.WriteError(w, r, a.log, err)
		return
	}
	c := a.d.Config.API
	if a.d.Config.HasAPIAuth() {
		if c.AppKey == "" || c.AppSecret == "" {
			a.d.Metrics.Rejections.WithLabelValues(httpx.RouteOf(r), httpx.ReasonUnauthorized).Inc()
			httpx.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "tokenByAkSk is not enabled: [api] app_key and app_secret are not configured"})
			return
		}
		// Both compared, always, so timing does not tell which was wrong.
		okKey := httpx.Equal(req.AppKey, c.AppKey)
		okSecret := httpx.Equal(req.AppSecret, c.AppSecret)
		if !okKey || !okSecret {
			a.d.Metrics.Rejections.WithLabelValues(httpx.RouteOf(r), httpx.ReasonUnauthorized).Inc()
			httpx.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong app_key or app_secret"})
			return
		}
	}
	ttl, err := a.tokenTTL(r)
	if err != nil {
		httpx.WriteError(w, r, a.log, err)
		return
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		httpx.WriteError(w, r, a.log, fmt.Errorf("%w: token: %v", store.ErrInternal, err))
		return
	}
	tok := hex.EncodeToString(raw[:])
	now := a.d.Now()
	if err := a.d.Store.SaveToken(r.Context(), tok, now.Add(ttl), a.fingerprint()); err != nil {
		httpx.WriteError(w, r, a.log, err)
		return
	}
	secs := strconv.Itoa(int(ttl / time.Second))
	w.Header().Set("X-Token-Expire", secs)
	w.Header().Set("Cache-Control", "no-store")
	appKey := c.AppKey
	if appKey == "" {
		appKey = req.AppKey // open mode: nothing configured to name
	}
	httpx.WriteJSON(w, http.StatusOK, tokenResponse{AccessToken: tok, ApplyType: "Bearer",
		CreateTime: strconv.FormatInt(now.Unix(), 10), Expires: secs,
		Scope: tokenScope, AppKey: appKey, UserID: "Anonymous"})
}

// tokenScope is the Scope every issued token has: the send API only. Huawei's
// page shows a 32-character value; this one is a fixed 32-character name.
const tokenScope = "imchannel-send-api-omni-template"

// ---- the OMNI send API ----

type sendRequest struct {
	ScenarioKey  string          `json:"scenarioKey"`
	BulkID       string          `json:"bulkId"`
	Destinations []destination   `json:"destinations"`
	WhatsApp     json.RawMessage `json:"whatsApp"`
	SendAt       string          `json:"sendAt"`
}

type destination struct {
	MessageID string `json:"messageId"`
	To        *struct {
		PhoneNumber string `json:"phoneNumber"`
	} `json:"to"`
}

type sendResponse struct {
	Messages []sentMessage `json:"messages"`
	BulkID   string        `json:"bulkId"`
}

type sentMessage struct {
	To        phone      `json:"to"`
	Status    omniStatus `json:"status"`
	MessageID string     `json:"messageId"`
}

type phone struct {
	PhoneNumber string `json:"phoneNumber"`
}

type omniStatus struct {
	GroupID     int    `json:"groupId"`
	GroupName   string `json:"groupName"`
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

var pendingEnroute = omniStatus{GroupID: 1, GroupName: "PENDING", ID: 7, Name: "PENDING_ENROUTE",
	Description: "Message sent to next instance"}

const (
	maxDestinations = 1000
	maxIDLen        = 200
	maxSchedule     = 180 * 24 * time.Hour
)

func (a *API) serveSend(w http.ResponseWriter, r *http.Request) {
	var req sendRequest
	if err := decodeChecked(w, r, a.d.Config.Limits.BodyBytes, &req); err != nil {
		a.reject(w, r, err)
		return
	}
	msgs, err := a.buildSend(&req)
	if err != nil {
		a.reject(w, r, httpx.Errorf(store.ErrInvalid, "%v", err))
		return
	}
	if err := a.routeReplies(msgs, req.ScenarioKey); err != nil {
		a.reject(w, r, err)
		return
	}
	opts := store.QueueOptions{}
	if a.d.Config.Outbox.CheckWindow {
		opts.Window = a.d.Config.Outbox.Window.Duration
	}
	results, err := a.d.Store.QueueOutbound(r.Context(), msgs, opts)
	if err != nil {
		a.reject(w, r, renameIndex(err))
		return
	}
	resp := sendResponse{BulkID: req.BulkID, Messages: make([]sentMessage, len(results))}
	for i, res := range results {
		resp.Messages[i] = sentMessage{To: phone{msgs[i].To}, Status: pendingEnroute, MessageID: res.ExternalID}
		if res.Duplicate {
			// A retried request gets the first answer: that request's bulkId.
			if prev, err := a.d.Store.Message(res.MessageID); err == nil && prev.Outbound != nil && prev.Outbound.BulkID != "" && i == 0 {
				resp.BulkID = prev.Outbound.BulkID
			}
		}
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}

// decodeChecked reads a bounded JSON body into v and refuses it when an
// object at any depth holds keys that differ only in case (httpx.CheckKeys):
// what is validated is then what is forwarded.
func decodeChecked(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	b, err := httpx.ReadBody(w, r, limit)
	if err != nil {
		return err
	}
	if err := httpx.Unmarshal(b, v); err != nil {
		return err
	}
	return httpx.CheckKeys(b)
}

func (a *API) reject(w http.ResponseWriter, r *http.Request, err error) {
	if s := httpx.Status(err); s >= 400 && s < 500 {
		a.d.Metrics.Rejections.WithLabelValues(httpx.RouteOf(r), httpx.Reason(s)).Inc()
	}
	httpx.WriteError(w, r, a.log, err)
}

// renameIndex names the message the store refused by its place in the
// request: "destinations[2]: …".
func renameIndex(err error) error {
	var ie *store.ItemError
	if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &ie) {
		return err
	}
	return httpx.Errorf(store.ErrInvalid, "destinations[%d]: %v", ie.Index, ie.Err)
}

// buildSend validates a request and turns each destination into a message.
func (a *API) buildSend(req *sendRequest) ([]*store.Message, error) {
	if len(req.Destinations) == 0 {
		return nil, fmt.Errorf("destinations is required and must not be empty")
	}
	if len(req.Destinations) > maxDestinations {
		return nil, fmt.Errorf("destinations has %d entries; at most %d are accepted", len(req.Destinations), maxDestinations)
	}
	if len(req.BulkID) > maxIDLen {
		return nil, fmt.Errorf("bulkId is longer than %d characters", maxIDLen)
	}
	wa, raw, err := normalizeWhatsApp(req.WhatsApp)
	if err != nil {
		return nil, err
	}
	if err := wa.validate(); err != nil {
		return nil, err
	}
	var sendAt time.Time
	if req.SendAt != "" {
		if sendAt, err = a.acceptTime("sendAt", req.SendAt); err != nil {
			return nil, err
		}
	}
	business, err := a.businessNumber(req.ScenarioKey)
	if err != nil {
		return nil, err
	}
	if req.BulkID == "" {
		req.BulkID = a.d.Store.NewID()
	}
	seen := map[string]int{}
	msgs := make([]*store.Message, len(req.Destinations))
	for i, d := range req.Destinations {
		if d.To == nil || strings.TrimSpace(d.To.PhoneNumber) == "" {
			return nil, fmt.Errorf("destinations[%d].to.phoneNumber is required", i)
		}
		to, err := internationalNumber(d.To.PhoneNumber)
		if err != nil {
			return nil, fmt.Errorf("destinations[%d].to.phoneNumber: %v", i, err)
		}
		id := strings.TrimSpace(d.MessageID)
		if len(id) > maxIDLen {
			return nil, fmt.Errorf("destinations[%d].messageId is longer than %d characters", i, maxIDLen)
		}
		if id == "" {
			id = a.d.Store.NewID()
		}
		if j, dup := seen[id]; dup {
			return nil, fmt.Errorf("destinations[%d].messageId %q repeats destinations[%d].messageId", i, id, j)
		}
		seen[id] = i
		msgs[i] = a.omniMessage(wa, raw, req, business, to, id, sendAt)
	}
	return msgs, nil
}

func (a *API) omniMessage(wa *whatsApp, raw json.RawMessage, req *sendRequest, business, to, id string, sendAt time.Time) *store.Message {
	m := &store.Message{
		Provider:   a.d.Config.Provider.Kind,
		ExternalID: id,
		From:       business,
		To:         to,
		Type:       wa.kind(),
		Outbound: &store.OutboundSpec{BulkID: req.BulkID, ScenarioKey: req.ScenarioKey, SendAt: sendAt, WhatsApp: raw,
			TemplateName: wa.TemplateName, Language: wa.Language, ReplyToExternal: wa.ReplyTo},
	}
	// Media URLs are the provider's to fetch: the message keeps the link
	// (shown.go), not a media record the media fetcher would download.
	switch m.Type {
	case store.TypeText:
		m.Text = wa.text()
	case store.TypeImage, store.TypeDocument, store.TypeAudio, store.TypeVideo:
		// A document's text is its file name (docs/protocols.md#infobip-inbound), which is also
		// its media.fileName, as for inbound documents.
		m.Caption = wa.text()
		m.Media = sentMedia(wa)
	case store.TypeLocation:
		m.Location = &store.Location{Latitude: *wa.Latitude, Longitude: *wa.Longitude, Name: wa.LocationName, Address: wa.Address}
	case store.TypeTemplate:
		m.Text = templateText(wa.TemplateName, wa.TemplateData)
		m.Template = templateInfo(wa)
	}
	if wa.ReplyTo != "" {
		m.ReplyTo = &store.ReplyRef{ExternalID: wa.ReplyTo}
	}
	return m
}

// templateText is what agents read for a template: its name and values.
func templateText(name string, data []*string) string {
	var vals []string
	for _, d := range data {
		if d != nil {
			vals = append(vals, *d)
		}
	}
	if len(vals) == 0 {
		return "template " + name
	}
	return "template " + name + ": " + strings.Join(vals, ", ")
}

// businessNumber is the number a scenarioKey sends from: [provider]
// numbers[scenarioKey], else default_number, else the digits of [provider]
// from (CM's sender).
func (a *API) businessNumber(scenarioKey string) (string, error) {
	p := a.d.Config.Provider
	key := scenarioKey
	if key == "" {
		key = p.ScenarioKey
	}
	for _, n := range []string{p.Numbers[key], p.DefaultNumber, p.From} {
		if d := store.NormalizeNumber(n); d != "" {
			return d, nil
		}
	}
	return "", fmt.Errorf("no business number for scenarioKey %q: configure [provider] numbers or default_number", scenarioKey)
}

// internationalNumber accepts "41793026727", "+41793026727" or
// "0041793026727": 7 to 15 digits, no national trunk prefix.
func internationalNumber(s string) (string, error) {
	s = strings.TrimSpace(s)
	d := strings.TrimPrefix(s, "+")
	for _, c := range d {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("%q is not in international format (digits only, e.g. 41793026727)", s)
		}
	}
	d = strings.TrimPrefix(d, "00")
	if strings.HasPrefix(d, "0") {
		return "", fmt.Errorf("%q is a national number; use the international format with the country code (e.g. 41793026727)", s)
	}
	if len(d) < 7 || len(d) > 15 {
		return "", fmt.Errorf("%q must have 7 to 15 digits in international format", s)
	}
	return d, nil
}

// Times the API accepts lie between earliestTime and maxSchedule ahead:
// nothing we send was scheduled before 2000, and a year the store's RFC
// 3339 encoding cannot write (year 0 with a positive offset is year -1 in
// UTC) must be a 400, not a failed write.
var earliestTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// acceptTime is the one way a time enters through the API: parsed, then
// range-checked, with errors naming field.
func (a *API) acceptTime(field, s string) (time.Time, error) {
	t, err := parseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: %v", field, s, err)
	}
	if t.Before(earliestTime) {
		return time.Time{}, fmt.Errorf("%s %q is out of range: before %s", field, s, earliestTime.Format("2006-01-02"))
	}
	if t.After(a.d.Now().Add(maxSchedule)) {
		return time.Time{}, fmt.Errorf("%s %q is out of range: more than 180 days ahead", field, s)
	}
	return t, nil
}

// parseTime reads the timestamps CTLive and Infobip write.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05-0700", "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a timestamp like 2024-05-01T12:00:00.000+0000")
}
