package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// One JSON shape per kind, whichever provider sent it: contact cards and
// orders are stored in Infobip's camelCase shape (CM passes Meta's
// snake_case through), with order quantities and prices as numbers (CM
// sends them as strings).

// normalizeContacts returns contact cards with camelCase keys
// (formatted_name → formattedName, wa_id → waId, country_code → countryCode).
func normalizeContacts(raw json.RawMessage) json.RawMessage {
	v, err := decodeAny(raw)
	if err != nil {
		return compactJSON(raw)
	}
	out, err := json.Marshal(camelize(v))
	if err != nil {
		return compactJSON(raw)
	}
	return out
}

// normalizeOrder builds {"catalogId","productItems":[{"productRetailerId",
// "quantity","itemPrice","currency"}],"text"} from a catalogue id, the
// items (either provider's keys) and the order's text.
func normalizeOrder(catalogID string, items json.RawMessage, text string) (json.RawMessage, error) {
	v, err := decodeAny(items)
	if err != nil {
		return nil, err
	}
	list, ok := camelize(v).([]any)
	if !ok {
		return nil, fmt.Errorf("must be an array of products")
	}
	for _, it := range list {
		obj, ok := it.(map[string]any)
		if !ok {
			continue
		}
		for _, k := range []string{"quantity", "itemPrice"} {
			if s, ok := obj[k].(string); ok {
				if n, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
					obj[k] = json.Number(strconv.FormatFloat(n, 'f', -1, 64))
				}
			}
		}
	}
	return json.Marshal(struct {
		CatalogID    string `json:"catalogId"`
		ProductItems []any  `json:"productItems"`
		Text         string `json:"text,omitempty"`
	}{catalogID, list, text})
}

func decodeAny(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// camelize renames snake_case object keys to camelCase, all the way down.
func camelize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[camelKey(k)] = camelize(val)
		}
		return out
	case []any:
		for i := range x {
			x[i] = camelize(x[i])
		}
		return x
	}
	return v
}

func camelKey(k string) string {
	if !strings.Contains(k, "_") {
		return k
	}
	parts := strings.Split(k, "_")
	var b strings.Builder
	b.WriteString(parts[0])
	for _, p := range parts[1:] {
		if p == "" {
			continue
		}
		b.WriteString(strings.ToUpper(p[:1]) + p[1:])
	}
	return b.String()
}

// compactJSON is raw without insignificant white space, or a copy of raw
// when it is not valid JSON.
func compactJSON(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return append(json.RawMessage(nil), raw...)
	}
	return buf.Bytes()
}

// flowResponse keeps a flow reply's response whole. Infobip sends an
// object and CM's example shows one; WhatsApp's own format (which CM passes
// on) a string holding JSON, which is unwrapped so agents always see the
// object. An empty value (isEmptyJSON) is none.
func flowResponse(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if isEmptyJSON(raw) {
		return nil
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		inner := bytes.TrimSpace([]byte(s))
		if len(inner) > 0 && (inner[0] == '{' || inner[0] == '[') && json.Valid(inner) {
			return compactJSON(inner)
		}
	}
	return compactJSON(raw)
}
