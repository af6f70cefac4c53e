//go:build linux

package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// setFileSizeLimit sets RLIMIT_FSIZE of a running process (prlimit(2)).
// Writes that would put a file beyond the limit fail with EFBIG; Go
// ignores the accompanying SIGXFSZ unless asked for it, so the process
// keeps running and sees a plain write error. This works as root, in a
// container without CAP_SYS_ADMIN (no mount needed) and where chattr or a
// read-only directory would not stop root.
func setFileSizeLimit(t testing.TB, pid int, limit uint64) {
	t.Helper()
	lim := syscall.Rlimit{Cur: limit, Max: ^uint64(0)}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_FSIZE),
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
	if errno != 0 {
		t.Fatalf("prlimit(%d, RLIMIT_FSIZE, %d): %v", pid, limit, errno)
	}
}

// TestStorageFault makes every database write fail while the service runs
// (RLIMIT_FSIZE below the first data page: only the two meta pages remain
// writable, so no transaction can commit). Webhooks must then answer 503
// so providers retry, /healthz must answer 503 and say why, and once
// writes work again the service must recover without a restart, lose
// nothing it acknowledged and leave a file that passes check.
func TestStorageFault(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, options{})
	db := dir + "/fault.db"
	s := start(t, cfg, db)
	s.healthy(t)
	hasInbound := s.routeExists(t, "POST", "/imchannel/message", authInbound)

	var acked []string
	post := func(id string) int {
		code, body := s.do(t, "POST", "/imchannel/message", authInbound, infobipInbound(id, "31611110000", "fault test "+id), nil)
		if code/100 == 2 {
			acked = append(acked, id)
		} else {
			require.Contains(t, string(body), `"error"`, "a non-2xx webhook answer must carry a JSON error")
		}
		return code
	}
	if hasInbound {
		for i := range 5 {
			require.Equal(t, 200, post(fmt.Sprintf("before-%d", i)))
		}
	} else {
		t.Log("POST /imchannel/message is not mounted yet: checking /healthz only")
	}

	// Writes fail from here on.
	setFileSizeLimit(t, s.cmd.Process.Pid, 8192)
	code, body := s.do(t, "GET", "/healthz", authNone, nil, nil)
	require.Equal(t, 503, code, "healthz with an unwritable database: %s", body)
	require.Contains(t, string(body), "database cannot take writes", "healthz must say why")
	require.Contains(t, string(body), "file too large", "healthz must name the underlying error (EFBIG)")
	if hasInbound {
		for i := range 5 {
			require.Equal(t, 503, post(fmt.Sprintf("during-%d", i)), "a webhook that cannot be stored must get 503 so the provider retries")
		}
	}
	require.True(t, s.alive(), "the service must survive write failures\n%s", s.logs.String())
	// Reads keep working while writes fail.
	if s.routeExists(t, "GET", "/api/v1/messages?externalId=before-0", authAgent) && hasInbound {
		code, body := s.do(t, "GET", "/api/v1/messages?externalId=before-0", authAgent, nil, nil)
		require.Equal(t, 200, code, "%s", body)
		require.Contains(t, string(body), "before-0")
	}

	// Writes work again: no restart.
	setFileSizeLimit(t, s.cmd.Process.Pid, ^uint64(0))
	s.healthy(t)
	if hasInbound {
		// The provider retries what got 503; now it is stored.
		for i := range 5 {
			require.Equal(t, 200, post(fmt.Sprintf("during-%d", i)))
			require.Equal(t, 200, post(fmt.Sprintf("after-%d", i)))
		}
	}
	s.stop(t)
	check(t, db)

	st := openStopped(t, db)
	for _, id := range acked {
		msgs, err := st.MessagesByExternalID(id)
		require.NoError(t, err)
		require.Len(t, msgs, 1, "acknowledged message %s must be stored exactly once", id)
	}
	require.True(t, !hasInbound || len(acked) == 15, "acked %d", len(acked))
	require.False(t, strings.Contains(s.logs.String(), "panic"), "log shows a panic:\n%s", s.logs.String())
}
