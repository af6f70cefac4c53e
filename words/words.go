// Package words turns text into what searches compare: folded (lower case,
// accents dropped, so "Müller" and "muller" are one word) and cut into
// tokens at anything that is not a letter or a digit. The store's text
// index and the migration that builds it for older files share it, so both
// cut text the same way.
package words

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Limits of the index: shorter tokens are too common to be worth a posting
// list, longer ones are cut (a key must stay small), and a message adds at
// most MaxPerText distinct tokens.
const (
	MinLen     = 2
	MaxLen     = 32
	MaxPerText = 512
)

// letters that do not decompose into a base letter and a mark.
var special = strings.NewReplacer("ß", "ss", "ø", "o", "Ø", "o", "ł", "l", "Ł", "l", "đ", "d", "Đ", "d",
	"æ", "ae", "Æ", "ae", "œ", "oe", "Œ", "oe", "ı", "i", "þ", "th")

// Fold lower-cases s and drops its accents: "Jürgen Øster" → "jurgen oster".
func Fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, special.Replace(s))
	if err != nil {
		out = s
	}
	return strings.ToLower(out)
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }

// Tokens returns the distinct index tokens of s, in order of first
// appearance: folded runs of letters and digits, at least MinLen and at
// most MaxLen bytes (longer runs are cut at a character boundary).
func Tokens(s string) []string {
	f := Fold(s)
	var out []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(f, func(r rune) bool { return !isWord(r) }) {
		w = Cut(w)
		if utf8.RuneCountInString(w) < MinLen || seen[w] {
			continue
		}
		seen[w] = true
		out = append(out, w)
		if len(out) == MaxPerText {
			break
		}
	}
	return out
}

// Cut shortens a token to at most MaxLen bytes at a character boundary.
func Cut(w string) string {
	if len(w) <= MaxLen {
		return w
	}
	i := MaxLen
	for i > 0 && !utf8.RuneStart(w[i]) {
		i--
	}
	return w[:i]
}

// Span is a piece of a text, marked when it is one of the words searched.
type Span struct {
	Text string
	Hit  bool
}

// Highlight cuts text into spans, marking every run of letters and digits
// whose folded (and cut) form is one of tokens, or, with partial, contains
// one of them.
func Highlight(text string, tokens []string, partial bool) []Span {
	if len(tokens) == 0 {
		return []Span{{Text: text}}
	}
	var out []Span
	add := func(s string, hit bool) {
		if s == "" {
			return
		}
		if n := len(out); n > 0 && out[n-1].Hit == hit {
			out[n-1].Text += s
			return
		}
		out = append(out, Span{Text: s, Hit: hit})
	}
	start := -1
	flush := func(end int) {
		w := text[start:end]
		f := Cut(Fold(w))
		hit := false
		for _, t := range tokens {
			if f == t || (partial && strings.Contains(f, t)) {
				hit = true
				break
			}
		}
		add(w, hit)
		start = -1
	}
	last := 0
	for i, r := range text {
		if isWord(r) {
			if start < 0 {
				add(text[last:i], false)
				start = i
			}
			continue
		}
		if start >= 0 {
			flush(i)
			last = i
		}
	}
	if start >= 0 {
		flush(len(text))
	} else {
		add(text[last:], false)
	}
	return out
}
