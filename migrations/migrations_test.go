package migrations

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// stepTests holds one test per step. TestEveryStepHasATest fails when a
// step is added without one.
var stepTests = map[uint64]func(t *testing.T, db *bolt.DB){
	1: func(t *testing.T, db *bolt.DB) {
		require.NoError(t, db.View(func(tx *bolt.Tx) error {
			for _, name := range v1Buckets {
				require.NotNil(t, tx.Bucket([]byte(name)), "bucket %s", name)
			}
			return nil
		}))
	},
	2: func(t *testing.T, db *bolt.DB) {
		require.NoError(t, db.View(func(tx *bolt.Tx) error {
			for _, name := range v2Buckets {
				require.NotNil(t, tx.Bucket([]byte(name)), "bucket %s", name)
			}
			// Schema 1's buckets are still there.
			require.NotNil(t, tx.Bucket([]byte("messages")))
			return nil
		}))
	},
	3: func(t *testing.T, db *bolt.DB) {
		require.NoError(t, db.View(func(tx *bolt.Tx) error {
			for _, name := range append(append(v1Buckets, v2Buckets...), v3Buckets...) {
				require.NotNil(t, tx.Bucket([]byte(name)), "bucket %s", name)
			}
			return nil
		}))
	},
	4: testV4SplitIDNamespaces,
	5: testV5Empty,
}

// testV4SplitIDNamespaces seeds a schema 3 file the way the store wrote it
// (one namespace for every id) and checks what step 4 moves: an outbound
// message's id and alias and a parked report go to the outbound namespace;
// an inbound message's id, a parked reply and a parked reaction stay. Run
// twice, it changes nothing more.
func testV4SplitIDNamespaces(t *testing.T, _ *bolt.DB) {
	db := openTemp(t)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		for _, s := range Steps()[:3] {
			if err := s.Apply(tx); err != nil {
				return err
			}
		}
		put := func(bucket, k, v string) {
			require.NoError(t, tx.Bucket([]byte(bucket)).Put([]byte(k), []byte(v)))
		}
		put("messages", "01ARZ3NDEKTSV4RRFFQ69G5FAA", `{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAA","direction":"outbound","provider":"infobip","externalId":"ctlive-1","aliases":["ib-77"]}`)
		put("messages", "01ARZ3NDEKTSV4RRFFQ69G5FAB", `{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAB","direction":"inbound","provider":"infobip","externalId":"wamid.in-1"}`)
		put("ext", "infobip\x00ctlive-1", "01ARZ3NDEKTSV4RRFFQ69G5FAA")
		put("ext", "infobip\x00ib-77", "01ARZ3NDEKTSV4RRFFQ69G5FAA")
		put("ext", "infobip\x00wamid.in-1", "01ARZ3NDEKTSV4RRFFQ69G5FAB")
		put("ext", "infobip\x00wamid.reaction-1", "")
		put("pending", "cm\x00ref-9\x0001ARZ3NDEKTSV4RRFFQ69G5FAC", `{"kind":"report","report":{"provider":"cm","externalId":"ref-9","status":"delivered"}}`)
		put("pending", "infobip\x00wamid.q\x0001ARZ3NDEKTSV4RRFFQ69G5FAD", `{"kind":"reply","messageId":"01ARZ3NDEKTSV4RRFFQ69G5FAB"}`)
		put("pending", "infobip\x00wamid.x\x0001ARZ3NDEKTSV4RRFFQ69G5FAE", `{"kind":"reaction","reaction":{"emoji":"x"}}`)
		return nil
	}))
	check := func() {
		require.NoError(t, db.View(func(tx *bolt.Tx) error {
			ext, pend := tx.Bucket([]byte("ext")), tx.Bucket([]byte("pending"))
			require.Equal(t, "01ARZ3NDEKTSV4RRFFQ69G5FAA", string(ext.Get([]byte("infobip\x01ctlive-1"))))
			require.Equal(t, "01ARZ3NDEKTSV4RRFFQ69G5FAA", string(ext.Get([]byte("infobip\x01ib-77"))))
			require.Nil(t, ext.Get([]byte("infobip\x00ctlive-1")), "an inbound message may now use that id")
			require.Nil(t, ext.Get([]byte("infobip\x00ib-77")))
			require.Equal(t, "01ARZ3NDEKTSV4RRFFQ69G5FAB", string(ext.Get([]byte("infobip\x00wamid.in-1"))))
			require.NotNil(t, ext.Get([]byte("infobip\x00wamid.reaction-1")))
			require.NotNil(t, pend.Get([]byte("cm\x01ref-9\x0001ARZ3NDEKTSV4RRFFQ69G5FAC")))
			require.Nil(t, pend.Get([]byte("cm\x00ref-9\x0001ARZ3NDEKTSV4RRFFQ69G5FAC")))
			require.NotNil(t, pend.Get([]byte("infobip\x00wamid.q\x0001ARZ3NDEKTSV4RRFFQ69G5FAD")))
			require.NotNil(t, pend.Get([]byte("infobip\x00wamid.x\x0001ARZ3NDEKTSV4RRFFQ69G5FAE")))
			require.Equal(t, 4, ext.Stats().KeyN)
			require.Equal(t, 3, pend.Stats().KeyN)
			return nil
		}))
	}
	require.NoError(t, db.Update(v4SplitIDNamespaces))
	check()
	require.NoError(t, db.Update(v4SplitIDNamespaces))
	check()
}

// Step 5 on an empty file; what it does to a file with data:
// TestV5IndexesAnExistingFile.
func testV5Empty(t *testing.T, db *bolt.DB) {
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		require.NotNil(t, tx.Bucket([]byte("msg_words")))
		require.NotNil(t, tx.Bucket([]byte("media_thumbs")))
		return nil
	}))
}

func openTemp(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"), 0o600, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestEveryStepHasATest(t *testing.T) {
	prev := uint64(0)
	for _, s := range Steps() {
		require.Equal(t, prev+1, s.Version, "versions must be consecutive")
		prev = s.Version
		require.Contains(t, stepTests, s.Version, "step %d (%s) has no test in stepTests", s.Version, s.Description)
	}
}

func TestSteps(t *testing.T) {
	for _, s := range Steps() {
		t.Run(s.Description, func(t *testing.T) {
			db := openTemp(t)
			// Bring the file to the version before this step, then apply it.
			require.NoError(t, db.Update(func(tx *bolt.Tx) error {
				for _, p := range Steps() {
					if p.Version >= s.Version {
						break
					}
					if err := p.Apply(tx); err != nil {
						return err
					}
					if err := setVersion(tx, p.Version); err != nil {
						return err
					}
				}
				return nil
			}))
			require.NoError(t, db.Update(func(tx *bolt.Tx) error {
				if err := s.Apply(tx); err != nil {
					return err
				}
				return setVersion(tx, s.Version)
			}))
			stepTests[s.Version](t, db)
		})
	}
}

func TestApplyIsIdempotentAndRecordsVersion(t *testing.T) {
	db := openTemp(t)
	applied, err := Apply(db)
	require.NoError(t, err)
	require.Len(t, applied, len(Steps()))
	applied, err = Apply(db)
	require.NoError(t, err)
	require.Empty(t, applied)
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		require.Equal(t, Latest(), Version(tx))
		return nil
	}))
	require.Empty(t, Pending(Latest()))
}

func TestApplyRefusesNewerFile(t *testing.T) {
	db := openTemp(t)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { return setVersion(tx, Latest()+1) }))
	_, err := Apply(db)
	require.ErrorContains(t, err, "newer")
}

// A file whose version key was lost (0) but holds data is brought up again
// without losing anything: steps must be safe on a file that has their
// buckets already.
func TestApplyKeepsDataOfUnversionedFile(t *testing.T) {
	db := openTemp(t)
	_, err := Apply(db)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("messages")).Put([]byte("01ARZ3NDEKTSV4RRFFQ69G5FAV"), []byte(`{}`)); err != nil {
			return err
		}
		return tx.Bucket(metaBucket).Delete(versionKey)
	}))
	applied, err := Apply(db)
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, applied[:1])
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		require.Equal(t, Latest(), Version(tx))
		require.Equal(t, []byte(`{}`), tx.Bucket([]byte("messages")).Get([]byte("01ARZ3NDEKTSV4RRFFQ69G5FAV")))
		return nil
	}))
}

func TestPendingListsStepsInOrder(t *testing.T) {
	require.Len(t, Pending(0), len(Steps()))
	prev := uint64(0)
	for _, s := range Pending(0) {
		require.Greater(t, s.Version, prev)
		require.NotEmpty(t, s.Description)
		prev = s.Version
	}
}
