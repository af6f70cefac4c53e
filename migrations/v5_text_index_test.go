package migrations

import (
	"encoding/binary"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// TestV5IndexesAnExistingFile writes a schema-4 file as an older binary
// did (conversation and message JSON, activity entries holding "customer
// business lower(name)") and checks what step 2 makes of it.
func TestV5IndexesAnExistingFile(t *testing.T) {
	db := openTemp(t)
	m1 := ulid.MustNew(1_700_000_000_000, strings.NewReader(strings.Repeat("a", 16))).String()
	m2 := ulid.MustNew(1_700_000_001_000, strings.NewReader(strings.Repeat("b", 16))).String()
	m3 := ulid.MustNew(1_700_000_002_000, strings.NewReader(strings.Repeat("c", 16))).String()
	c1, c2 := "01HZZZZZZZZZZZZZZZZZZZZZZ1", "01HZZZZZZZZZZZZZZZZZZZZZZ2"
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	actKey := func(t time.Time, id string) []byte {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
		return append(b[:], id...)
	}
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		for _, st := range Steps()[:4] {
			if err := st.Apply(tx); err != nil {
				return err
			}
		}
		if err := setVersion(tx, 4); err != nil {
			return err
		}
		put := func(bucket, k, v string) {
			require.NoError(t, tx.Bucket([]byte(bucket)).Put([]byte(k), []byte(v)))
		}
		put("messages", m1, `{"id":"`+m1+`","conversationId":"`+c1+`","text":"Where is order A-12345?","type":"text"}`)
		put("messages", m2, `{"id":"`+m2+`","conversationId":"`+c1+`","caption":"Die Rechnung, Herr Müller","type":"image"}`)
		put("messages", m3, `{"id":"`+m3+`","conversationId":"`+c2+`","deleted":true,"type":"text"}`)
		put("conversations", c1, `{"id":"`+c1+`","business":"1234","customer":"4917012345","name":"Jürgen Müller",`+
			`"lastActivity":"2024-05-01T12:00:00Z","lastInboundAt":"2024-05-01T12:00:00Z","failedCount":1}`)
		put("conversations", c2, `{"id":"`+c2+`","business":"5678","customer":"31611111111",`+
			`"lastActivity":"2024-05-01T11:00:00Z","lastInboundAt":"2024-05-01T10:00:00Z","lastOutboundAt":"2024-05-01T11:00:00Z"}`)
		put("conv_activity", string(actKey(at, c1)), "4917012345 1234 jürgen müller")
		put("conv_activity", string(actKey(at.Add(-time.Hour), c2)), "31611111111 5678 ")
		return nil
	}))
	applied, err := Apply(db)
	require.NoError(t, err)
	require.Equal(t, []uint64{5}, applied)

	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		var got []string
		require.NoError(t, tx.Bucket([]byte("msg_words")).ForEach(func(k, _ []byte) error {
			i := strings.IndexByte(string(k), 0)
			var id ulid.ULID
			copy(id[:], k[i+1:])
			got = append(got, string(k[:i])+"@"+id.String())
			return nil
		}))
		var want []string
		for _, w := range []string{"where", "is", "order", "12345"} {
			want = append(want, w+"@"+m1)
		}
		for _, w := range []string{"die", "rechnung", "herr", "muller"} {
			want = append(want, w+"@"+m2)
		}
		sort.Strings(want)
		require.Equal(t, want, got, "every word of text and caption, folded; nothing for the deleted message")

		act := tx.Bucket([]byte("conv_activity"))
		require.Equal(t, "\x034917012345 1234 jurgen muller", string(act.Get(actKey(at, c1))), "unanswered and failed; the name folded")
		require.Equal(t, "\x0031611111111 5678 ", string(act.Get(actKey(at.Add(-time.Hour), c2))), "answered, nothing failed")
		require.Equal(t, 2, act.Stats().KeyN, "entries replaced, not added")

		cb := tx.Bucket([]byte("counters"))
		require.Equal(t, uint64(1), binary.BigEndian.Uint64(cb.Get([]byte("biz:1234"))))
		require.Equal(t, uint64(1), binary.BigEndian.Uint64(cb.Get([]byte("biz:5678"))))
		return nil
	}))
}
