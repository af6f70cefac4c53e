package outbound

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	"imchannel/store"
)

// whatsApp is the OMNI "whatsApp" object of seeds 000 and 002.
type whatsApp struct {
	Text              *string            `json:"text,omitempty"`
	ImageURL          string             `json:"imageUrl,omitempty"`
	FileURL           string             `json:"fileUrl,omitempty"`
	AudioURL          string             `json:"audioUrl,omitempty"`
	VideoURL          string             `json:"videoUrl,omitempty"`
	LocationName      string             `json:"locationName,omitempty"`
	Address           string             `json:"address,omitempty"`
	Latitude          *float64           `json:"latitude,omitempty"`
	Longitude         *float64           `json:"longitude,omitempty"`
	TemplateName      string             `json:"templateName,omitempty"`
	TemplateData      []*string          `json:"templateData,omitempty"`
	Language          string             `json:"language,omitempty"`
	MediaTemplateData *mediaTemplateData `json:"mediaTemplateData,omitempty"`
	// ReplyTo is an imchannel extension: the external id of the inbound
	// message this answers (CM sends it as context.message_id).
	ReplyTo string `json:"replyTo,omitempty"`
}

type mediaTemplateData struct {
	Header  *templateHeader  `json:"header,omitempty"`
	Body    *templateBody    `json:"body,omitempty"`
	Buttons []templateButton `json:"buttons,omitempty"`
}

type templateHeader struct {
	TextPlaceholder  string   `json:"textPlaceholder,omitempty"`
	ImageURL         string   `json:"imageUrl,omitempty"`
	VideoURL         string   `json:"videoUrl,omitempty"`
	DocumentURL      string   `json:"documentUrl,omitempty"`
	DocumentFilename string   `json:"documentFilename,omitempty"`
	Latitude         *float64 `json:"latitude,omitempty"`
	Longitude        *float64 `json:"longitude,omitempty"`
}

type templateBody struct {
	Placeholders []*string `json:"placeholders"`
}

type templateButton struct {
	URLPlaceholder    string `json:"urlPlaceholder,omitempty"`
	QuickReplyPayload string `json:"quickReplyPayload,omitempty"`
}

// Limits from CEC's send API (docs/protocols.md#omni-send; and WhatsApp's own text limit).
const (
	maxURL      = 2048
	maxLocation = 1000
	maxText     = 4096
)

// normalizeWhatsApp decodes the raw whatsApp object, accepting keys with
// stray surrounding spaces ("templateName " as CTLive's page prints it),
// and returns the typed value and the normalised JSON kept for dispatch.
func normalizeWhatsApp(raw json.RawMessage) (*whatsApp, json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, fmt.Errorf("whatsApp is required")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, nil, fmt.Errorf("whatsApp must be an object")
	}
	norm := make(map[string]json.RawMessage, len(fields))
	for k, v := range fields {
		nk := strings.TrimSpace(k)
		if _, dup := norm[nk]; dup {
			return nil, nil, fmt.Errorf("whatsApp.%s is given twice (with and without surrounding spaces)", nk)
		}
		norm[nk] = v
	}
	b, err := json.Marshal(norm)
	if err != nil {
		return nil, nil, fmt.Errorf("whatsApp: %v", err)
	}
	var w whatsApp
	if err := json.Unmarshal(b, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, nil, fmt.Errorf("whatsApp.%s: expected %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return nil, nil, fmt.Errorf("whatsApp: %v", err)
	}
	// What is kept for dispatch is the typed value itself, re-encoded: the
	// object that is validated is exactly the one forwarded, at every
	// level, and keys it does not define (or spells in another case) cannot
	// ride along unchecked.
	out, err := json.Marshal(&w)
	if err != nil {
		return nil, nil, fmt.Errorf("whatsApp: %v", err)
	}
	return &w, out, nil
}

// validate applies CEC's send API rules; errors name the field.
func (w *whatsApp) validate() error {
	media := 0
	for _, u := range []struct {
		field, url string
		exts       []string
	}{
		{"imageUrl", w.ImageURL, []string{".jpg", ".jpeg", ".png"}},
		{"fileUrl", w.FileURL, nil},
		{"audioUrl", w.AudioURL, []string{".aac"}},
		{"videoUrl", w.VideoURL, []string{".mp4"}},
	} {
		if u.url == "" {
			continue
		}
		media++
		if err := checkURL("whatsApp."+u.field, u.url, u.exts); err != nil {
			return err
		}
	}
	if media > 1 {
		return fmt.Errorf("whatsApp: only one of imageUrl, fileUrl, audioUrl and videoUrl may be given")
	}
	if w.Text != nil && utf8.RuneCountInString(*w.Text) > maxText {
		return fmt.Errorf("whatsApp.text is longer than %d characters", maxText)
	}
	if utf8.RuneCountInString(w.LocationName) > maxLocation {
		return fmt.Errorf("whatsApp.locationName is longer than %d characters", maxLocation)
	}
	if utf8.RuneCountInString(w.Address) > maxLocation {
		return fmt.Errorf("whatsApp.address is longer than %d characters", maxLocation)
	}
	if err := checkLatLon("whatsApp", w.Latitude, w.Longitude); err != nil {
		return err
	}
	if w.Latitude == nil && (w.LocationName != "" || w.Address != "") && w.TemplateName == "" && w.text() == "" && media == 0 {
		return fmt.Errorf("whatsApp: a location needs latitude and longitude")
	}
	for i, v := range w.TemplateData {
		if v == nil {
			return fmt.Errorf("whatsApp.templateData[%d] is null", i)
		}
	}
	if w.TemplateData != nil && w.TemplateName == "" {
		return fmt.Errorf("whatsApp.templateData needs templateName")
	}
	if w.MediaTemplateData != nil {
		if w.TemplateName == "" {
			return fmt.Errorf("whatsApp.mediaTemplateData needs templateName")
		}
		if err := w.MediaTemplateData.validate(); err != nil {
			return err
		}
	}
	if w.Language != "" && w.TemplateName == "" {
		return fmt.Errorf("whatsApp.language needs templateName")
	}
	if w.TemplateName == "" && w.text() == "" && media == 0 && w.Latitude == nil {
		return fmt.Errorf("whatsApp has no content: give text, imageUrl, fileUrl, audioUrl, videoUrl, latitude/longitude or templateName")
	}
	return nil
}

func (m *mediaTemplateData) validate() error {
	if h := m.Header; h != nil {
		kinds := 0
		if h.TextPlaceholder != "" {
			kinds++
		}
		if h.ImageURL != "" {
			kinds++
			if err := checkURL("whatsApp.mediaTemplateData.header.imageUrl", h.ImageURL, []string{".jpg", ".jpeg", ".png"}); err != nil {
				return err
			}
		}
		if h.VideoURL != "" {
			kinds++
			if err := checkURL("whatsApp.mediaTemplateData.header.videoUrl", h.VideoURL, []string{".mp4"}); err != nil {
				return err
			}
		}
		if h.DocumentURL != "" {
			kinds++
			if err := checkURL("whatsApp.mediaTemplateData.header.documentUrl", h.DocumentURL, nil); err != nil {
				return err
			}
		}
		if h.Latitude != nil || h.Longitude != nil {
			kinds++
			if err := checkLatLon("whatsApp.mediaTemplateData.header", h.Latitude, h.Longitude); err != nil {
				return err
			}
		}
		if kinds == 0 {
			return fmt.Errorf("whatsApp.mediaTemplateData.header is empty: give textPlaceholder, imageUrl, videoUrl or latitude/longitude")
		}
		if kinds > 1 {
			return fmt.Errorf("whatsApp.mediaTemplateData.header: give only one of textPlaceholder, imageUrl, videoUrl, documentUrl or latitude/longitude")
		}
	}
	if b := m.Body; b != nil {
		if b.Placeholders == nil {
			return fmt.Errorf("whatsApp.mediaTemplateData.body.placeholders must not be null (an empty array is fine)")
		}
		for i, p := range b.Placeholders {
			if p == nil {
				return fmt.Errorf("whatsApp.mediaTemplateData.body.placeholders[%d] is null", i)
			}
			if *p == "" {
				return fmt.Errorf("whatsApp.mediaTemplateData.body.placeholders[%d] is empty", i)
			}
		}
	}
	for i, b := range m.Buttons {
		switch {
		case b.URLPlaceholder == "" && b.QuickReplyPayload == "":
			return fmt.Errorf("whatsApp.mediaTemplateData.buttons[%d] needs urlPlaceholder or quickReplyPayload", i)
		case b.URLPlaceholder != "" && b.QuickReplyPayload != "":
			return fmt.Errorf("whatsApp.mediaTemplateData.buttons[%d] has both urlPlaceholder and quickReplyPayload", i)
		}
	}
	return nil
}

func (w *whatsApp) text() string {
	if w.Text == nil {
		return ""
	}
	return *w.Text
}

// kind is the message type the content makes.
func (w *whatsApp) kind() string {
	switch {
	case w.TemplateName != "":
		return store.TypeTemplate
	case w.ImageURL != "":
		return store.TypeImage
	case w.FileURL != "":
		return store.TypeDocument
	case w.AudioURL != "":
		return store.TypeAudio
	case w.VideoURL != "":
		return store.TypeVideo
	case w.Latitude != nil:
		return store.TypeLocation
	}
	return store.TypeText
}

// mediaURL is the URL of the message's attachment, if any.
func (w *whatsApp) mediaURL() string {
	for _, u := range []string{w.ImageURL, w.FileURL, w.AudioURL, w.VideoURL} {
		if u != "" {
			return u
		}
	}
	return ""
}

func checkURL(field, raw string, exts []string) error {
	if len(raw) > maxURL {
		return fmt.Errorf("%s is longer than %d characters", field, maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s must be an http or https URL", field)
	}
	if exts == nil {
		return nil
	}
	ext := strings.ToLower(path.Ext(u.Path))
	if ext == "" {
		return nil // the URL does not show its type
	}
	for _, e := range exts {
		if ext == e {
			return nil
		}
	}
	want := make([]string, len(exts))
	for i, e := range exts {
		want[i] = strings.ToUpper(strings.TrimPrefix(e, "."))
	}
	return fmt.Errorf("%s has type %s; must be %s", field, strings.ToUpper(strings.TrimPrefix(ext, ".")), strings.Join(want, ", "))
}

func checkLatLon(field string, lat, lon *float64) error {
	if (lat == nil) != (lon == nil) {
		return fmt.Errorf("%s: latitude and longitude must be given together", field)
	}
	if lat == nil {
		return nil
	}
	if *lat < -90 || *lat > 90 {
		return fmt.Errorf("%s.latitude %v is outside -90..90", field, *lat)
	}
	if *lon < -180 || *lon > 180 {
		return fmt.Errorf("%s.longitude %v is outside -180..180", field, *lon)
	}
	return nil
}
