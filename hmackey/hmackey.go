// Package hmackey keeps the service's secret key for keyed hashes: the
// erasure audit's number hashes and the fingerprints that bind issued
// tokens to the credentials that issued them. The key lives in its own
// file, never in the database, so a copy of the database (a backup) does
// not let anyone test guesses against those hashes.
package hmackey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Size is the key's length in bytes.
const Size = 32

// DefaultPath is where the key of database db lives when the config names
// no file: beside it, as db + ".key" (imchannel.db → imchannel.db.key).
func DefaultPath(db string) string { return db + ".key" }

// LoadOrCreate reads the key at path, or creates it (mode 0600, written to
// a temp file, fsynced and linked into place so that two processes
// starting at once end up with the same key). A file that exists but does
// not hold a key is an error, never replaced: every hash made with the
// old key would stop matching.
func LoadOrCreate(path string) (key []byte, created bool, err error) {
	if key, err := Load(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	raw := make([]byte, Size)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, fmt.Errorf("hmac key: %w", err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, false, fmt.Errorf("hmac key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err == nil {
		_, err = f.WriteString(hex.EncodeToString(raw) + "\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, false, fmt.Errorf("hmac key %s: %w", path, err)
		}
	} else {
		_ = f.Close()
		return nil, false, fmt.Errorf("hmac key %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			key, err := Load(path) // another process won the race
			return key, false, err
		}
		return nil, false, fmt.Errorf("hmac key %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return raw, true, nil
}

// Load reads an existing key file.
func Load(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hmac key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != Size {
		return nil, fmt.Errorf("hmac key %s: not a %d-byte hex key; restore the file from your backup (a new key would stop old audit hashes from matching)", path, Size)
	}
	return key, nil
}

// Sum is HMAC-SHA-256 of the parts under key, each part length-prefixed
// so that ("ab","c") and ("a","bc") differ, in hex.
func Sum(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		fmt.Fprintf(m, "%d:", len(p))
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}
