package store

import (
	"os"
	"runtime"
	"strconv"
)

// mmapSize is how much address space OpenBolt maps for the file at path.
// bbolt remaps when the file outgrows its mapping, and a remap waits for
// every open read transaction to end: one backup or slow page would stall
// every commit behind it (and past 1 GiB bbolt grows the mapping 1 GiB at
// a time, so a growing file remaps often). Mapping far more than the file
// holds costs address space only (pages are read when touched, RSS is
// unchanged), so on 64-bit systems the mapping is 64 GiB, or twice the file
// when that is more. Windows grows the file itself to the mapping's size,
// and 32-bit systems lack the address space: they keep 1 GiB.
func mmapSize(path string) int {
	const small = 1 << 30
	if strconv.IntSize < 64 || runtime.GOOS == "windows" {
		return small
	}
	size := 64 << 30
	if fi, err := os.Stat(path); err == nil && int(fi.Size()) > size/2 {
		size = int(fi.Size()) * 2
	}
	return size
}
