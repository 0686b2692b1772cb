//go:build !linux

package loadgen

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }
