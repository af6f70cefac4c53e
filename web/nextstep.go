package web

import "strings"

// nextSteps turn a failure reason into what an agent can do about it. The
// reasons are the providers' texts (Infobip status and error names, CM
// error descriptions, WhatsApp Cloud API error codes passed on by either)
// and the dispatcher's own; the first rule whose words all occur wins.
var nextSteps = []struct {
	words []string // lower case, all must occur
	step  string
}{
	// Before the window rules: its text names the deadline ("24h0m0s").
	{[]string{"gave up after"}, "the provider could not be reached for too long: send again, and tell your administrator if it keeps happening"},
	{[]string{"131047"}, "outside the 24 h window: send a template"},
	{[]string{"re-engagement"}, "outside the 24 h window: send a template"},
	{[]string{"24 hour"}, "outside the 24 h window: send a template"},
	{[]string{"customer-service window"}, "outside the 24 h window: send a template"},
	{[]string{"outside", "window"}, "outside the 24 h window: send a template"},
	{[]string{"132001"}, "the template does not exist in this language: check its name and language with your administrator"},
	{[]string{"132000"}, "the template's parameters do not match: check the number of values sent"},
	{[]string{"template"}, "the template was refused: check its name, language and parameters"},
	{[]string{"131026"}, "the number cannot receive WhatsApp messages: contact the customer another way"},
	{[]string{"not a whatsapp"}, "the number cannot receive WhatsApp messages: contact the customer another way"},
	{[]string{"undeliverable"}, "the number cannot receive WhatsApp messages: contact the customer another way"},
	{[]string{"invalid", "number"}, "the number looks wrong: check it with the customer"},
	{[]string{"destination"}, "the number looks wrong: check it with the customer"},
	{[]string{"131056"}, "too many messages to this customer in a short time: wait a minute and send again"},
	{[]string{"rate"}, "too many messages in a short time: wait a minute and send again"},
	{[]string{"credit"}, "the provider account is out of credit: tell your administrator"},
	{[]string{"blocked"}, "the provider account or sender is blocked: tell your administrator"},
	{[]string{"answered 401"}, "the provider refused imchannel's credentials: tell your administrator"},
	{[]string{"answered 403"}, "the provider refused imchannel's credentials: tell your administrator"},
	{[]string{"131051"}, "WhatsApp does not take this kind of message: send text or another format"},
	{[]string{"unsupported"}, "WhatsApp does not take this kind of message: send text or another format"},
	{[]string{"media"}, "the attachment could not be fetched or is not accepted: check the file and send again"},
	{[]string{"expired"}, "the message expired before it reached the phone (offline for long): send again later"},
	{[]string{"internal error"}, "imchannel failed to send it: tell your administrator"},
}

// nextStep is the advice for a failure reason; a reason no rule knows gets
// a general one rather than none.
func nextStep(reason string) string {
	r := strings.ToLower(reason)
	for _, n := range nextSteps {
		all := true
		for _, w := range n.words {
			if !strings.Contains(r, w) {
				all = false
				break
			}
		}
		if all {
			return n.step
		}
	}
	return "send it again; if it fails again, tell your administrator with the reason above"
}
