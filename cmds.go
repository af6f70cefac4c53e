package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"imchannel/hmackey"
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
	fs := newFlags("check", "check --db FILE [--key FILE]", stderr)
	dbPath := fs.String("db", "", "database file to verify (required)")
	keyFile := fs.String("key", "", "HMAC key file, to look for what is left of erased customers (default: the database's path + \".key\", when it exists)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbPath == "" {
		fs.Usage()
		return &exitError{2, errors.New("check: --db is required")}
	}
	key, err := checkKey(*dbPath, *keyFile)
	if err != nil {
		return err
	}
	// One read-only open for every pass: the structural check, the erased
	// customers' residue and the freed pages' note.
	db, err := store.OpenBolt(*dbPath, true, 5*time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	problems := append(store.Check(db), store.CheckErased(db, key)...)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
		return &exitError{1, fmt.Errorf("check: %s: %d problem(s)", *dbPath, len(problems))}
	}
	fmt.Fprintf(stdout, "%s: ok\n", *dbPath)
	n, err := store.FreePageResidue(db)
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(stdout, "note: %d freed page(s) still hold old data (deleted or erased records, erased customers' included); "+
			"backups never copy them; `imchannel compact` writes a copy without them\n", n)
	}
	return nil
}

// checkKey is the HMAC key check matches erased customers with: from
// --key, or beside the database when that file exists (a copy checked
// elsewhere may have no key; then there is nothing to match the audit's
// hashes with, and nil skips that pass).
func checkKey(path, keyFile string) ([]byte, error) {
	if keyFile == "" {
		keyFile = hmackey.DefaultPath(path)
		if _, err := os.Stat(keyFile); err != nil {
			return nil, nil
		}
	}
	return hmackey.Load(keyFile)
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
	rawURL := fs.String("url", "", "copy from a running service through GET /admin/backup")
	user := fs.String("user", "", "agent login for --url (default $IMCHANNEL_USER)")
	password := fs.String("password", "", "agent password for --url (default $IMCHANNEL_PASSWORD; prefer the variable, flags show in ps)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (*dbPath == "") == (*rawURL == "") {
		fs.Usage()
		return &exitError{2, errors.New("backup: need exactly one of --db FILE or --url URL, and OUT")}
	}
	out := fs.Arg(0)
	prog := newProgress(stderr, "backup", *quiet)
	var write func(w io.Writer) error
	var confirm func() error
	var streamID string
	if *dbPath != "" {
		db, err := store.OpenBolt(*dbPath, true, 5*time.Second)
		if err != nil {
			return err
		}
		defer db.Close()
		write = func(w io.Writer) error {
			return db.View(func(tx *bolt.Tx) error {
				prog.begin(tx.Size())
				if _, err := store.WriteBackup(tx, prog.writer(w)); err != nil {
					return fmt.Errorf("backup: %w", err)
				}
				prog.finish()
				return nil
			})
		}
	} else {
		u, ui, err := backupURL(*rawURL)
		if err != nil {
			return &exitError{2, err}
		}
		name, pass := *user, *password
		if ui != nil {
			name = ui.Username()
			pass, _ = ui.Password()
		}
		if name == "" {
			name = os.Getenv("IMCHANNEL_USER")
		}
		if pass == "" {
			pass = os.Getenv("IMCHANNEL_PASSWORD")
		}
		write = func(w io.Writer) error { return fetchBackup(ctx, u, name, pass, w, prog, &streamID) }
		confirm = func() error { return confirmBackup(ctx, u, name, pass, streamID) }
	}
	n, err := writeChecked(out, write)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes), check ok\n", out, n)
	if confirm != nil && streamID != "" {
		// The file is good either way; only the service's record misses it.
		if err := confirm(); err != nil {
			fmt.Fprintf(stderr, "backup: warning: the service did not record this as its last backup: %v\n", err)
		}
	}
	return nil
}

func runCompact(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("compact", "compact --db FILE OUT", stderr)
	dbPath := fs.String("db", "", "database file (the service must be stopped)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
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
	before, err := os.Stat(*dbPath)
	if err != nil {
		return err
	}
	// The pages in use are what the compacted file will hold, roughly:
	// the measure for the progress line.
	var inUse int64
	_ = src.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			st := b.Stats()
			inUse += int64(st.BranchAlloc + st.LeafAlloc)
			return nil
		})
	})
	prog := newProgress(stderr, "compact", *quiet)
	reclaimed := 0
	n, err := writeChecked(out, func(w io.Writer) error {
		// bbolt needs a path, not a writer: compact into the (still
		// empty) temp file by its name.
		f := w.(*os.File)
		dst, err := bolt.Open(f.Name(), 0o600, &bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			return fmt.Errorf("compact: %w", err)
		}
		prog.begin(inUse)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(progressEvery / 5)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					s := dst.Stats()
					prog.set(min(s.TxStats.GetPageAlloc(), inUse*99/100))
				}
			}
		}()
		err = bolt.Compact(dst, src, 8<<20)
		close(stop)
		<-done
		if err == nil {
			// Hosted media a crash left without its message go from the copy.
			reclaimed, err = store.ReclaimOrphanMediaIn(dst)
		}
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("compact: %w", err)
		}
		prog.set(inUse)
		prog.finish()
		return nil
	})
	if err != nil {
		return err
	}
	saved := "nothing to reclaim"
	if d := before.Size() - n; d > 0 {
		saved = humanBytes(d) + " reclaimed"
	}
	if reclaimed > 0 {
		saved += fmt.Sprintf("; %d orphaned media reclaimed", reclaimed)
	}
	fmt.Fprintf(stdout, "compacted %s (%d bytes) into %s (%d bytes): %s\n", *dbPath, before.Size(), out, n, saved)
	return nil
}

func runErase(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("erase", "erase --db FILE --number N [--key FILE]", stderr)
	dbPath := fs.String("db", "", "database file (the service must be stopped; online: DELETE /api/v1/customers/{number})")
	number := fs.String("number", "", "the customer's phone number, any format")
	keyFile := fs.String("key", "", "HMAC key file (default: the database's path + \".key\", as serve uses)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *dbPath == "" || *number == "" {
		fs.Usage()
		return &exitError{2, errors.New("erase: need --db FILE and --number N")}
	}
	if store.NormalizeNumber(*number) == "" {
		return &exitError{2, fmt.Errorf("erase: --number %q has no digits", *number)}
	}
	if _, err := os.Stat(*dbPath); err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	key, _, err := hmackey.LoadOrCreate(cmdKeyPath(*dbPath, *keyFile))
	if err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	st, err := store.Open(*dbPath, store.Options{NoMigrate: true, HMACKey: key})
	if err != nil {
		return err
	}
	n, err := st.EraseNumber(ctx, *number)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("erase: %w (after removing %d message(s); run it again to finish)", err, n)
	}
	fmt.Fprintf(stdout, "erased %d message(s); audit line recorded for number hmac %s\n", n, store.NumberHMAC(key, *number))
	return nil
}

// cmdKeyPath is --key, else the key serve uses by default for db.
func cmdKeyPath(db, flag string) string {
	if flag != "" {
		return flag
	}
	return hmackey.DefaultPath(db)
}

// runErased answers "was this number erased?" from the audit lines and the
// HMAC key: exit 0 and the erasures if it was, exit 1 if not.
func runErased(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("erased", "erased --db FILE --number N [--key FILE]", stderr)
	dbPath := fs.String("db", "", "database file, read only (stop the service first, or ask a backup)")
	number := fs.String("number", "", "the phone number, any format")
	keyFile := fs.String("key", "", "HMAC key file (default: the database's path + \".key\")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *dbPath == "" || store.NormalizeNumber(*number) == "" {
		fs.Usage()
		return &exitError{2, errors.New("erased: need --db FILE and --number N")}
	}
	key, err := hmackey.Load(cmdKeyPath(*dbPath, *keyFile))
	if err != nil {
		return fmt.Errorf("erased: %w", err)
	}
	st, err := store.Open(*dbPath, store.Options{ReadOnly: true, NoMigrate: true, HMACKey: key})
	if err != nil {
		return err
	}
	defer st.Close()
	lines, err := st.Erasures(*number)
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		return &exitError{1, fmt.Errorf("erased: no erasure of that number is recorded (with this key)")}
	}
	for _, l := range lines {
		fmt.Fprintf(stdout, "erased at %s: %d message(s)\n", l.At.Format(time.RFC3339), l.Count)
	}
	return nil
}
