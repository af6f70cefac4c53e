package webhook

import (
	"bytes"
	"encoding/json"
	"sort"
)

// keys is the tree of provider fields a handler maps onto the message: a
// key with nil maps whole; a key with a sub-tree maps only those of its own
// keys (when its value is an object).
type keys map[string]keys

// unmapped returns the fields of the JSON object raw that known does not
// map, as a compact JSON object, or nil when there are none. Empty values
// ("", null, {}, []) carry nothing and are skipped. Nothing a provider sends
// is dropped: whatever is not mapped ends up here (providerData).
func unmapped(raw []byte, known keys) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	out := map[string]json.RawMessage{}
	for k, v := range obj {
		if isEmptyJSON(v) {
			continue
		}
		sub, ok := known[k]
		switch {
		case !ok:
			out[k] = compactJSON(v)
		case sub != nil:
			if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '{' {
				if rest := unmapped(t, sub); rest != nil {
					out[k] = rest
				}
			} else {
				out[k] = compactJSON(v)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return marshalSorted(out)
}

// marshalSorted writes an object with its keys in order (json.Marshal of a
// map sorts too; this avoids its reflection for RawMessage values).
func marshalSorted(m map[string]json.RawMessage) json.RawMessage {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(m[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// isEmptyJSON reports whether a value carries nothing: absent, null, "",
// {}, [], or an array of such (CM's "groupings": ["", "", ""]).
func isEmptyJSON(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	switch string(t) {
	case "", "null", `""`, "{}", "[]":
		return true
	}
	if len(t) > 0 && t[0] == '[' {
		var items []json.RawMessage
		if json.Unmarshal(t, &items) != nil {
			return false
		}
		for _, it := range items {
			if !isEmptyJSON(it) {
				return false
			}
		}
		return true
	}
	return false
}
