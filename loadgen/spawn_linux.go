package loadgen

import "syscall"

// childAttr makes the kernel kill the child if the load generator dies
// (even by SIGKILL). Pdeathsig fires when the thread that started the child
// exits; Go only ends threads of goroutines that locked them, which the
// load generator never does.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
