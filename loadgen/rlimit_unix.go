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
	// The fields are uint64 on Linux and int64 on some BSDs.
	fl := FileLimit{SoftBefore: uint64(rl.Cur), Hard: uint64(rl.Max), Soft: uint64(rl.Cur)}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fl, err
		}
		fl.Soft = uint64(rl.Max)
	}
	return fl, nil
}

func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
