package outbound

import (
	"errors"
	"fmt"
	"sort"

	"imchannel/store"
)

// Which business number a message leaves from, and with which scenarioKey.
//
// [provider.numbers] maps scenarioKey → business number. A send that names
// its scenarioKey uses that key's number. One that does not (docs/protocols.md#omni-send:
// CTLive never sends one) answers the customer from the business number
// the customer wrote to last, with the scenarioKey mapped to that number,
// so the reply lands in the same chat and the 24-hour window is checked on
// that conversation. The template endpoint names its number
// (servicePhoneNumber) and must find it configured.

// businessNumbers lists every configured business number: the values of
// [provider.numbers], default_number and the digits of from.
func (a *API) businessNumbers() []string {
	p := a.d.Config.Provider
	var out []string
	for _, k := range sortedKeys(p.Numbers) {
		out = append(out, p.Numbers[k])
	}
	return append(out, p.DefaultNumber, p.From)
}

// keyFor is the scenarioKey mapped to a business number: [provider]
// scenario_key when it maps there, else the first such key in order.
// mapped is false when no key maps to it; a number that is only
// default_number or from then answers "" (scenario_key).
func (a *API) keyFor(business string) (key string, known bool) {
	p := a.d.Config.Provider
	if p.ScenarioKey != "" && store.NormalizeNumber(p.Numbers[p.ScenarioKey]) == business {
		return p.ScenarioKey, true
	}
	for _, k := range sortedKeys(p.Numbers) {
		if store.NormalizeNumber(p.Numbers[k]) == business {
			return k, true
		}
	}
	for _, n := range []string{p.DefaultNumber, p.From} {
		if d := store.NormalizeNumber(n); d != "" && d == business {
			return "", true
		}
	}
	return "", false
}

// routeReplies points each message of a send without a scenarioKey at
// the business number its customer wrote to last, with that number's
// scenarioKey. A customer who never wrote keeps the default number (whose
// window check then refuses free-form text).
func (a *API) routeReplies(msgs []*store.Message, scenarioKey string) error {
	if scenarioKey != "" {
		return nil
	}
	numbers := a.businessNumbers()
	for _, m := range msgs {
		c, err := a.d.Store.LatestInbound(m.To, numbers)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		key, _ := a.keyFor(c.Business)
		m.From = c.Business
		m.Outbound.ScenarioKey = key
	}
	return nil
}

// templateKey is the scenarioKey of the template endpoint's
// servicePhoneNumber (digits); a number not configured is refused.
func (a *API) templateKey(service string) (string, error) {
	key, ok := a.keyFor(service)
	if !ok {
		return "", fmt.Errorf("servicePhoneNumber %s is not a configured business number: map a scenarioKey to it under [provider.numbers]", service)
	}
	return key, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
