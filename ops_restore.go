package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"imchannel/store"
)

// restoreProcedure is what `imchannel restore --help` prints after the
// flags: the whole procedure, stop to start, with the package's paths.
const restoreProcedure = `
The whole procedure (the package's paths; adjust them to yours):

  1. systemctl stop imchannel
  2. imchannel restore /var/lib/imchannel/backups/imchannel-latest.db \
       --db /var/lib/imchannel/imchannel.db
     (or a dated backups/imchannel-YYYYMMDDTHHMMSSZ.db, or the copy your
     own backup tool brings back)
  3. systemctl start imchannel
  4. curl -fsS http://127.0.0.1:8080/healthz; look at the status page.

What restore does, in this order, stopping at the first problem:
  - refuses while a running service holds FILE (stop it first);
  - runs every check of 'imchannel check' on BACKUP; a BACKUP that fails
    changes nothing;
  - keeps the current FILE as FILE.pre-restore-YYYYMMDDTHHMMSSZ (UTC);
  - copies BACKUP to a temp file beside FILE, fsyncs it, checks the copy,
    gives it FILE's owner and mode, renames it over FILE and fsyncs the
    directory: FILE is the old file or the whole backup, never half of it;
  - prints what it did.
Messages that arrived after BACKUP was taken are not in it. A backup from
an older version is migrated when the service starts (after its own .bak).
Once the restored service looks right, delete the .pre-restore file.
`

// errFileInUse is restore's refusal while a service holds the database.
var errFileInUse = errors.New("is held by a running imchannel (stop the service first: systemctl stop imchannel)")

func runRestore(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("restore", "restore BACKUP --db FILE", stderr)
	dbPath := fs.String("db", "", "the database file to replace, the service's db (required)")
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprint(stderr, restoreProcedure)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *dbPath == "" {
		fs.Usage()
		return &exitError{2, errors.New("restore: need BACKUP and --db FILE")}
	}
	backup, db := pos[0], *dbPath
	if same, err := sameFile(backup, db); err != nil {
		return fmt.Errorf("restore: %w", err)
	} else if same {
		return &exitError{2, fmt.Errorf("restore: %s and %s are the same file", backup, db)}
	}

	// Hold bbolt's own lock on FILE while restoring: a running service
	// holds it, so this is the refusal, and a service started meanwhile
	// waits instead of opening a file about to be replaced.
	unlock, err := lockDatabase(db)
	if err != nil {
		return fmt.Errorf("restore: %s %w", db, err)
	}
	defer unlock()

	problems, err := checkFile(backup)
	if err != nil {
		return fmt.Errorf("restore: %s cannot be read as a database: %w; nothing was changed", backup, err)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
		return fmt.Errorf("restore: %s fails its check (%d problem(s)); nothing was changed", backup, len(problems))
	}
	fmt.Fprintf(stdout, "checked %s: ok\n", backup)

	// The current file is kept by a second name (a hard link: instant, no
	// copy); the rename below then only moves FILE's name to the new file.
	var kept string
	cur, err := os.Stat(db)
	switch {
	case err == nil:
		kept = db + ".pre-restore-" + time.Now().UTC().Format(backupLayout)
		if err := os.Link(db, kept); err != nil {
			return fmt.Errorf("restore: keep the current file: %w; nothing was changed", err)
		}
		if err := store.SyncDir(filepath.Dir(db)); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	case errors.Is(err, os.ErrNotExist):
		cur = nil
	default:
		return fmt.Errorf("restore: %w", err)
	}

	src, err := os.Open(backup)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer src.Close()
	var n int64
	err = store.WriteFileAtomic(db, func(w io.Writer) error {
		var err error
		n, err = io.Copy(w, src)
		return err
	}, func(tmp string) error {
		// The copy is read back and checked: a disk that mangled it must
		// not replace a working file.
		problems, err := checkFile(tmp)
		if err != nil {
			return fmt.Errorf("%w: %v", errCheckFailed, err)
		}
		if len(problems) > 0 {
			return fmt.Errorf("%w (%d problem(s), first: %s)", errCheckFailed, len(problems), problems[0])
		}
		return takeOwnership(tmp, db, cur)
	})
	if err != nil {
		if kept != "" {
			_ = os.Remove(kept) // FILE is untouched; the second name is not needed
		}
		return fmt.Errorf("restore: %w; %s was not changed", err, db)
	}
	if kept != "" {
		fmt.Fprintf(stdout, "kept the current file as %s\n", kept)
	} else {
		fmt.Fprintf(stdout, "%s did not exist; nothing to keep\n", db)
	}
	fmt.Fprintf(stdout, "restored %s to %s (%d bytes: copied, fsynced, checked, renamed into place, directory fsynced)\n", backup, db, n)
	fmt.Fprintln(stdout, "next: start the service (systemctl start imchannel)")
	return nil
}

// parseInterspersed parses flags that may come after positional arguments
// (`restore BACKUP --db FILE`), which the flag package alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// sameFile reports whether a and b name one file (both must exist).
func sameFile(a, b string) (bool, error) {
	ia, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	ib, err := os.Stat(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(ia, ib), nil
}
