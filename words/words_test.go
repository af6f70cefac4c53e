package words

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFold(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Müller", "muller"},
		{"JÜRGEN", "jurgen"},
		{"Aïcha Øster-Łódź", "aicha oster-lodz"},
		{"Straße", "strasse"},
		{"plain ascii 42", "plain ascii 42"},
		{"مرحبا", "مرحبا"},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Fold(c.in), c.in)
	}
}

func TestTokens(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"words and an order number", "Where is my order A-12345?", []string{"where", "is", "my", "order", "12345"}},
		{"accents and case fold, repeats once", "Müller MULLER müller", []string{"muller"}},
		{"one-letter words are left out", "a b c de", []string{"de"}},
		{"punctuation splits", "foo.bar/baz_qux", []string{"foo", "bar", "baz", "qux"}},
		{"long runs are cut", strings.Repeat("x", 40), []string{strings.Repeat("x", MaxLen)}},
		{"cut at a character boundary", strings.Repeat("é", 20), []string{strings.Repeat("e", 20)}},
		{"right to left", "مرحبا بالعالم", []string{"مرحبا", "بالعالم"}},
		{"nothing", " -- ", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, Tokens(c.in))
		})
	}
	var many strings.Builder
	for i := 0; i < 2*MaxPerText; i++ {
		many.WriteString("w")
		many.WriteString(strings.Repeat("a", i%7+1))
		many.WriteString(string(rune('a' + i%26)))
		many.WriteString(string(rune('a' + i/26%26)))
		many.WriteByte(' ')
	}
	require.Len(t, Tokens(many.String()), MaxPerText)
}

func TestHighlight(t *testing.T) {
	cases := []struct {
		name    string
		text    string
		tokens  []string
		partial bool
		want    string // hits in [brackets]
	}{
		{"whole words", "Where is my Order #12345?", []string{"order", "12345"}, false, "Where is my [Order] #[12345]?"},
		{"accents", "Herr Müller kommt", []string{"muller"}, false, "Herr [Müller] kommt"},
		{"no partial word", "reorder", []string{"order"}, false, "reorder"},
		{"partial names", "Jürgen Schmidt", []string{"jurg"}, true, "[Jürgen] Schmidt"},
		{"nothing searched", "text", nil, false, "text"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			for _, s := range Highlight(c.text, c.tokens, c.partial) {
				if s.Hit {
					b.WriteString("[" + s.Text + "]")
				} else {
					b.WriteString(s.Text)
				}
			}
			require.Equal(t, c.want, b.String())
		})
	}
}
