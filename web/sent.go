package web

import (
	"strconv"
	"strings"

	"imchannel/store"
)

// What an outbound message carried, shown on the thread page (issue 12):
// the link of media sent by URL, and a template's name, language and
// values. Rendered by templates/sent.html; kept apart from the message
// body's own rendering.
type sentView struct {
	// Media sent by URL (imchannel keeps no copy).
	MediaKind, MediaURL, MediaName, MediaType string
	// A template.
	Name, Language                                  string
	HeaderType, HeaderText, HeaderURL, HeaderName   string
	HeaderPlace                                     string // "lat, lon" of a location header
	Body                                            []sentParam
	Buttons                                         []string // "url: value", "quick_reply: payload"
	HasMedia, HasTemplate, HeaderHosted, HeaderLink bool
}

// sentParam is one body value and the placeholder it fills.
type sentParam struct{ N, Value string }

// applySent fills v.Sent for an outbound message; media we only linked to
// is shown here, not by the cached-media renderer.
func applySent(v *msgView, m *store.Message) {
	if m.Direction != store.Outbound {
		return
	}
	s := &sentView{}
	if md := m.Media; md != nil && md.ID == "" && md.SourceURL != "" {
		s.HasMedia = true
		s.MediaKind, s.MediaURL, s.MediaName, s.MediaType = v.MediaKind, md.SourceURL, md.FileName, md.ContentType
		if s.MediaKind == "" {
			s.MediaKind = m.Type
		}
		v.MediaKind = ""
	}
	if t := m.Template; t != nil {
		s.HasTemplate = true
		s.Name, s.Language = t.Name, t.Language
		for i, p := range t.BodyParameters {
			s.Body = append(s.Body, sentParam{N: "{{" + strconv.Itoa(i+1) + "}}", Value: p})
		}
		if h := t.Header; h != nil {
			s.HeaderType, s.HeaderText, s.HeaderURL, s.HeaderName = h.Type, strings.Join(h.Parameters, ", "), h.MediaURL, h.FileName
			s.HeaderHosted = h.MediaID != ""
			s.HeaderLink = h.MediaURL != ""
			if h.Latitude != nil && h.Longitude != nil {
				s.HeaderPlace = strconv.FormatFloat(*h.Latitude, 'f', -1, 64) + ", " + strconv.FormatFloat(*h.Longitude, 'f', -1, 64)
			}
		}
		for _, b := range t.Buttons {
			s.Buttons = append(s.Buttons, b.Type+": "+b.Parameter)
		}
	}
	if s.HasMedia || s.HasTemplate {
		v.Sent = s
	}
}

// sentKey hashes a sentView for viewKey.
func sentKey(s *sentView, str func(...string), flag func(...bool), num func(int64)) {
	str(s.MediaKind, s.MediaURL, s.MediaName, s.MediaType, s.Name, s.Language,
		s.HeaderType, s.HeaderText, s.HeaderURL, s.HeaderName, s.HeaderPlace)
	flag(s.HasMedia, s.HasTemplate, s.HeaderHosted, s.HeaderLink)
	num(int64(len(s.Body)))
	for _, p := range s.Body {
		str(p.N, p.Value)
	}
	num(int64(len(s.Buttons)))
	str(s.Buttons...)
}
