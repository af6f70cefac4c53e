package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// OutboxState is the dispatcher's bookkeeping for one outbound message.
type OutboxState struct {
	MessageID string    `json:"messageId"`
	Due       time.Time `json:"due"`
	Attempts  int       `json:"attempts"`
	FirstTry  time.Time `json:"firstTry,omitempty"`
	LastError string    `json:"lastError,omitempty"`
}

var timeZero time.Time

// enqueueOutbox puts a message in the delivery queue at due.
func (t *Tx) enqueueOutbox(msgID string, due time.Time) error {
	st := OutboxState{MessageID: msgID, Due: due.UTC()}
	v, err := encode(st)
	if err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketOutboxState).Put([]byte(msgID), v); err != nil {
		return err
	}
	return t.tx.Bucket(bucketOutbox).Put(timeKey(st.Due, msgID), nil)
}

func checkOutboxInvariants(tx *bolt.Tx, add addFunc) {
	msgs := tx.Bucket(bucketMessages)
	state := tx.Bucket(bucketOutboxState)
	_ = tx.Bucket(bucketOutbox).ForEach(func(k, _ []byte) error {
		if len(k) < 9 || msgs.Get(k[8:]) == nil {
			add("outbox %x points at missing message", k)
		} else if state.Get(k[8:]) == nil {
			add("outbox entry for %s has no outbox_state", k[8:])
		}
		return nil
	})
}
