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
// token in the body. Our external id travels as "reference", which CM's
// status reports carry back.
type cm struct {
	c   *http.Client
	cfg config.Provider
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

func cmMedia(u string) map[string]any {
	name := path.Base(u)
	if pu, err := url.Parse(u); err == nil {
		name = path.Base(pu.Path)
	}
	return map[string]any{"mediaName": name, "mediaUri": u, "mimeType": typeByExt(path.Ext(name))}
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
	if t, ok := whatsAppTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		if i := strings.IndexByte(t, ';'); i >= 0 {
			t = t[:i]
		}
		return t
	}
	return "application/octet-stream"
}

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
	from := p.cfg.From
	if from == "" {
		from = m.From
	}
	msg := cmMsg{
		From:            from,
		To:              []cmNumber{{Number: "00" + m.To}},
		Body:            cmBody{Type: "auto", Content: w.text()},
		AllowedChannels: []string{"WhatsApp"},
		Reference:       m.ExternalID,
	}
	var conv []map[string]any
	switch {
	case w.TemplateName != "":
		msg.Body.Content = m.Text
		conv = append(conv, map[string]any{"template": map[string]any{"whatsapp": cmTemplate(w)}})
	case w.mediaURL() != "":
		if w.text() != "" {
			conv = append(conv, map[string]any{"text": w.text()})
		} else {
			msg.Body.Content = w.mediaURL()
		}
		conv = append(conv, map[string]any{"media": cmMedia(w.mediaURL())})
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

// cmTemplate is the WhatsApp template object CM expects, built from the
// OMNI template fields.
func cmTemplate(w *whatsApp) map[string]any {
	t := map[string]any{
		"element_name": w.TemplateName,
		"language":     map[string]any{"policy": "deterministic", "code": w.Language},
	}
	var comps []map[string]any
	text := func(s string) map[string]any { return map[string]any{"type": "text", "text": s} }
	var body []map[string]any
	if md := w.MediaTemplateData; md != nil {
		if h := md.Header; h != nil {
			var param map[string]any
			switch {
			case h.TextPlaceholder != "":
				param = text(h.TextPlaceholder)
			case h.ImageURL != "":
				param = map[string]any{"type": "image", "media": cmMedia(h.ImageURL)}
			case h.VideoURL != "":
				param = map[string]any{"type": "video", "media": cmMedia(h.VideoURL)}
			case h.DocumentURL != "":
				doc := cmMedia(h.DocumentURL)
				if h.DocumentFilename != "" {
					doc["mediaName"] = h.DocumentFilename
				}
				param = map[string]any{"type": "document", "media": doc}
			case h.Latitude != nil:
				param = map[string]any{"type": "location", "location": map[string]any{"latitude": *h.Latitude, "longitude": *h.Longitude}}
			}
			if param != nil {
				comps = append(comps, map[string]any{"type": "header", "parameters": []map[string]any{param}})
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
		comps = append(comps, map[string]any{"type": "body", "parameters": body})
	}
	if md := w.MediaTemplateData; md != nil {
		for i, b := range md.Buttons {
			if b.URLPlaceholder != "" {
				comps = append(comps, map[string]any{"type": "button", "sub_type": "url", "index": strconv.Itoa(i),
					"parameters": []map[string]any{text(b.URLPlaceholder)}})
			} else {
				comps = append(comps, map[string]any{"type": "button", "sub_type": "quick_reply", "index": strconv.Itoa(i),
					"parameters": []map[string]any{{"type": "payload", "payload": b.QuickReplyPayload}}})
			}
		}
	}
	if len(comps) > 0 {
		t["components"] = comps
	}
	return t
}

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
	return accepted{Event: ev}, nil
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
