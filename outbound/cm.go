package outbound

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"imchannel/config"
	"imchannel/store"
)

// cm sends CM.com's business messaging JSON, authenticated by the product
// token in the body. Our own message id (a 26-character ULID) travels as
// "reference": CM takes 1 to 32 alphanumerics there, which CTLive's
// messageIds (UUIDs, up to 200 characters) are not. The reference is
// recorded as an alias of the message, so CM's status reports and the
// messageContext of the customer's replies find it.
type cm struct {
	c   *http.Client
	cfg config.Provider
	// st reads hosted template headers' media records (type, file name).
	st *store.Store
}

type cmRequest struct {
	Messages cmMessages `json:"messages"`
}

type cmMessages struct {
	Authentication cmAuth  `json:"authentication"`
	Msg            []cmMsg `json:"msg"`
}

type cmAuth struct {
	ProductToken string `json:"productToken"`
}

type cmMsg struct {
	From            string         `json:"from"`
	To              []cmNumber     `json:"to"`
	Body            cmBody         `json:"body"`
	AllowedChannels []string       `json:"allowedChannels"`
	Reference       string         `json:"reference"`
	RichContent     *cmRichContent `json:"richContent,omitempty"`
}

type cmNumber struct {
	Number string `json:"number"`
}

type cmBody struct {
	Type    string `json:"type"`
	Content string `json:"content"`
}

type cmRichContent struct {
	Conversation []map[string]any `json:"conversation"`
}

type cmResponse struct {
	Details   string `json:"details"`
	ErrorCode int    `json:"errorCode"`
	Messages  []struct {
		Status           string `json:"status"`
		Reference        string `json:"reference"`
		MessageDetails   string `json:"messageDetails"`
		MessageErrorCode int    `json:"messageErrorCode"`
	} `json:"messages"`
}

// cmMediaContent is the SDKs' MediaContent.
type cmMediaContent struct {
	MediaName string `json:"mediaName"`
	MediaURI  string `json:"mediaUri"`
	MimeType  string `json:"mimeType"`
}

// cmMedia describes the file at u. shown, when given, is what WhatsApp
// shows with it: an image's or video's caption, or (isFile) a document's
// file name, whose extension then gives the mime type before the URL's.
// CM's WhatsApp fact sheet wants a file name to end in its extension: a
// document name without one gets the URL's.
func cmMedia(u, shown string, isFile bool) cmMediaContent {
	base := urlBase(u)
	mt := typeByExt(extOf(base))
	if isFile && shown != "" {
		if t := typeByExt(extOf(shown)); t != octetStream {
			mt = t
		} else if e := extOf(base); e != "" && extOf(shown) == "" {
			shown += e
		}
	}
	if shown == "" {
		shown = base
	}
	return cmMediaContent{MediaName: shown, MediaURI: u, MimeType: mt}
}

// extOf is a file name's extension (".pdf"), "" when it has none that
// looks like one.
func extOf(name string) string {
	e := path.Ext(name)
	if len(e) < 2 || len(e) > 6 || strings.ContainsAny(e, " /\\") {
		return ""
	}
	return e
}

// urlBase is the last element of a URL's path ("" for a bare host).
func urlBase(u string) string {
	p := u
	if pu, err := url.Parse(u); err == nil {
		p = pu.Path
	}
	b := path.Base(p)
	if b == "/" || b == "." {
		return ""
	}
	return b
}

// whatsAppTypes are the media types WhatsApp takes, fixed here so payloads
// do not depend on the host's mime.types.
var whatsAppTypes = map[string]string{
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
	".aac": "audio/aac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".amr": "audio/amr", ".m4a": "audio/mp4",
	".mp4": "video/mp4", ".3gp": "video/3gpp",
	".pdf": "application/pdf", ".txt": "text/plain",
	".doc": "application/msword", ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".xls": "application/vnd.ms-excel", ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".ppt": "application/vnd.ms-powerpoint", ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}

// typeByExt is the media type of a file extension (".pdf").
func typeByExt(ext string) string {
	ext = strings.ToLower(ext)
	if ext == "" || ext == "." {
		return octetStream
	}
	if t, ok := whatsAppTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		if i := strings.IndexByte(t, ';'); i >= 0 {
			t = t[:i]
		}
		return t
	}
	return octetStream
}

const octetStream = "application/octet-stream"

func (p *cm) payload(m *store.Message) ([]byte, error) {
	raw, err := content(m)
	if err != nil {
		return nil, err
	}
	w, _, err := normalizeWhatsApp(raw)
	if err != nil {
		return nil, fmt.Errorf("message %s: %v", m.ID, err)
	}
	replyTo := ""
	if m.Outbound != nil {
		replyTo = m.Outbound.ReplyToExternal
	}
	msg := cmMsg{
		From:            p.sender(m),
		To:              []cmNumber{{Number: "00" + m.To}},
		Body:            cmBody{Type: "auto", Content: w.text()},
		AllowedChannels: []string{"WhatsApp"},
		Reference:       m.ID,
	}
	var conv []map[string]any
	switch {
	case w.TemplateName != "":
		msg.Body.Content = m.Text
		conv = append(conv, map[string]any{"template": map[string]any{"whatsapp": p.template(w, m)}})
	case w.mediaURL() != "":
		// WhatsApp shows an image's or video's caption and a document's
		// file name (the document's text is its name: docs/protocols.md#infobip-inbound) with the
		// media itself; audio has neither, so its text goes first.
		u := w.mediaURL()
		switch {
		case w.FileURL != "":
			conv = append(conv, map[string]any{"media": cmMedia(u, w.text(), true)})
		case w.AudioURL != "":
			if w.text() != "" {
				conv = append(conv, map[string]any{"text": w.text()})
			}
			conv = append(conv, map[string]any{"media": cmMedia(u, "", false)})
		default:
			conv = append(conv, map[string]any{"media": cmMedia(u, w.text(), false)})
		}
		if msg.Body.Content == "" {
			msg.Body.Content = u
		}
	case w.Latitude != nil:
		loc := map[string]any{"latitude": *w.Latitude, "longitude": *w.Longitude}
		if w.LocationName != "" {
			loc["label"] = w.LocationName
		}
		if w.Address != "" {
			loc["searchQuery"] = w.Address
		}
		conv = append(conv, map[string]any{"location": loc})
		if msg.Body.Content == "" {
			msg.Body.Content = strings.TrimSpace(w.LocationName + " " + w.Address)
		}
	case replyTo != "":
		conv = append(conv, map[string]any{"text": w.text()})
	}
	if r := replyTo; r != "" && len(conv) > 0 {
		conv[0]["context"] = map[string]any{"message_id": r}
	}
	if len(conv) > 0 {
		msg.RichContent = &cmRichContent{Conversation: conv}
	}
	return json.Marshal(cmRequest{Messages: cmMessages{
		Authentication: cmAuth{ProductToken: p.cfg.ProductToken},
		Msg:            []cmMsg{msg},
	}})
}

// sender is the message's business number, the one its conversation is
// with, in CM's number format; provider.from only when the message has none.
func (p *cm) sender(m *store.Message) string {
	if d := store.NormalizeNumber(m.From); d != "" {
		return "00" + d
	}
	return p.cfg.From
}

// The WhatsApp template object of CM's SDKs (WhatsappTemplate,
// TemplateComponents, ComponentParameters).
type cmTemplate struct {
	Namespace   string        `json:"namespace,omitempty"`
	ElementName string        `json:"element_name"`
	Language    cmLanguage    `json:"language"`
	Components  []cmComponent `json:"components,omitempty"`
}

type cmLanguage struct {
	Policy string `json:"policy"`
	Code   string `json:"code"`
}

type cmComponent struct {
	Type       string    `json:"type"`
	SubType    string    `json:"sub_type,omitempty"`
	Index      *int      `json:"index,omitempty"` // buttons only; a number, as in the SDKs
	Parameters []cmParam `json:"parameters"`
}

type cmParam struct {
	Type     string          `json:"type"`
	Text     string          `json:"text,omitempty"`
	Media    *cmMediaContent `json:"media,omitempty"`
	Payload  string          `json:"payload,omitempty"`
	Location map[string]any  `json:"location,omitempty"`
}

// template builds the WhatsApp template CM expects from the OMNI template
// fields. A header we host (the template endpoint's base64 header) is described by its
// stored media record: its URL shows neither type nor name.
func (p *cm) template(w *whatsApp, m *store.Message) *cmTemplate {
	t := &cmTemplate{
		Namespace:   p.cfg.Namespace,
		ElementName: w.TemplateName,
		Language:    cmLanguage{Policy: "deterministic", Code: w.Language},
	}
	text := func(s string) cmParam { return cmParam{Type: "text", Text: s} }
	var body []cmParam
	if md := w.MediaTemplateData; md != nil {
		if h := md.Header; h != nil {
			var param *cmParam
			switch {
			case h.TextPlaceholder != "":
				param = &cmParam{Type: "text", Text: h.TextPlaceholder}
			case h.ImageURL != "":
				param = &cmParam{Type: "image", Media: ptr(cmMedia(h.ImageURL, "", false))}
			case h.VideoURL != "":
				param = &cmParam{Type: "video", Media: ptr(cmMedia(h.VideoURL, "", false))}
			case h.DocumentURL != "":
				param = &cmParam{Type: "document", Media: ptr(cmMedia(h.DocumentURL, h.DocumentFilename, true))}
			case h.Latitude != nil:
				param = &cmParam{Type: "location", Location: map[string]any{"latitude": *h.Latitude, "longitude": *h.Longitude}}
			}
			if param != nil && param.Media != nil && m.Outbound != nil && m.Outbound.HeaderMedia != "" && p.st != nil {
				// A record gone (erased) leaves the URL's guess: CM
				// reports the missing file itself.
				if hosted, err := p.st.Media(m.Outbound.HeaderMedia); err == nil {
					if hosted.ContentType != "" {
						param.Media.MimeType = hosted.ContentType
					}
					if hosted.FileName != "" {
						param.Media.MediaName = hosted.FileName
					}
				}
			}
			if param != nil {
				t.Components = append(t.Components, cmComponent{Type: "header", Parameters: []cmParam{*param}})
			}
		}
		if md.Body != nil {
			for _, p := range md.Body.Placeholders {
				body = append(body, text(*p))
			}
		}
	}
	if body == nil {
		for _, d := range w.TemplateData {
			body = append(body, text(*d))
		}
	}
	if len(body) > 0 {
		t.Components = append(t.Components, cmComponent{Type: "body", Parameters: body})
	}
	if md := w.MediaTemplateData; md != nil {
		for i, b := range md.Buttons {
			c := cmComponent{Type: "button", Index: ptr(i)}
			if b.URLPlaceholder != "" {
				c.SubType, c.Parameters = "url", []cmParam{text(b.URLPlaceholder)}
			} else {
				c.SubType, c.Parameters = "quick_reply", []cmParam{{Type: "payload", Payload: b.QuickReplyPayload}}
			}
			t.Components = append(t.Components, c)
		}
	}
	return t
}

func ptr[T any](v T) *T { return &v }

func (p *cm) send(ctx context.Context, m *store.Message) (accepted, error) {
	body, err := p.payload(m)
	if err != nil {
		return accepted{}, &SendError{Reason: err.Error(), Err: err}
	}
	b, err := post(ctx, p.c, p.cfg.URL, body, nil)
	if err != nil {
		if se, ok := err.(*SendError); ok && se.Status != 0 {
			se.Reason = cmReason(se.Reason)
		}
		return accepted{}, err
	}
	var ans cmResponse
	if json.Unmarshal(b, &ans) == nil {
		if ans.ErrorCode != 0 {
			return accepted{}, &SendError{Status: http.StatusOK, Reason: cmDetails(ans)}
		}
		for _, mm := range ans.Messages {
			if mm.MessageErrorCode != 0 || strings.EqualFold(mm.Status, "Rejected") {
				return accepted{}, &SendError{Status: http.StatusOK, Reason: cmDetails(ans)}
			}
		}
	}
	ev := store.Event{Status: store.StatusSent, Description: ans.Details}
	if len(ans.Messages) > 0 {
		ev.Name = ans.Messages[0].Status
	}
	// The reference we sent is the alias CM's reports come back with.
	return accepted{ProviderID: m.ID, Event: ev}, nil
}

func cmDetails(ans cmResponse) string {
	parts := []string{}
	if ans.Details != "" {
		parts = append(parts, ans.Details)
	}
	for _, mm := range ans.Messages {
		if mm.MessageDetails != "" {
			parts = append(parts, mm.MessageDetails)
		}
	}
	if ans.ErrorCode != 0 {
		parts = append(parts, "errorCode "+strconv.Itoa(ans.ErrorCode))
	}
	return strings.Join(parts, "; ")
}

// cmReason prefers CM's own "details" over the raw error body.
func cmReason(raw string) string {
	var ans cmResponse
	if json.Unmarshal([]byte(raw), &ans) == nil {
		if d := cmDetails(ans); d != "" {
			return d
		}
	}
	return raw
}
