//go:build !unix

package loadgen

import "errors"

// RaiseFileLimit is not supported on this system.
func RaiseFileLimit() (FileLimit, error) {
	return FileLimit{}, errors.New("loadgen: RLIMIT_NOFILE is not supported on this system")
}

func fileLimit() uint64 { return 0 }
