package outbound

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/gorilla/mux"

	"imchannel/httpx"
	"imchannel/store"
)

// templateRequest is the template endpoint's body (docs/protocols.md#template-endpoint). Every key must be present; header may
// be null and the arrays may be empty.
type templateRequest struct {
	CustomerPhoneNumber string            `json:"customerPhoneNumber"`
	ServicePhoneNumber  string            `json:"servicePhoneNumber"`
	TemplateName        string            `json:"templateName"`
	Language            string            `json:"language"`
	Header              *templateHeaderIn `json:"header"`
	HeaderData          []*string         `json:"headerData"`
	BodyData            []*string         `json:"bodyData"`
	DynamicURL          []*string         `json:"dynamicUrl"`
}

type templateHeaderIn struct {
	Type         string `json:"type"`
	Data         string `json:"data"`
	DocumentType string `json:"documentType"`
	FileName     string `json:"fileName"`
}

type templateAnswer struct {
	Result bool    `json:"result"`
	Error  *string `json:"error"`
}

var domainRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

var requiredTemplateKeys = []string{"customerPhoneNumber", "servicePhoneNumber", "templateName", "language",
	"header", "headerData", "bodyData", "dynamicUrl"}

func templateFail(w http.ResponseWriter, status int, msg string) {
	httpx.WriteJSON(w, status, templateAnswer{Result: false, Error: &msg})
}

func (a *API) serveTemplate(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) {
		status, msg := httpx.Masked(r, a.log, err)
		if status < 500 {
			a.d.Metrics.Rejections.WithLabelValues(httpx.RouteOf(r), httpx.Reason(status)).Inc()
		} else if status == http.StatusServiceUnavailable {
			httpx.RetryLater(w)
		}
		templateFail(w, status, msg)
	}
	domain := mux.Vars(r)["domain"]
	if !domainRE.MatchString(domain) {
		fail(httpx.Errorf(store.ErrInvalid, "domain %q: use 1 to 64 letters, digits, '.', '_' or '-'", domain))
		return
	}
	body, err := httpx.ReadBody(w, r, a.d.Config.Limits.TemplateBytes)
	if err != nil {
		fail(err)
		return
	}
	var keys map[string]json.RawMessage
	if err := httpx.Unmarshal(body, &keys); err != nil {
		fail(err)
		return
	}
	if err := httpx.CheckKeys(body); err != nil {
		fail(err)
		return
	}
	for _, k := range requiredTemplateKeys {
		v, ok := keys[k]
		if !ok {
			fail(httpx.Errorf(store.ErrInvalid, "%s is required", k))
			return
		}
		if k != "header" && string(v) == "null" {
			fail(httpx.Errorf(store.ErrInvalid, "%s must not be null", k))
			return
		}
	}
	var req templateRequest
	if err := httpx.Unmarshal(body, &req); err != nil {
		fail(err)
		return
	}
	m, header, err := a.buildTemplate(&req, domain)
	if err != nil {
		fail(httpx.Errorf(store.ErrInvalid, "%v", err))
		return
	}
	var hosted *store.HostedMedia
	if header != nil {
		hosted, err = a.d.Store.NewHostedMedia(header.data, header.contentType, header.fileName)
		if err != nil {
			fail(err)
			return
		}
		md := hosted.Media
		m.Outbound.HeaderMedia = md.ID
		if err := setHeaderURL(m, header.kind, strings.TrimRight(a.d.Config.PublicURL, "/")+"/media/public/"+md.Token, header.fileName); err != nil {
			fail(err)
			return
		}
	}
	if wa, _, err := normalizeWhatsApp(m.Outbound.WhatsApp); err == nil {
		m.Template = templateInfo(wa)
		if h := m.Template.Header; h != nil && m.Outbound.HeaderMedia != "" {
			// Agents see the hosted header through their own route, not
			// the public capability URL the provider was given.
			h.MediaID, h.MediaURL = m.Outbound.HeaderMedia, "/media/"+m.Outbound.HeaderMedia
			h.FileName = header.fileName
		}
	}
	// The hosted header and its message are stored in one transaction: a
	// crash between them cannot leave bytes that nothing references.
	if hosted != nil {
		_, err = a.d.Store.QueueWithHosted(r.Context(), m, hosted, store.QueueOptions{})
	} else {
		_, err = a.d.Store.QueueOutbound(r.Context(), []*store.Message{m}, store.QueueOptions{})
	}
	if err != nil {
		fail(err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, templateAnswer{Result: true})
}

type hostedHeader struct {
	kind        string // image video document
	data        []byte
	contentType string
	fileName    string
}

// Header types the template endpoint leaves open; these are WhatsApp's media headers.
var headerKinds = map[string][]string{
	"image":    {"jpg", "jpeg", "png"},
	"video":    {"mp4", "3gp"},
	"document": nil,
}

func (a *API) buildTemplate(req *templateRequest, domain string) (*store.Message, *hostedHeader, error) {
	if strings.TrimSpace(req.TemplateName) == "" {
		return nil, nil, fmt.Errorf("templateName must not be empty")
	}
	if strings.TrimSpace(req.Language) == "" {
		return nil, nil, fmt.Errorf("language must not be empty")
	}
	to, err := internationalNumber(req.CustomerPhoneNumber)
	if err != nil {
		return nil, nil, fmt.Errorf("customerPhoneNumber: %v", err)
	}
	from, err := internationalNumber(req.ServicePhoneNumber)
	if err != nil {
		return nil, nil, fmt.Errorf("servicePhoneNumber: %v", err)
	}
	strs := func(field string, in []*string, allowEmpty bool) ([]string, error) {
		out := make([]string, len(in))
		for i, v := range in {
			if v == nil {
				return nil, fmt.Errorf("%s[%d] is null", field, i)
			}
			if *v == "" && !allowEmpty {
				return nil, fmt.Errorf("%s[%d] is empty", field, i)
			}
			out[i] = *v
		}
		return out, nil
	}
	headerData, err := strs("headerData", req.HeaderData, false)
	if err != nil {
		return nil, nil, err
	}
	bodyData, err := strs("bodyData", req.BodyData, false)
	if err != nil {
		return nil, nil, err
	}
	dynURL, err := strs("dynamicUrl", req.DynamicURL, false)
	if err != nil {
		return nil, nil, err
	}
	if len(headerData) > 1 {
		return nil, nil, fmt.Errorf("headerData has %d values; a WhatsApp template header takes at most one", len(headerData))
	}

	mt := &mediaTemplateData{}
	var hosted *hostedHeader
	if h := req.Header; h != nil {
		hosted, err = decodeHeader(h)
		if err != nil {
			return nil, nil, err
		}
		if len(headerData) > 0 {
			return nil, nil, fmt.Errorf("give either a media header or headerData, not both (a WhatsApp header is text or media)")
		}
		mt.Header = &templateHeader{} // its URL is set once the bytes are hosted
	} else if len(headerData) == 1 {
		mt.Header = &templateHeader{TextPlaceholder: headerData[0]}
	}
	placeholders := make([]*string, len(bodyData))
	for i := range bodyData {
		placeholders[i] = &bodyData[i]
	}
	mt.Body = &templateBody{Placeholders: placeholders}
	for _, u := range dynURL {
		mt.Buttons = append(mt.Buttons, templateButton{URLPlaceholder: u})
	}
	wa := &whatsApp{TemplateName: req.TemplateName, TemplateData: placeholders, Language: req.Language}
	if mt.Header != nil || len(mt.Buttons) > 0 {
		wa.MediaTemplateData = mt
	}
	key, err := a.templateKey(from)
	if err != nil {
		return nil, nil, err
	}
	raw, err := json.Marshal(wa)
	if err != nil {
		return nil, nil, err
	}
	m := &store.Message{
		Provider:   a.d.Config.Provider.Kind,
		ExternalID: a.d.Store.NewID(),
		From:       from,
		To:         to,
		Type:       store.TypeTemplate,
		Text:       templateText(req.TemplateName, placeholders),
		Domain:     domain,
		Outbound: &store.OutboundSpec{
			ScenarioKey: key,
			WhatsApp:    raw, TemplateName: req.TemplateName, Language: req.Language,
			HeaderData: headerData, BodyData: bodyData, DynamicURL: dynURL,
		},
	}
	if hosted != nil {
		m.Outbound.HeaderType = hosted.kind
	}
	return m, hosted, nil
}

func decodeHeader(h *templateHeaderIn) (*hostedHeader, error) {
	kind := strings.ToLower(strings.TrimSpace(h.Type))
	exts, ok := headerKinds[kind]
	if !ok {
		return nil, fmt.Errorf("header.type %q: must be IMAGE, VIDEO or DOCUMENT", h.Type)
	}
	if h.Data == "" {
		return nil, fmt.Errorf("header.data is required (base64)")
	}
	if strings.TrimSpace(h.FileName) == "" {
		return nil, fmt.Errorf("header.fileName is required")
	}
	if strings.ContainsAny(h.FileName, "/\\\x00\r\n") {
		return nil, fmt.Errorf("header.fileName must be a plain file name")
	}
	docType := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(h.DocumentType), "."))
	if docType == "" {
		return nil, fmt.Errorf("header.documentType is required (the file extension, e.g. pdf)")
	}
	if exts != nil {
		okExt := false
		for _, e := range exts {
			okExt = okExt || e == docType
		}
		if !okExt {
			return nil, fmt.Errorf("header.documentType %q is not allowed for a %s header (allowed: %s)", h.DocumentType, kind, strings.Join(exts, ", "))
		}
	}
	data, err := decodeBase64(h.Data)
	if err != nil {
		return nil, fmt.Errorf("header.data is not valid base64: %v", err)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("header.data decodes to no bytes")
	}
	ct := typeByExt("." + docType)
	return &hostedHeader{kind: kind, data: data, contentType: ct, fileName: strings.TrimSpace(h.FileName)}, nil
}

// decodeBase64 accepts standard or URL-safe base64, padded or not, with
// line breaks, and a data: URL prefix.
func decodeBase64(s string) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		if i := strings.Index(s, ","); i >= 0 {
			s = s[i+1:]
		}
	}
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// setHeaderURL points the template's header at the hosted bytes.
func setHeaderURL(m *store.Message, kind, url, fileName string) error {
	wa, _, err := normalizeWhatsApp(m.Outbound.WhatsApp)
	if err != nil {
		return err
	}
	if wa.MediaTemplateData == nil {
		wa.MediaTemplateData = &mediaTemplateData{}
	}
	h := &templateHeader{}
	switch kind {
	case "image":
		h.ImageURL = url
	case "video":
		h.VideoURL = url
	default:
		h.DocumentURL, h.DocumentFilename = url, fileName
	}
	wa.MediaTemplateData.Header = h
	raw, err := json.Marshal(wa)
	if err != nil {
		return err
	}
	m.Outbound.WhatsApp = raw
	return nil
}
