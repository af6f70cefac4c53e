package outbound

import (
	"imchannel/store"
)

// What agents see of what was sent (issue 12): the media link and the
// template with its values, kept on the message itself.

// sentMedia is the attachment of an OMNI media message: its URL, the type
// its name shows and, for a document, its name (the text: docs/protocols.md#infobip-inbound).
func sentMedia(w *whatsApp) *store.Media {
	u := w.mediaURL()
	if u == "" {
		return nil
	}
	md := &store.Media{SourceURL: u, ContentType: typeByExt(extOf(urlBase(u)))}
	if w.FileURL != "" {
		md.FileName = w.text()
		if md.FileName == "" {
			md.FileName = urlBase(u)
		}
		if t := typeByExt(extOf(md.FileName)); t != octetStream {
			md.ContentType = t
		}
	}
	if md.ContentType == octetStream {
		md.ContentType = ""
	}
	return md
}

// templateInfo is a template message's name, language and values, from
// the whatsApp object it is sent with.
func templateInfo(w *whatsApp) *store.Template {
	if w.TemplateName == "" {
		return nil
	}
	t := &store.Template{Name: w.TemplateName, Language: w.Language}
	md := w.MediaTemplateData
	if md != nil && md.Body != nil {
		for _, p := range md.Body.Placeholders {
			t.BodyParameters = append(t.BodyParameters, *p)
		}
	} else {
		for _, d := range w.TemplateData {
			t.BodyParameters = append(t.BodyParameters, *d)
		}
	}
	if md == nil {
		return t
	}
	if h := md.Header; h != nil {
		th := &store.TemplateHeader{}
		switch {
		case h.TextPlaceholder != "":
			th.Type, th.Parameters = "text", []string{h.TextPlaceholder}
		case h.ImageURL != "":
			th.Type, th.MediaURL = "image", h.ImageURL
		case h.VideoURL != "":
			th.Type, th.MediaURL = "video", h.VideoURL
		case h.DocumentURL != "":
			th.Type, th.MediaURL, th.FileName = "document", h.DocumentURL, h.DocumentFilename
		case h.Latitude != nil:
			th.Type, th.Latitude, th.Longitude = "location", h.Latitude, h.Longitude
		}
		if th.Type != "" {
			t.Header = th
		}
	}
	for i, b := range md.Buttons {
		if b.URLPlaceholder != "" {
			t.Buttons = append(t.Buttons, store.TemplateButton{Index: i, Type: "url", Parameter: b.URLPlaceholder})
		} else {
			t.Buttons = append(t.Buttons, store.TemplateButton{Index: i, Type: "quick_reply", Parameter: b.QuickReplyPayload})
		}
	}
	return t
}
