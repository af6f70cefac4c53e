package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// docSection is the text of path's "## heading" section, up to the next
// "## " heading.
func docSection(t *testing.T, path, heading string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	_, sec, ok := strings.Cut(string(raw), "\n## "+heading+"\n")
	require.True(t, ok, "%s has ## %s", path, heading)
	sec, _, _ = strings.Cut(sec, "\n## ")
	return sec
}

// TestArchitectureMap keeps docs/architecture.md's "How it fits together"
// table true as the code moves: every file a row names exists, every
// function a row names is defined in one of that row's files, and every
// store.X it names is defined in package store.
func TestArchitectureMap(t *testing.T) {
	sec := docSection(t, "docs/architecture.md", "How it fits together")

	ticks := regexp.MustCompile("`([^`]*)`")
	ident := regexp.MustCompile(`^(store\.)?[A-Za-z][A-Za-z0-9]*$`)
	defines := func(t *testing.T, files []string, name string) bool {
		t.Helper()
		def := regexp.MustCompile(`(?m)^(func (\([^)]*\) )?|type )` + name + `\b`)
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			if def.Match(b) {
				return true
			}
		}
		return false
	}
	storeFiles, err := filepath.Glob("store/*.go")
	require.NoError(t, err)

	rows := 0
	for _, l := range strings.Split(sec, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) < 4 || !strings.Contains(cells[2], "`") {
			continue
		}
		rows++
		var files, names []string
		for _, m := range ticks.FindAllStringSubmatch(cells[2], -1) {
			tok := m[1]
			switch {
			case strings.HasSuffix(tok, ".go"):
				got, err := filepath.Glob(tok)
				require.NoError(t, err)
				require.NotEmpty(t, got, "%s (row %q) names no file", tok, cells[1])
				files = append(files, got...)
			case strings.HasSuffix(tok, "/"):
				require.DirExists(t, tok, "row %q", cells[1])
			case ident.MatchString(tok):
				names = append(names, tok)
			}
		}
		for _, n := range names {
			if s, ok := strings.CutPrefix(n, "store."); ok {
				require.True(t, defines(t, storeFiles, s), "%s (row %q) is not defined in package store", n, cells[1])
				continue
			}
			require.True(t, defines(t, files, n), "%s (row %q) is not defined in the row's files %v", n, cells[1], files)
		}
	}
	require.GreaterOrEqual(t, rows, 10, "the table parsed")
}
