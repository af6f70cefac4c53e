package web

import (
	"bytes"
	"hash/maphash"
	"html/template"
	"math"
	"strconv"
	"sync"
)

// fragments caches rendered messages (the "msg" template's output) under a
// hash of everything that template reads: the whole msgView. A thread page
// then executes the template only for messages it has not shown in that
// exact state before; the rest is copied. Rendering 200 messages through
// html/template costs several milliseconds of reflection, a copy costs
// microseconds. What is cached is html/template's own escaped output, so
// marking it template.HTML adds nothing unescaped.
type fragments struct {
	mu   sync.Mutex
	seed maphash.Seed
	m    map[uint64]template.HTML
	max  int
}

func newFragments(max int) *fragments {
	return &fragments{seed: maphash.MakeSeed(), m: make(map[uint64]template.HTML), max: max}
}

func (f *fragments) get(k uint64) (template.HTML, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.m[k]
	return h, ok
}

func (f *fragments) put(k uint64, h template.HTML) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.m) >= f.max {
		clear(f.m) // crude but bounded; the next pages refill it
	}
	f.m[k] = h
}

// renderMessages renders a page of message views, from the cache where it can.
func (s *Server) renderMessages(views []*msgView) ([]template.HTML, error) {
	out := make([]template.HTML, len(views))
	var buf bytes.Buffer
	for i, v := range views {
		k := viewKey(s.frags.seed, v)
		if h, ok := s.frags.get(k); ok {
			out[i] = h
			continue
		}
		buf.Reset()
		if err := s.pages.tmpl.ExecuteTemplate(&buf, "msg", v); err != nil {
			return nil, err
		}
		h := template.HTML(buf.String())
		s.frags.put(k, h)
		out[i] = h
	}
	return out, nil
}

// viewKey hashes every field of a msgView, so two views with equal keys
// render the same. TestViewKeyCoversEveryField fails when a field is added
// to msgView (or what it points to) without being hashed here.
func viewKey(seed maphash.Seed, v *msgView) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	str := func(ss ...string) {
		for _, s := range ss {
			h.WriteString(s)
			h.WriteByte(0)
		}
	}
	flag := func(bs ...bool) {
		for _, b := range bs {
			if b {
				h.WriteByte(1)
			} else {
				h.WriteByte(2)
			}
		}
	}
	num := func(n int64) { str(strconv.FormatInt(n, 10)) }
	float := func(f float64) { num(int64(math.Float64bits(f))) }
	mark := func(present bool) { flag(present) }

	str(v.ID, v.Direction, v.Type, v.Status, v.Error, v.Text, v.Caption, v.Sender, v.Class, v.ShownISO, v.ShownText,
		v.MediaKind, v.ContactsJS, v.FlowJSON, v.Template, v.Note, v.NextStep, v.SendAtISO, v.SendAtText, v.ImgAlt)
	num(int64(v.ImgW))
	num(int64(v.ImgH))
	mark(v.Retry != nil)
	if r := v.Retry; r != nil {
		num(int64(r.Attempts))
		str(r.LastError, r.NextISO, r.NextText)
	}
	flag(v.Outbound, v.Deleted, v.ErrorMO)
	str(v.Tick.Symbol, v.Tick.Label, v.Tick.Class)
	num(int64(len(v.Timeline)))
	for _, e := range v.Timeline {
		str(e.Status, e.ISO, e.Time, e.GroupName, e.Name, e.Description, e.Reason, e.Extra)
	}
	num(int64(len(v.Facts)))
	str(v.Facts...)
	str(v.ProviderData)
	num(int64(len(v.Reactions)))
	for _, r := range v.Reactions {
		str(r.Emoji, r.Title)
	}
	mark(v.Sent != nil)
	if s := v.Sent; s != nil {
		sentKey(s, str, flag, num)
	}
	mark(v.Media != nil)
	if m := v.Media; m != nil {
		str(m.ID, m.URL, m.SourceURL, m.ContentType, m.SniffedType, m.FileName, m.SHA256, m.State, m.Error,
			m.MessageID, m.Provider, m.Token, m.CreatedAt.String(), m.NextAt.String(), m.FirstTry.String())
		num(m.Size)
		num(int64(m.Attempts))
		num(int64(m.Width))
		num(int64(m.Height))
		str(m.Thumb)
	}
	mark(v.Location != nil)
	if l := v.Location; l != nil {
		float(l.Latitude)
		float(l.Longitude)
		str(l.Name, l.Address, l.URL)
	}
	mark(v.Interactive != nil)
	if it := v.Interactive; it != nil {
		str(it.Type, it.ID, it.Title, it.Description, it.Payload, string(it.Response))
	}
	mark(v.Quote != nil)
	if q := v.Quote; q != nil {
		str(q.Href, q.Who, q.Preview)
		flag(q.Missing)
	}
	num(int64(len(v.Contacts)))
	for _, c := range v.Contacts {
		str(c.Name, c.Org)
		for _, l := range [][]string{c.Phones, c.Emails, c.Lines} {
			num(int64(len(l)))
			str(l...)
		}
	}
	mark(v.Order != nil)
	if o := v.Order; o != nil {
		str(o.Catalog, o.Text, o.Raw)
		num(int64(len(o.Items)))
		for _, it := range o.Items {
			str(it.Product, it.Quantity, it.Price, it.Currency)
		}
	}
	return h.Sum64()
}
