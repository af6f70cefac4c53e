package webhook

// scanUnknown walks a JSON post without decoding it and reports, for each
// element of its top-level "results" array, whether it carries a key that
// known does not list at that place. It lets the common post, whose every
// field the handler maps, take one typed decode; a post with anything else
// takes the slower path that keeps it as providerData. Keys with escapes
// count as unknown (the slow path reads them properly). unknown is reused
// for the answer.
func scanUnknown(b []byte, known keys, unknown []bool) ([]bool, bool) {
	s := &jscan{b: b}
	s.ws()
	if !s.eat('{') {
		return nil, false
	}
	for first := true; ; first = false {
		s.ws()
		if s.eat('}') {
			return unknown, true
		}
		if !first && !s.eat(',') {
			return nil, false
		}
		s.ws()
		key, esc, ok := s.str()
		if !ok {
			return nil, false
		}
		s.ws()
		if !s.eat(':') {
			return nil, false
		}
		s.ws()
		if esc || string(key) != "results" || s.peek() != '[' {
			if !s.skip() {
				return nil, false
			}
			continue
		}
		s.i++
		unknown = unknown[:0]
		for n := 0; ; n++ {
			s.ws()
			if s.eat(']') {
				break
			}
			if n > 0 && !s.eat(',') {
				return nil, false
			}
			s.ws()
			if s.peek() != '{' {
				unknown = append(unknown, false)
				if !s.skip() {
					return nil, false
				}
				continue
			}
			u, ok := s.object(known)
			if !ok {
				return nil, false
			}
			unknown = append(unknown, u)
		}
	}
}

type jscan struct {
	b []byte
	i int
}

func (s *jscan) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jscan) eat(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str reads a string; raw is its bytes between the quotes.
func (s *jscan) str() (raw []byte, escaped, ok bool) {
	if !s.eat('"') {
		return nil, false, false
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, true
		case '\\':
			escaped = true
			s.i += 2
			continue
		}
		s.i++
	}
	return nil, false, false
}

// object reads an object whose keys known lists (nil: anything goes).
func (s *jscan) object(known keys) (unknown, ok bool) {
	if !s.eat('{') {
		return false, false
	}
	for first := true; ; first = false {
		s.ws()
		if s.eat('}') {
			return unknown, true
		}
		if !first && !s.eat(',') {
			return false, false
		}
		s.ws()
		key, esc, ok := s.str()
		if !ok {
			return false, false
		}
		s.ws()
		if !s.eat(':') {
			return false, false
		}
		s.ws()
		sub, listed := known[string(key)]
		if esc || !listed {
			// null carries nothing; anything else is kept by the slow path.
			if esc || s.peek() != 'n' {
				unknown = true
			}
			if !s.skip() {
				return false, false
			}
			continue
		}
		if sub != nil && s.peek() == '{' {
			u, ok := s.object(sub)
			if !ok {
				return false, false
			}
			unknown = unknown || u
			continue
		}
		if !s.skip() {
			return false, false
		}
	}
}

// skip passes over one value of any kind.
func (s *jscan) skip() bool {
	switch c := s.peek(); c {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	default:
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return s.i > start
			}
			s.i++
		}
		return s.i > start
	}
}
