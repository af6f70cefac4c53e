package storebench

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"

	"imchannel/store"
)

// seedRaw is CTLive's example text result (docs/protocols.md#infobip-inbound) as the webhook keeps it (Message.Raw).
const seedRaw = `{"from":"385919998888","to":"1234","integrationType":"WHATSAPP","receivedAt":"2019-07-19T11:21:27.861+0000","messageId":"ABEGVUGWh3gEwZ","pairedMessageId":null,"message":{"type":"TEXT","text":"Support hello"}}`

// storedRecords stores what a contact center's file is mostly made of and
// returns the bytes the store keeps for each: the seed text message (with
// its raw provider payload), one of our replies after sent, delivered and
// seen reports, and their conversation. (Reports name our messages only.)
func storedRecords(b *testing.B) map[string][]byte {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), "codec.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	at := time.Date(2019, 7, 19, 11, 21, 27, 861e6, time.UTC)
	in := &store.Message{Provider: store.ProviderInfobip, ExternalID: "ABEGVUGWh3gEwZ", From: "385919998888", To: "1234",
		Type: store.TypeText, Text: "Support hello", ReceivedAt: at, Raw: json.RawMessage(seedRaw)}
	out := &store.Message{Provider: store.ProviderInfobip, ExternalID: "01JDZ6T1Q7W0V5B8Y3M2K4N6P8", From: "1234", To: "385919998888",
		Type: store.TypeText, Text: "Hello, how can we help you today?", Direction: store.Outbound, Status: store.StatusQueued,
		Timeline: []store.Event{{Status: store.StatusQueued, At: at.Add(time.Minute)}}}
	if err := st.BulkLoad(ctx, []*store.Message{func() *store.Message { m := *in; m.Direction = store.Inbound; return &m }(), out}); err != nil {
		b.Fatal(err)
	}
	for _, r := range []store.Report{
		{Provider: store.ProviderInfobip, ExternalID: out.ExternalID, Status: store.StatusSent, At: at.Add(61 * time.Second)},
		{Provider: store.ProviderInfobip, ExternalID: out.ExternalID, Status: store.StatusDelivered, At: at.Add(62 * time.Second), GroupName: "DELIVERED", Name: "DELIVERED_TO_HANDSET", Description: "Message delivered to handset"},
		{Provider: store.ProviderInfobip, ExternalID: out.ExternalID, Status: store.StatusSeen, At: at.Add(70 * time.Second)},
	} {
		if _, _, err := st.Ingest(ctx, nil, []store.Report{r}); err != nil {
			b.Fatal(err)
		}
	}
	recs := map[string][]byte{}
	err = st.View(func(tx *bolt.Tx) error {
		ms := tx.Bucket([]byte("messages"))
		k, v := ms.Cursor().First()
		recs["inbound seed text"] = append([]byte(nil), v...)
		_, v = ms.Cursor().Seek(append(k, 0))
		recs["our reply + sent, delivered, seen"] = append([]byte(nil), v...)
		_, v = tx.Bucket([]byte("conversations")).Cursor().First()
		recs["conversation"] = append([]byte(nil), v...)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return recs
}

// BenchmarkCodec compares the stored JSON of the records the file is mostly
// made of with CBOR (RFC 8949, fxamacker/cbor) of the same Go values:
// bytes per record, and encode and decode time. It informs the choice of a
// compact encoding (issue 16); the API's JSON is not concerned.
func BenchmarkCodec(b *testing.B) {
	recs := storedRecords(b)
	enc, err := cbor.EncOptions{Time: cbor.TimeUnixMicro}.EncMode()
	if err != nil {
		b.Fatal(err)
	}
	for name, raw := range recs {
		var v any = &store.Message{}
		if name == "conversation" {
			v = &store.Conversation{}
		}
		if err := json.Unmarshal(raw, v); err != nil {
			b.Fatal(err)
		}
		cb, err := enc.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/json", func(b *testing.B) {
			for range b.N {
				out, _ := json.Marshal(v)
				if err := json.Unmarshal(out, v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(raw)), "B/record")
		})
		b.Run(name+"/cbor", func(b *testing.B) {
			for range b.N {
				out, _ := enc.Marshal(v)
				if err := cbor.Unmarshal(out, v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(cb)), "B/record")
		})
	}
}
