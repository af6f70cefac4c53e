package store

import (
	"errors"
	"fmt"
)

// Error kinds. Every error the store returns wraps one of these, so the
// HTTP edge can map it to a status with errors.Is.
var (
	ErrInvalid      = errors.New("invalid")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrUnauthorized = errors.New("unauthorized")
	ErrTooLarge     = errors.New("too large")
	// ErrUnavailable means the database cannot take writes right now (disk
	// full, read-only, closed); the caller should answer 503 so the sender
	// retries.
	ErrUnavailable = errors.New("storage unavailable")
	ErrInternal    = errors.New("internal")
)

// Errorf wraps kind with a message, e.g. Errorf(ErrInvalid, "results[%d].from is required", i).
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// ItemError is a failure of one item of a batch: Index is its place in the
// slice the caller passed, so an edge can name it in its own words
// ("destinations[2]") without reading it back out of the message.
type ItemError struct {
	Index int
	Err   error
}

func (e *ItemError) Error() string { return fmt.Sprintf("message %d: %v", e.Index, e.Err) }
func (e *ItemError) Unwrap() error { return e.Err }
