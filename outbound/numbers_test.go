package outbound_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

const (
	numberA = "31201110000" // KEY-A, also default_number
	numberB = "31202220000" // KEY-B
)

// seed002Reply is CEC's send request shape (docs/protocols.md#omni-send): no scenarioKey.
func seed002Reply(t *testing.T, messageID string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile("testdata/omni/seed002_text_reply.json")
	require.NoError(t, err)
	var c struct {
		Request map[string]any `json:"request"`
	}
	require.NoError(t, json.Unmarshal(b, &c))
	c.Request["destinations"].([]any)[0].(map[string]any)["messageId"] = messageID
	out, err := json.Marshal(c.Request)
	require.NoError(t, err)
	return out
}

// inbound stores a customer's text to a business number, received at.
func (e *env) inbound(id, customer, businessNumber string, at time.Time) {
	e.t.Helper()
	_, err := e.st.SaveInbound(context.Background(), []*store.Message{{
		Provider: store.ProviderInfobip, ExternalID: id, From: customer, To: businessNumber,
		Type: store.TypeText, Text: "hello", ReceivedAt: at,
	}})
	require.NoError(e.t, err)
}

// A reply without a scenarioKey leaves from the business number the
// customer wrote to last, with that number's scenarioKey, and the window is
// checked on that conversation; the stored from is the number used.
func TestReplyFromTheNumberTheCustomerWroteTo(t *testing.T) {
	for _, kind := range []string{store.ProviderInfobip, store.ProviderCM} {
		t.Run(kind, func(t *testing.T) {
			answer := infobipOK
			if kind == store.ProviderCM {
				answer = cmOK
			}
			prov := newFake(t, answer)
			cfg := testConfig(kind, prov.URL)
			cfg.Provider.DefaultNumber = numberA
			cfg.Provider.ScenarioKey = "KEY-A"
			cfg.Provider.Numbers = map[string]string{"KEY-A": numberA, "KEY-B": "+31 20 222 0000"}
			cfg.Outbox.CheckWindow = true
			e := newEnv(t, cfg, prov)
			e.dispatch()
			now := time.Now()

			// The customer wrote only to B: before, the reply went from A
			// and was refused ("last inbound message: never").
			e.inbound("in-1", "41793026727", numberB, now.Add(-2*time.Hour))
			e.send(seed002Reply(t, "reply-1"))
			m := e.waitStatus("reply-1", store.StatusSent)
			require.Equal(t, numberB, m.From)
			require.Equal(t, "KEY-B", m.Outbound.ScenarioKey)
			conv, err := e.st.ConversationByNumbers(numberB, "41793026727")
			require.NoError(t, err)
			require.Equal(t, conv.ID, m.ConversationID)

			// Then to A, more recently: the next reply goes from A.
			e.inbound("in-2", "41793026727", numberA, now.Add(-time.Hour))
			e.send(seed002Reply(t, "reply-2"))
			m2 := e.waitStatus("reply-2", store.StatusSent)
			require.Equal(t, numberA, m2.From)
			require.Equal(t, "KEY-A", m2.Outbound.ScenarioKey)

			rs := prov.requests()
			require.Len(t, rs, 2)
			for i, want := range []struct{ key, from string }{{"KEY-B", numberB}, {"KEY-A", numberA}} {
				var got struct {
					ScenarioKey string `json:"scenarioKey"`
					Messages    struct {
						Msg []struct {
							From string `json:"from"`
						} `json:"msg"`
					} `json:"messages"`
				}
				require.NoError(t, json.Unmarshal(rs[i].Body, &got))
				if kind == store.ProviderCM {
					require.Equal(t, "00"+want.from, got.Messages.Msg[0].From, "CM from is the conversation's business number, not provider.from")
				} else {
					require.Equal(t, want.key, got.ScenarioKey)
				}
			}

			// A named scenarioKey still decides.
			req := text("reply-3", "41793026727", "x")
			req["scenarioKey"] = "KEY-B"
			e.send(req)
			require.Equal(t, numberB, e.message("reply-3").From)

			// A customer who never wrote gets the default number and the
			// window's refusal.
			status, _, b := e.post(sendPath, text("reply-4", "41790000000", "x"), okAuth)
			require.Equal(t, http.StatusBadRequest, status, "%s", b)
			require.Contains(t, errorOf(t, b), "customer-service window")
		})
	}
}

// The template endpoint sends with the scenarioKey mapped to
// servicePhoneNumber; a number nothing maps refuses in the template endpoint's shape.
func TestTemplateServiceNumber(t *testing.T) {
	prov := newFake(t, infobipOK)
	cfg := testConfig("infobip", prov.URL)
	cfg.Provider.Numbers = map[string]string{"KEY-A": numberA, "KEY-B": numberB}
	cfg.Provider.ScenarioKey = "KEY-A"
	e := newEnv(t, cfg, prov)
	e.dispatch()
	tmpl := func(service string) map[string]any {
		return map[string]any{"customerPhoneNumber": "393403603062", "servicePhoneNumber": service,
			"templateName": "shipping_confirmation", "language": "en_GB", "header": nil,
			"headerData": []string{"Griffin"}, "bodyData": []string{"5"}, "dynamicUrl": []string{}}
	}
	status, _, b := e.post(templatePath, tmpl("+"+numberB), okAuth)
	require.Equal(t, 200, status, "%s", b)
	rs := prov.waitRequests(t, 1)
	var got struct {
		ScenarioKey string `json:"scenarioKey"`
	}
	require.NoError(t, json.Unmarshal(rs[0].Body, &got))
	require.Equal(t, "KEY-B", got.ScenarioKey)
	c, err := e.st.ConversationByNumbers(numberB, "393403603062")
	require.NoError(t, err)
	require.Equal(t, numberB, c.Business)

	status, _, b = e.post(templatePath, tmpl("31209990000"), okAuth)
	require.Equal(t, http.StatusBadRequest, status)
	var ans struct {
		Result bool    `json:"result"`
		Error  *string `json:"error"`
	}
	require.NoError(t, json.Unmarshal(b, &ans), "%s", b)
	require.False(t, ans.Result)
	require.NotNil(t, ans.Error)
	require.Contains(t, *ans.Error, "servicePhoneNumber 31209990000 is not a configured business number")
}
