package webhook_test

// Hostile and odd-but-valid posts through the real router: none may answer
// 500, and a refused post must leave the database exactly as it was.

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// dbDigest hashes every key and value of every bucket (nested too), so two
// digests are equal only if nothing in the file changed.
func dbDigest(t *testing.T, e *testEnv) [32]byte {
	t.Helper()
	h := sha256.New()
	var walk func(path []byte, b *bolt.Bucket) error
	walk = func(path []byte, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			fmt.Fprintf(h, "%q/%q=%q\n", path, k, v)
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					return walk(append(append(path[:len(path):len(path)], '/'), k...), nb)
				}
			}
			return nil
		})
	}
	require.NoError(t, e.Store.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(name, b) })
	}))
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

type hostileCase struct {
	name   string
	path   string
	body   string
	status int
	errHas string
}

func runHostile(t *testing.T, cases []hostileCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t)
			before := dbDigest(t, e)
			a := e.post(t, c.path, []byte(c.body))
			require.Equal(t, c.status, a.Status, "%s", a.Body)
			if c.status >= 400 {
				require.Contains(t, a.ErrorText(t), c.errHas)
				require.Equal(t, before, dbDigest(t, e), "a refused post changed the database")
			} else if c.errHas != "" {
				// Inside a valid post, what cannot be understood is
				// quarantined with the reason, never refused.
				q, _, err := e.Store.Quarantine(50, "")
				require.NoError(t, err)
				reasons := ""
				for _, x := range q {
					reasons += x.Reason + "\n"
				}
				require.Contains(t, reasons, c.errHas, "%s", a.Body)
			}
			e.requireClean(t)
		})
	}
}

func ibText(extra string) string {
	return `{"results":[{"from":"385919998888","to":"1234","messageId":"ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ",` +
		extra + `"message":{"type":"TEXT","text":"Support hello"}}]}`
}

// TestHostileTimes: a timestamp whose offset pushes it past year 9999 (or
// before year 0) in UTC cannot be stored; like any unreadable optional time
// it is replaced by the arrival time (and noted), never a 400 or a 500.
func TestHostileTimes(t *testing.T) {
	runHostile(t, []hostileCase{
		{"infobip receivedAt past 9999", ibRoute, ibText(`"receivedAt":"9999-12-31T23:59:59.000-2359",`), 200, ""},
		{"infobip receivedAt before 0000", ibRoute, ibText(`"receivedAt":"0000-01-01T00:00:00+23:59",`), 200, ""},
		{"infobip receivedAt at the edge is fine", ibRoute, ibText(`"receivedAt":"9999-12-31T23:59:59.000+0000",`), 200, ""},
		{"infobip seenAt past 9999", ibRoute,
			`{"results":[{"messageId":"out-1","to":"41793026731","seenAt":"9999-12-31T23:59:59.000-2359"}]}`, 200, ""},
		{"infobip doneAt past 9999", ibRoute,
			`{"results":[{"messageId":"out-1","status":{"groupName":"DELIVERED"},"doneAt":"9999-12-31T23:59:59.000-2359"}]}`, 200, ""},
		{"infobip second result's sentAt", ibRoute,
			`{"results":[{"messageId":"out-1","seenAt":"2018-12-12T11:21:58.251+0000"},{"messageId":"out-2","seenAt":"2018-12-12T11:21:58.251+0000","sentAt":"0000-01-01T00:00:00+0100"}]}`,
			200, ""},
		{"cm timeUtc past 9999", "/webhooks/cm",
			`{"reference":"r1","from":{"number":"0031612345678"},"to":{"number":"003197008101015"},"message":{"text":"hi"},"timeUtc":"9999-12-31T23:59:59-23:59"}`,
			200, ""},
		{"cm time before 0000", "/webhooks/cm",
			`{"reference":"r1","from":{"number":"0031612345678"},"to":{"number":"003197008101015"},"message":{"text":"hi"},"time":"0000-01-01 00:00:00+01:00"}`,
			200, ""},
		{"cm status received past 9999", "/webhooks/cm/status",
			`{"messages":{"msg":{"reference":"referencereplytest","status":{"code":2},"received":"9999-12-31T23:59:59-23:59"}}}`,
			200, ""},
	})
}

// TestHostileIDs: ids too long to be a bbolt key used to fail the whole
// write with a 500, numbers too long likewise (they are part of the
// conversation key), and a NUL in an id reached what was parked for the id
// before it ("abc\u0000x" is keyed like a report parked for "abc"). Each is
// now quarantined naming results[i] and the field.
func TestHostileIDs(t *testing.T) {
	long := strings.Repeat("A", 40000)
	digits := strings.Repeat("3", 40000)
	seen := `{"messageId":"out-ok","to":"41793026731","seenAt":"2018-12-12T11:21:58.251+0000"}`
	runHostile(t, []hostileCase{
		{"messageId too long", ibRoute, strings.Replace(ibText(""), "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ", long, 1), 200, "results[0].messageId is longer than 512 bytes"},
		{"messageId with NUL", ibRoute, strings.Replace(ibText(""), "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ", `abc\u0000x`, 1), 200, "results[0].messageId contains control characters"},
		{"pairedMessageId too long", ibRoute, ibText(`"pairedMessageId":"` + long + `",`), 200, "results[0].pairedMessageId is longer"},
		{"context.id with NUL", ibRoute,
			`{"results":[{"from":"1","to":"2","messageId":"m1","message":{"type":"TEXT","text":"x","context":{"id":"abc\u0000x"}}}]}`,
			200, "results[0].message.context.id contains control characters"},
		{"reaction target too long", ibRoute,
			`{"results":[{"from":"1","to":"2","messageId":"r1","message":{"type":"REACTION","emoji":"👍","messageId":"` + long + `"}}]}`,
			200, "results[0].message.messageId is longer"},
		{"seen report id too long", ibRoute, `{"results":[` + seen + `,{"messageId":"` + long + `","seenAt":"2018-12-12T11:21:58.251+0000"}]}`,
			200, "results[1].messageId is longer"},
		{"seen report id with NUL", ibRoute, `{"results":[` + seen + `,{"messageId":"abc\u0000x","seenAt":"2018-12-12T11:21:58.251+0000"}]}`,
			200, "results[1].messageId contains control characters"},
		{"delivery report id too long", ibRoute, `{"results":[{"messageId":"` + long + `","status":{"groupName":"DELIVERED"}}]}`,
			200, "results[0].messageId is longer"},
		{"from too long", ibRoute, strings.Replace(ibText(""), `"385919998888"`, `"`+digits+`"`, 1), 200, "results[0].from has 40000 digits"},
		{"to too long", ibRoute, strings.Replace(ibText(""), `"1234"`, `"`+digits+`"`, 1), 200, "results[0].to has 40000 digits"},
		{"an id of 512 bytes is fine", ibRoute, strings.Replace(ibText(""), "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ", long[:512], 1), 200, ""},
	})
}

// TestCMTypeErrors: a value of the wrong JSON type is named by its path in
// the post and described in JSON's words, not as Go types or as "field body".
func TestCMTypeErrors(t *testing.T) {
	mo := func(from, message string) string {
		return `{"reference":"r1","from":` + from + `,"to":{"number":"003197008101015"},"message":` + message + `}`
	}
	const from = `{"number":"0031612345678"}`
	runHostile(t, []hostileCase{
		{"from is a number", "/webhooks/cm", mo(`31612345678`, `{"text":"hi"}`), 200, "from: expected an object, got JSON number"},
		{"from.number is a number", "/webhooks/cm", mo(`{"number":31612345678}`, `{"text":"hi"}`), 200, "from.number: expected a string, got JSON number"},
		{"deletedMessage is a number", "/webhooks/cm", mo(from, `{"custom":{"deletedMessage":5}}`), 200,
			"message.custom.deletedMessage: expected a string, got JSON number"},
		{"interactive is a string", "/webhooks/cm", mo(from, `{"custom":{"interactive":"x"}}`), 200,
			"message.custom.interactive: expected an object, got JSON string"},
		{"button is a string", "/webhooks/cm", mo(from, `{"custom":{"button":"x"}}`), 200,
			"message.custom.button: expected an object, got JSON string"},
		{"list_reply id is a number", "/webhooks/cm", mo(from, `{"custom":{"interactive":{"type":"list_reply","list_reply":{"id":7}}}}`), 200,
			"message.custom.interactive.list_reply.id: expected a string, got JSON number"},
		{"status messages is an array", "/webhooks/cm/status", `{"messages":[]}`, 400, "messages: expected an object, got JSON array"},
	})
}
