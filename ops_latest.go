package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"imchannel/store"
)

// latestName is the one file an operator's own file-level backup tool
// copies: a hard link to the newest scheduled backup, which was checked
// before it got its name. It is never written in place, only replaced by
// a rename, so a copy that opened it reads one whole, checked backup even
// while the next one is linked in.
const latestName = "imchannel-latest.db"

// scheduledBackup is one run of the backup schedule: a checked backup
// (backupOnce), then imchannel-latest.db pointed at it. A backup that was
// written and checked is linked even when recording or pruning failed
// afterwards: the file itself is good.
func scheduledBackup(ctx context.Context, st *store.Store, dir string, keep int) (string, int64, error) {
	path, size, err := backupOnce(ctx, st, dir, keep)
	if path == "" {
		return "", size, err
	}
	if lerr := linkLatest(dir, path); lerr != nil {
		err = errors.Join(err, lerr)
	}
	return path, size, err
}

// linkLatest atomically replaces dir/imchannel-latest.db with a hard link
// to target (a file in dir): link under a temp name, rename over the old
// link, fsync the directory. At every moment the name is either the
// previous backup or the new one. A temp link a crash left behind is
// named like backupOnce's temp files, so pruneBackups removes it later.
func linkLatest(dir, target string) error {
	tmp := filepath.Join(dir, "."+latestName+".tmp-"+filepath.Base(target))
	_ = os.Remove(tmp) // a leftover of a crash during this same step
	if err := os.Link(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", latestName, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, latestName)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename to %s: %w", latestName, err)
	}
	return store.SyncDir(dir)
}
