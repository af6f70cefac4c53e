package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"imchannel/migrations"
	"imchannel/store"
)

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "version", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imchannel %s (schema %d)\n", Version, migrations.Latest())
	return nil
}

func runCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "check --db FILE", stderr)
	dbPath := fs.String("db", "", "database file to verify (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbPath == "" {
		fs.Usage()
		return &exitError{2, errors.New("check: --db is required")}
	}
	problems, err := checkFile(*dbPath)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
		return &exitError{1, fmt.Errorf("check: %s: %d problem(s)", *dbPath, len(problems))}
	}
	fmt.Fprintf(stdout, "%s: ok\n", *dbPath)
	return nil
}

// checkFile opens a file read-only and runs every check on it.
func checkFile(path string) ([]string, error) {
	db, err := store.OpenBolt(path, true, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return store.Check(db), nil
}

func runMigrate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", "migrate --db FILE [--dry-run]", stderr)
	dbPath := fs.String("db", "", "database file (required)")
	dry := fs.Bool("dry-run", false, "list the pending steps and change nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbPath == "" {
		fs.Usage()
		return &exitError{2, errors.New("migrate: --db is required")}
	}
	if *dry {
		db, err := store.OpenBolt(*dbPath, true, 5*time.Second)
		if err != nil {
			return err
		}
		defer db.Close()
		var v uint64
		_ = db.View(func(tx *bolt.Tx) error { v = migrations.Version(tx); return nil })
		if v > migrations.Latest() {
			return fmt.Errorf("%s has schema %d, newer than this binary's %d", *dbPath, v, migrations.Latest())
		}
		pending := migrations.Pending(v)
		fmt.Fprintf(stdout, "%s: schema %d, binary %d, %d pending step(s)\n", *dbPath, v, migrations.Latest(), len(pending))
		for _, s := range pending {
			fmt.Fprintf(stdout, "  %d  %s\n", s.Version, s.Description)
		}
		return nil
	}
	if _, err := os.Stat(*dbPath); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	st, err := store.Open(*dbPath, store.Options{})
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: at schema %d\n", *dbPath, migrations.Latest())
	return nil
}

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", "backup (--db FILE | --url http://HOST:PORT) OUT", stderr)
	dbPath := fs.String("db", "", "copy a stopped service's database file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *dbPath == "" {
		fs.Usage()
		return &exitError{2, errors.New("backup: need --db FILE and OUT")}
	}
	out := fs.Arg(0)
	db, err := store.OpenBolt(*dbPath, true, 5*time.Second)
	if err != nil {
		return err
	}
	n, err := store.BackupDB(db, out)
	_ = db.Close()
	if err != nil {
		return err
	}
	problems, err := checkFile(out)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		_ = os.Remove(out)
		return fmt.Errorf("backup failed its check (%s), removed it", problems[0])
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes), check ok\n", out, n)
	return nil
}

func runCompact(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("compact", "compact --db FILE OUT", stderr)
	dbPath := fs.String("db", "", "database file (the service must be stopped)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *dbPath == "" {
		fs.Usage()
		return &exitError{2, errors.New("compact: need --db FILE and OUT")}
	}
	out := fs.Arg(0)
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("compact: %s exists; refusing to overwrite", out)
	}
	src, err := store.OpenBolt(*dbPath, true, 5*time.Second)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := out + ".compacting"
	dst, err := bolt.Open(tmp, 0o600, nil)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if err := bolt.Compact(dst, src, 64<<20); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("compact: %w", err)
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	before, _ := os.Stat(*dbPath)
	after, _ := os.Stat(out)
	fmt.Fprintf(stdout, "compacted %s (%d bytes) into %s (%d bytes)\n", *dbPath, before.Size(), out, after.Size())
	return nil
}

func runErase(_ context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("erase: not implemented yet")
}
