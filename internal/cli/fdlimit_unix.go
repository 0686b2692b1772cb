//go:build unix

package cli

import "syscall"

// raiseFDLimit raises the soft RLIMIT_NOFILE to the hard limit and returns
// the soft limit in force afterwards.
func raiseFDLimit() (int, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			rl = want
		}
	}
	return int(min(rl.Cur, maxFDLimit)), nil
}
