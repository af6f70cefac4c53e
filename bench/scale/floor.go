package main

import (
	"net/http"

	"imchannel/bench/internal/benchkit"
)

// floorBucket is the floor's own bucket in its copy of the grown file.
var floorBucket = []byte("scale_floor")

// floorHandler opens path with plain bbolt (as bench/inbound's floor does)
// and returns the handler: one DB.Batch per post.
func floorHandler(path string) (http.Handler, func(), error) {
	db, err := benchkit.OpenFloor(path, floorBucket)
	if err != nil {
		return nil, nil, err
	}
	h := benchkit.Floor{DB: db, Bucket: floorBucket, Answer: `{"accepted":%d,"duplicates":%d}`}
	return h, func() { _ = db.Close() }, nil
}
