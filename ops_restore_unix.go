//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDatabase takes the exclusive flock bbolt takes on its file, without
// waiting: a running service holds it, so failing to get it is restore's
// refusal. A file that does not exist needs no lock.
func lockDatabase(path string) (unlock func(), err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errFileInUse
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() { _ = f.Close() }, nil
}

// takeOwnership gives tmp the owner and mode of the file it replaces (cur),
// or, when there is none, the owner of the directory it goes into: restore
// runs as root, the service as its own user, which must be able to open
// the restored file.
func takeOwnership(tmp, dst string, cur os.FileInfo) error {
	mode := os.FileMode(0o600)
	ref := cur
	if ref == nil {
		var err error
		if ref, err = os.Stat(filepath.Dir(dst)); err != nil {
			return err
		}
	} else {
		mode = cur.Mode().Perm()
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	st, ok := ref.Sys().(*syscall.Stat_t)
	if !ok || (int(st.Uid) == os.Getuid() && int(st.Gid) == os.Getgid()) {
		return nil
	}
	if err := os.Chown(tmp, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("give the restored file the owner of %s (run restore as root or as that user): %w", ref.Name(), err)
	}
	return nil
}
