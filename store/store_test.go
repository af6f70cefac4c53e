package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"imchannel/migrations"
)

// busyFixture fills a store with a bit of everything: several
// conversations, replies (one dangling), media, outbound messages with
// reports (early, failed, recovered), reactions, deletions, parked things.
func busyFixture(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for i := range 5 {
		num := fmt.Sprintf("+3161234%04d", i)
		m := inbound(fmt.Sprintf("in-%d", i), num, "hello")
		m.ContactName = fmt.Sprintf("Customer %d", i)
		saveOne(t, s, m)
		img := inbound(fmt.Sprintf("img-%d", i), num, "")
		img.Type, img.Caption = TypeImage, "a photo"
		img.Media = &Media{SourceURL: "http://127.0.0.1:1/p.jpg", ContentType: "image/jpeg"}
		saveOne(t, s, img)
		rep := inbound(fmt.Sprintf("reply-%d", i), num, "about that")
		rep.ReplyTo = &ReplyRef{ExternalID: fmt.Sprintf("in-%d", i)}
		saveOne(t, s, rep)
		o := queueOne(t, s, outbound(fmt.Sprintf("out-%d", i), num, "an answer"))
		require.NoError(t, s.Update(ctx, func(t *Tx) error {
			return t.AddAlias(o.MessageID, ProviderInfobip, fmt.Sprintf("prov-%d", i))
		}))
		status := []string{StatusSent, StatusDelivered, StatusSeen, StatusFailed, StatusFailed}[i]
		_, err := s.ApplyReports(ctx, []Report{{Provider: ProviderInfobip, ExternalID: fmt.Sprintf("prov-%d", i), Status: status, At: at(i), Reason: "r"}})
		require.NoError(t, err)
	}
	// Recovered failure, dangling reply, parked report, parked reaction.
	_, err := s.ApplyReports(ctx, []Report{{Provider: ProviderInfobip, ExternalID: "out-4", Status: StatusDelivered, At: at(1)}})
	require.NoError(t, err)
	dangling := inbound("dangling", "+31612340000", "re: something old")
	dangling.ReplyTo = &ReplyRef{ExternalID: "lost"}
	saveOne(t, s, dangling)
	_, err = s.ApplyReports(ctx, []Report{{Provider: ProviderCM, ExternalID: "not-yet", Status: StatusSeen, At: at(9)}})
	require.NoError(t, err)
	saveOne(t, s, reaction("react-1", "in-1", "👍", false))
	saveOne(t, s, reaction("react-2", "not-yet-either", "👍", false))
	saveOne(t, s, deletion("del-1", "in-2"))
	_, err = s.QueueWelcome(ctx, outbound("welcome", "+31612349999", "Welcome"))
	require.NoError(t, err)
}

// snapshot is everything a reader can see, as JSON, for comparisons.
func snapshot(t *testing.T, s *Store) string {
	t.Helper()
	type conv struct {
		C    *Conversation
		Msgs []*Message
	}
	var all []conv
	cs, next, err := s.ListConversations("", 500, "")
	require.NoError(t, err)
	require.Empty(t, next)
	for _, c := range cs {
		all = append(all, conv{c, allMessages(t, s, c.ID)})
	}
	st, err := s.Stats()
	require.NoError(t, err)
	st.FileSize = 0
	var pending int
	require.NoError(t, s.View(func(tx *bolt.Tx) error {
		pending = tx.Bucket(bucketPending).Stats().KeyN
		return nil
	}))
	b, err := json.MarshalIndent(map[string]any{"convs": all, "stats": st, "pending": pending,
		"dups": s.Counter("dup:" + ProviderInfobip)}, "", " ")
	require.NoError(t, err)
	return string(b)
}

func TestCloseAndReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imchannel.db")
	s, err := Open(path, Options{})
	require.NoError(t, err)
	busyFixture(t, s)
	requireClean(t, s)
	before := snapshot(t, s)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice is harmless")

	s = openAt(t, path, Options{})
	require.Equal(t, before, snapshot(t, s))
	requireClean(t, s)

	// Idempotency and parked things survive too.
	require.True(t, saveOne(t, s, inbound("in-0", "+31612340000", "resent after restart")).Duplicate)
	r := saveOne(t, s, inbound("lost", "+31612340000", "the original"))
	got, err := s.MessagesByExternalID("dangling")
	require.NoError(t, err)
	require.Equal(t, r.MessageID, got[0].ReplyTo.ID)
	m := outbound("not-yet", "+31612340000", "late")
	m.Provider = ProviderCM
	require.Equal(t, StatusSeen, mustMessage(t, s, queueOne(t, s, m).MessageID).Status)
	requireClean(t, s)

	// A closed store refuses writes instead of hanging.
	require.NoError(t, s.Close())
	_, err = s.SaveInbound(context.Background(), []*Message{inbound("x", customer, "x")})
	require.ErrorIs(t, err, ErrUnavailable)
}

func setSchemaVersion(t *testing.T, path string, v uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], v)
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), buf[:])
	}))
	require.NoError(t, db.Close())
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imchannel.db")
	s, err := Open(path, Options{})
	require.NoError(t, err)
	saveOne(t, s, inbound("a", customer, "hi"))
	require.NoError(t, s.Close())
	setSchemaVersion(t, path, migrations.Latest()+1)

	for _, opts := range []Options{{}, {ReadOnly: true}, {NoMigrate: true}} {
		_, err = Open(path, opts)
		require.Error(t, err)
		require.ErrorContains(t, err, fmt.Sprintf("schema version %d, newer than this binary's %d", migrations.Latest()+1, migrations.Latest()))
	}
	matches, _ := filepath.Glob(path + ".*")
	require.Empty(t, matches, "a refused file is left alone")
}

func TestOlderSchemaIsBackedUpThenMigrated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "imchannel.db")
	s, err := Open(path, Options{})
	require.NoError(t, err)
	busyFixture(t, s)
	before := snapshot(t, s)
	require.NoError(t, s.Close())
	matches, _ := filepath.Glob(path + ".*")
	require.Empty(t, matches, "a fresh file needs no backup")

	setSchemaVersion(t, path, 0)

	// Tools that must not write say what to do.
	_, err = Open(path, Options{NoMigrate: true})
	require.ErrorContains(t, err, "imchannel migrate")

	s = openAt(t, path, Options{})
	matches, _ = filepath.Glob(path + ".pre-v*.bak")
	require.Len(t, matches, 1, "a backup beside the file, written before migrating")
	require.Equal(t, before, snapshot(t, s))
	require.NoError(t, s.View(func(tx *bolt.Tx) error {
		require.Equal(t, migrations.Latest(), migrations.Version(tx))
		return nil
	}))

	// The backup is a consistent copy of the old file: it still says 0.
	db, err := bolt.Open(matches[0], 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		require.EqualValues(t, 0, migrations.Version(tx))
		require.Equal(t, tx.Bucket(bucketMessages).Stats().KeyN, 5*4+1+1)
		return nil
	}))
}

func TestCheckCleanOnBusyStore(t *testing.T) {
	s := openTemp(t, Options{})
	busyFixture(t, s)
	requireClean(t, s)

	// And on the file, read-only, as `imchannel check` opens it.
	path := s.Path()
	require.NoError(t, s.Close())
	db, err := OpenBolt(path, true, time.Second)
	require.NoError(t, err)
	defer db.Close()
	require.Empty(t, Check(db))
}

// Each case breaks the file in one way; Check must name the problem.
func TestCheckFindsBrokenIndexes(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(tx *bolt.Tx, s *fixtureIDs) error
		want   string
	}{
		{"conv_msgs entry deleted", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketConvMsgs).Delete([]byte(f.conv + f.msg))
		}, "not in its thread index"},
		{"conv_msgs entry for a missing message", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketConvMsgs).Put([]byte(f.conv+"01ARZ3NDEKTSV4RRFFQ69G5FAV"), nil)
		}, "points at missing message"},
		{"stale ext entry", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketExt).Put(extKey(ProviderInfobip, "ghost"), []byte("01ARZ3NDEKTSV4RRFFQ69G5FAV"))
		}, `ext "infobip\x00ghost" points at missing message`},
		{"ext entry for another message's id", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketExt).Put(extKey(ProviderCM, "in-0"), []byte(f.msg))
		}, `ext "cm\x00in-0" points at message`},
		{"ext entry lost", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketExt).Delete(extKey(ProviderInfobip, "in-0"))
		}, "ext index for infobip/in-0 missing"},
		{"messages counter corrupted", func(tx *bolt.Tx, f *fixtureIDs) error {
			return putU64(tx.Bucket(bucketCounters), counterMessages, 12345)
		}, "counter messages = 12345"},
		{"failed_sends counter corrupted", func(tx *bolt.Tx, f *fixtureIDs) error {
			return putU64(tx.Bucket(bucketCounters), counterFailedSends, 0)
		}, "counter failed_sends = 0"},
		{"conversation's failedCount wrong", func(tx *bolt.Tx, f *fixtureIDs) error {
			return editConv(tx, f.conv, func(c *Conversation) { c.FailedCount = 7 })
		}, "failedCount 7"},
		{"conversation's messageCount wrong", func(tx *bolt.Tx, f *fixtureIDs) error {
			return editConv(tx, f.conv, func(c *Conversation) { c.MessageCount = 1 })
		}, "messageCount 1"},
		{"activity entry stale", func(tx *bolt.Tx, f *fixtureIDs) error {
			return editConv(tx, f.conv, func(c *Conversation) { c.LastActivity = c.LastActivity.Add(time.Hour) })
		}, "conv_activity entry missing"},
		{"conv_key lost", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketConvKey).Delete(convKey(business, "31612340000"))
		}, "conv_key entry"},
		{"dangling reply reference", func(tx *bolt.Tx, f *fixtureIDs) error {
			return editMsg(tx, f.reply, func(m *Message) { m.ReplyTo.ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV" })
		}, "replies to missing message"},
		{"dangling media reference", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketMedia).Delete([]byte(f.media))
		}, "media " + "%s missing"},
		{"outbox entry for a missing message", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketOutbox).Put(timeKey(at(0), "01ARZ3NDEKTSV4RRFFQ69G5FAV"), nil)
		}, "outbox"},
		{"thread entry under another conversation", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketConvMsgs).Put([]byte("01ARZ3NDEKTSV4RRFFQ69G5FAV"+f.msg), nil)
		}, "is filed under conversation 01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"conversation's last message is not its own", func(tx *bolt.Tx, f *fixtureIDs) error {
			return editConv(tx, f.conv, func(c *Conversation) { c.LastMessageID = "01ARZ3NDEKTSV4RRFFQ69G5FAV" })
		}, "last message 01ARZ3NDEKTSV4RRFFQ69G5FAV is not one of its messages"},
		{"parked reply of a missing message", func(tx *bolt.Tx, f *fixtureIDs) error {
			v, _ := json.Marshal(Pending{Kind: pendingReply, MessageID: "01ARZ3NDEKTSV4RRFFQ69G5FAV"})
			return tx.Bucket(bucketPending).Put(append(extKey(ProviderInfobip, "never"), 0, '0', '1'), v)
		}, "parked reply of missing message 01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"undecodable parked item", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketPending).Put(append(extKey(ProviderInfobip, "never"), 0, '0', '2'), []byte("{"))
		}, "pending"},
		{"media of a missing message", func(tx *bolt.Tx, f *fixtureIDs) error {
			var md Media
			if err := json.Unmarshal(tx.Bucket(bucketMedia).Get([]byte(f.media)), &md); err != nil {
				return err
			}
			md.MessageID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
			v, _ := json.Marshal(&md)
			return tx.Bucket(bucketMedia).Put([]byte(f.media), v)
		}, "belongs to missing message 01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"undecodable message", func(tx *bolt.Tx, f *fixtureIDs) error {
			return tx.Bucket(bucketMessages).Put([]byte(f.msg), []byte("{not json"))
		}, "message " + "%m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t, Options{})
			busyFixture(t, s)
			f := fixture(t, s)
			requireClean(t, s)
			require.NoError(t, s.DB().Update(func(tx *bolt.Tx) error { return tc.break_(tx, f) }))
			problems := s.Check()
			require.NotEmpty(t, problems)
			want := tc.want
			switch want {
			case "media %s missing":
				want = "media " + f.media + " missing"
			case "message %m":
				want = "message " + f.msg + ":"
			}
			found := false
			for _, p := range problems {
				if strings.Contains(p, want) {
					found = true
				}
			}
			require.True(t, found, "want a problem containing %q, got %q", want, problems)
		})
	}
}

// fixtureIDs names records of busyFixture that the broken-index cases edit.
type fixtureIDs struct {
	conv, msg, reply, media string
}

func fixture(t *testing.T, s *Store) *fixtureIDs {
	t.Helper()
	get := func(ext string) *Message {
		ms, err := s.MessagesByExternalID(ext)
		require.NoError(t, err)
		require.Len(t, ms, 1, ext)
		return ms[0]
	}
	in0 := get("in-0")
	return &fixtureIDs{conv: in0.ConversationID, msg: in0.ID, reply: get("reply-0").ID, media: get("img-0").Media.ID}
}

func editConv(tx *bolt.Tx, id string, edit func(*Conversation)) error {
	var c Conversation
	if err := json.Unmarshal(tx.Bucket(bucketConvs).Get([]byte(id)), &c); err != nil {
		return err
	}
	edit(&c)
	b, _ := json.Marshal(&c)
	return tx.Bucket(bucketConvs).Put([]byte(id), b)
}

func editMsg(tx *bolt.Tx, id string, edit func(*Message)) error {
	var m Message
	if err := json.Unmarshal(tx.Bucket(bucketMessages).Get([]byte(id)), &m); err != nil {
		return err
	}
	edit(&m)
	b, _ := json.Marshal(&m)
	return tx.Bucket(bucketMessages).Put([]byte(id), b)
}

// holdCommit makes the next commit wait inside its transaction until n more
// writers are queued behind it, so they must share the following commit.
// It returns once the holding writer is running.
func holdCommit(t *testing.T, s *Store, n int) (done <-chan error) {
	t.Helper()
	running := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		var once sync.Once
		errc <- s.Update(context.Background(), func(tx *Tx) error {
			once.Do(func() { close(running) })
			deadline := time.Now().Add(10 * time.Second)
			for len(s.ops) < n {
				if time.Now().After(deadline) {
					return errors.New("writers never queued")
				}
				time.Sleep(time.Millisecond) // polling for a condition in another goroutine
			}
			return nil
		})
	}()
	<-running
	return errc
}

func TestGroupCommitSharesCommits(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	s := openTemp(t, Options{OnCommit: func(size int, _ time.Duration) {
		mu.Lock()
		sizes = append(sizes, size)
		mu.Unlock()
	}})
	const writers = 32
	held := holdCommit(t, s, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := inbound(extID(i), fmt.Sprintf("3161234%04d", i), "hello")
			_, err := s.SaveInbound(context.Background(), []*Message{m})
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.NoError(t, <-held)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{1, writers}, sizes, "the writers queued behind a commit share the next one")
	require.EqualValues(t, writers, s.Counter(counterMessages))
	requireClean(t, s)
}

func TestGroupCommitFailingWriterDoesNotFailOthers(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	s := openTemp(t, Options{OnCommit: func(size int, _ time.Duration) {
		mu.Lock()
		sizes = append(sizes, size)
		mu.Unlock()
	}})
	const writers = 16
	held := holdCommit(t, s, writers+2)
	var runs atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(context.Background(), func(tx *Tx) error {
				runs.Add(1)
				return tx.addCounter("test", 1)
			})
		}()
	}
	var failErr, panicErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		failErr = s.Update(context.Background(), func(tx *Tx) error {
			if err := tx.addCounter("test", 1000); err != nil {
				return err
			}
			return Errorf(ErrInvalid, "this writer fails")
		})
	}()
	go func() {
		defer wg.Done()
		panicErr = s.Update(context.Background(), func(tx *Tx) error { panic("boom") })
	}()
	wg.Wait()
	require.NoError(t, <-held)

	for _, err := range errs {
		require.NoError(t, err)
	}
	require.ErrorIs(t, failErr, ErrInvalid)
	require.ErrorContains(t, failErr, "this writer fails")
	require.ErrorIs(t, panicErr, ErrInternal)
	require.ErrorContains(t, panicErr, "boom")
	require.EqualValues(t, writers, s.Counter("test"), "each good writer counted once, the failed one not at all")
	require.GreaterOrEqual(t, runs.Load(), int64(writers), "functions may run more than once")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{1, writers}, sizes)
}

// Writers racing with Close either commit or are refused; none hangs.
func TestUpdateRacingCloseNeverHangs(t *testing.T) {
	for round := range 20 {
		s, err := Open(filepath.Join(t.TempDir(), fmt.Sprintf("r%d.db", round)), Options{})
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					err := s.Update(context.Background(), func(tx *Tx) error { return tx.addCounter("x", 1) })
					if err != nil {
						if !errors.Is(err, ErrUnavailable) {
							t.Errorf("unexpected error %v", err)
						}
						return
					}
				}
			}()
		}
		require.Eventually(t, func() bool { return s.Counter("x") > 5 }, 10*time.Second, time.Millisecond)
		require.NoError(t, s.Close())
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a writer racing Close never returned", round)
		}
	}
}

func TestReadOnlyStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.db")
	s, err := Open(path, Options{})
	require.NoError(t, err)
	saveOne(t, s, inbound("a", customer, "hi"))
	require.NoError(t, s.Close())
	ro, err := Open(path, Options{ReadOnly: true})
	require.NoError(t, err)
	defer ro.Close()
	_, err = ro.SaveInbound(context.Background(), []*Message{inbound("b", customer, "x")})
	require.ErrorIs(t, err, ErrInvalid)
	got, err := ro.MessagesByExternalID("a")
	require.NoError(t, err)
	require.Len(t, got, 1)

	require.NoError(t, ro.Close())
	select {
	case <-ro.done:
	default:
		t.Fatal("closing a read-only store left its committer goroutine running")
	}

	_, err = Open(filepath.Join(t.TempDir(), "missing.db"), Options{ReadOnly: true})
	require.ErrorIs(t, err, ErrNotFound)
	_, statErr := os.Stat(filepath.Join(t.TempDir(), "missing.db"))
	require.True(t, os.IsNotExist(statErr))
}
