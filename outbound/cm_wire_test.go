package outbound_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

type cmWireCase struct {
	Request json.RawMessage `json:"request"`
	CM      json.RawMessage `json:"cm"`
}

func loadCMCase(t *testing.T, name string) cmWireCase {
	t.Helper()
	b, err := os.ReadFile("testdata/cm/" + name + ".json")
	require.NoError(t, err)
	var c cmWireCase
	require.NoError(t, json.Unmarshal(b, &c))
	return c
}

// What goes to CM, byte for byte as JSON, for the shapes CM's docs and SDKs
// describe: our ULID as the reference (CM takes 1-32 alphanumerics), the
// business number as from, a document's name as its mediaName with the
// mime type from the name, and templates with the SDK's types.
func TestCMWire(t *testing.T) {
	t.Run("document named by its text", func(t *testing.T) {
		c := loadCMCase(t, "document_named")
		prov := newFake(t, cmOK)
		e := newEnv(t, testConfig("cm", prov.URL), prov)
		e.dispatch()
		e.send(c.Request)
		m := e.waitStatus("5a3c1f0e-9b7d-4c2e-8f61-2d4b9e0a7c13", store.StatusSent)
		rs := prov.requests()
		require.Len(t, rs, 1, "one CM message: the name is not sent as a chat message of its own")
		require.JSONEq(t, strings.ReplaceAll(string(c.CM), "{{ourId}}", m.ID), string(rs[0].Body))
	})
	t.Run("template with a hosted document header", func(t *testing.T) {
		c := loadCMCase(t, "template_document_header")
		prov := newFake(t, cmOK)
		cfg := testConfig("cm", prov.URL)
		cfg.Provider.Namespace = "c9a1d2e3_f4b5_4c6d_8e7f_0a1b2c3d4e5f"
		e := newEnv(t, cfg, prov)
		e.dispatch()
		status, _, b := e.post(templatePath, c.Request, okAuth)
		require.Equal(t, 200, status, "%s", b)
		rs := prov.waitRequests(t, 1)
		conv, err := e.st.ConversationByNumbers("3902124122690", "393403603062")
		require.NoError(t, err)
		msgs, _, err := e.st.ConversationMessages(conv.ID, 10, "")
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		m := msgs[0]
		hosted, err := e.st.Media(m.Outbound.HeaderMedia)
		require.NoError(t, err)
		want := strings.ReplaceAll(string(c.CM), "{{ourId}}", m.ID)
		want = strings.ReplaceAll(want, "{{headerUrl}}", e.api.URL+"/media/public/"+hosted.Token)
		require.JSONEq(t, want, string(rs[0].Body))
	})
}
