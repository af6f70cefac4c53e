package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"

	"imchannel/store"
)

// CheckKeys refuses a JSON document in which one object, at any depth,
// holds two keys that are the same once surrounding spaces and case are
// ignored ("imageUrl" and "imageurl", or a key given twice). Go's decoder
// matches keys without regard to case and keeps the last, so without this
// check one twin could be validated and the other forwarded. The error
// names both keys and where they are.
//
// Call it on a body that has decoded already: that bounds its depth
// (encoding/json refuses more than 10000 levels), and trailing commas are
// tolerated as Unmarshal tolerates them.
func CheckKeys(b []byte) error {
	_, err := DecodeTolerant(b, func(x []byte) error {
		dec := json.NewDecoder(bytes.NewReader(x))
		dec.UseNumber()
		return checkValue(dec, "")
	})
	if err != nil && !errors.Is(err, store.ErrInvalid) {
		return JSONError(err)
	}
	return err
}

func checkValue(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		seen := map[string]string{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			norm := strings.ToLower(strings.TrimSpace(k))
			if prev, dup := seen[norm]; dup {
				field := join(path, strings.TrimSpace(prev))
				if prev == k {
					return Errorf(store.ErrInvalid, "%s is given twice; send each key once", field)
				}
				return Errorf(store.ErrInvalid, "%s is given twice (as %q and %q): keys that differ only in case or surrounding spaces are refused", field, prev, k)
			}
			seen[norm] = k
			if err := checkValue(dec, join(path, strings.TrimSpace(k))); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := checkValue(dec, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
