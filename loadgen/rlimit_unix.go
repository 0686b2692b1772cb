//go:build unix

package loadgen

import "syscall"

// RaiseFileLimit raises this process's soft RLIMIT_NOFILE to its hard
// limit (children inherit it) and returns the limits before and after.
func RaiseFileLimit() (FileLimit, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return FileLimit{}, err
	}
	fl := FileLimit{SoftBefore: rl.Cur, Hard: rl.Max, Soft: rl.Cur}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fl, err
		}
		fl.Soft = rl.Max
	}
	return fl, nil
}

func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}
