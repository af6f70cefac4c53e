package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	bolt "go.etcd.io/bbolt"
)

// floorPost is the part of a seed-000 post the floor keeps.
type floorPost struct {
	Results []struct {
		From            string `json:"from"`
		To              string `json:"to"`
		IntegrationType string `json:"integrationType"`
		ReceivedAt      string `json:"receivedAt"`
		MessageID       string `json:"messageId"`
		PairedMessageID string `json:"pairedMessageId"`
		Message         struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"message"`
	} `json:"results"`
}

// floorBucket is the floor's own bucket in its copy of the grown file.
var floorBucket = []byte("scale_floor")

// floorHandler opens path with plain bbolt (as bench/inbound's floor does)
// and returns the handler: one DB.Batch per post.
func floorHandler(path string) (http.Handler, func(), error) {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(floorBucket); return err }); err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, `{"error":"body"}`, http.StatusRequestEntityTooLarge)
			return
		}
		var p floorPost
		if err := json.Unmarshal(body, &p); err != nil || len(p.Results) == 0 {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
		vals := make([][]byte, len(p.Results))
		for i, res := range p.Results {
			vals[i], _ = json.Marshal(res)
		}
		accepted, dups := 0, 0
		err = db.Batch(func(tx *bolt.Tx) error {
			accepted, dups = 0, 0
			b := tx.Bucket(floorBucket)
			for i, res := range p.Results {
				if b.Get([]byte(res.MessageID)) != nil {
					dups++
					continue
				}
				if err := b.Put([]byte(res.MessageID), vals[i]); err != nil {
					return err
				}
				accepted++
			}
			return nil
		})
		if err != nil {
			http.Error(w, `{"error":"store"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		fmt.Fprintf(w, `{"accepted":%d,"duplicates":%d}`+"\n", accepted, dups)
	})
	return h, func() { _ = db.Close() }, nil
}
