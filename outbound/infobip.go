package outbound

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"imchannel/config"
	"imchannel/store"
)

// infobip sends the OMNI "advanced" payload (docs/protocols.md#omni-send) with Basic auth.
type infobip struct {
	c   *http.Client
	cfg config.Provider
}

type ibRequest struct {
	ScenarioKey  string          `json:"scenarioKey,omitempty"`
	Destinations []ibDestination `json:"destinations"`
	WhatsApp     json.RawMessage `json:"whatsApp"`
}

type ibDestination struct {
	MessageID string `json:"messageId"`
	To        phone  `json:"to"`
}

type ibResponse struct {
	Messages []struct {
		MessageID string         `json:"messageId"`
		Status    ibStatusAnswer `json:"status"`
	} `json:"messages"`
}

type ibStatusAnswer struct {
	GroupID     int    `json:"groupId"`
	GroupName   string `json:"groupName"`
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Action      string `json:"action"`
}

// Infobip status groups that mean the message will not go out.
var ibRejected = map[string]bool{"REJECTED": true, "UNDELIVERABLE": true, "EXPIRED": true}

func (p *infobip) payload(m *store.Message) ([]byte, error) {
	wa, err := content(m)
	if err != nil {
		return nil, err
	}
	spec := m.Outbound
	if spec == nil {
		spec = &store.OutboundSpec{}
	}
	key := spec.ScenarioKey
	if key == "" {
		key = p.cfg.ScenarioKey
	}
	if spec.ReplyToExternal != "" {
		// replyTo is our extension (CM's reply context); Infobip's OMNI
		// format has no such field.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(wa, &fields); err == nil {
			delete(fields, "replyTo")
			if b, err := json.Marshal(fields); err == nil {
				wa = b
			}
		}
	}
	return json.Marshal(ibRequest{
		ScenarioKey:  key,
		Destinations: []ibDestination{{MessageID: m.ExternalID, To: phone{PhoneNumber: m.To}}},
		WhatsApp:     wa,
	})
}

func (p *infobip) send(ctx context.Context, m *store.Message) (accepted, error) {
	body, err := p.payload(m)
	if err != nil {
		return accepted{}, &SendError{Reason: err.Error(), Err: err}
	}
	b, err := post(ctx, p.c, p.cfg.URL, body, func(r *http.Request) {
		if p.cfg.BasicUser != "" || p.cfg.BasicPassword != "" {
			r.SetBasicAuth(p.cfg.BasicUser, p.cfg.BasicPassword)
		}
	})
	if err != nil {
		return accepted{}, err
	}
	acc := accepted{Event: store.Event{Status: store.StatusSent}}
	var ans ibResponse
	if json.Unmarshal(b, &ans) != nil || len(ans.Messages) == 0 {
		return acc, nil // a 2xx is an acceptance even when we cannot read it
	}
	got := ans.Messages[0]
	st := got.Status
	if ibRejected[strings.ToUpper(st.GroupName)] {
		reason := strings.TrimSpace(st.GroupName + " " + st.Name + ": " + st.Description)
		return accepted{}, &SendError{Status: http.StatusOK, Reason: reason}
	}
	acc.ProviderID = got.MessageID
	acc.Event.GroupName, acc.Event.Name, acc.Event.Description = st.GroupName, st.Name, st.Description
	return acc, nil
}
