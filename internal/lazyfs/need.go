package lazyfs

import (
	"os"
	"testing"
)

// Need stops a test that needs FUSE where it cannot work: under CI
// (CI=true) that is a failure, so a CI machine without FUSE cannot pass the
// power-loss tests by skipping them; elsewhere the test is skipped.
func Need(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("FUSE is needed (install fuse3, run as root with /dev/fuse): %v", err)
	}
	t.Skipf("FUSE is not available here: %v", err)
}
