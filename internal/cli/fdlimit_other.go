//go:build !unix

package cli

import "errors"

// raiseFDLimit is not supported here: serve then budgets for
// fallbackFDLimit descriptors.
func raiseFDLimit() (int, error) {
	return 0, errors.New("RLIMIT_NOFILE is not supported on this system")
}
