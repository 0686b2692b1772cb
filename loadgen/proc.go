package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Process is a process whose CPU time and memory are read from /proc
// (Linux). The zero value is this process. It is safe for concurrent use.
type Process struct {
	pid int // 0: this process
}

// Self returns this process.
func Self() *Process { return &Process{} }

// PID returns the process with the given id.
func PID(pid int) *Process { return &Process{pid: pid} }

// PID returns the process id.
func (p *Process) PID() int {
	if p.pid == 0 {
		return os.Getpid()
	}
	return p.pid
}

func (p *Process) path(file string) string {
	if p.pid == 0 {
		return "/proc/self/" + file
	}
	return "/proc/" + strconv.Itoa(p.pid) + "/" + file
}

// clockTick is the unit of /proc/PID/stat times (USER_HZ), 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPU returns the process's user plus system CPU time so far (utime +
// stime in /proc/PID/stat), to a resolution of 10ms.
func (p *Process) CPU() (time.Duration, error) {
	b, err := os.ReadFile(p.path("stat"))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: unexpected %s", p.path("stat"))
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime(14) stime(15).
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: short %s", p.path("stat"))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("loadgen: unexpected %s", p.path("stat"))
	}
	return time.Duration(ut+st) * clockTick, nil
}

// RSS returns the process's resident memory (VmRSS in /proc/PID/status).
func (p *Process) RSS() (uint64, error) {
	return p.status("VmRSS:")
}

func (p *Process) status(key string) (uint64, error) {
	f, err := os.Open(p.path("status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		fs := strings.Fields(line[len(key):])
		if len(fs) != 2 || fs[1] != "kB" {
			break
		}
		kb, err := strconv.ParseUint(fs[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("loadgen: no %s in %s", key, p.path("status"))
}

// cpuMeter measures a process's CPU use over an interval.
type cpuMeter struct {
	p     *Process
	cpu   time.Duration
	start time.Time
	ok    bool
}

func startCPU(p *Process) cpuMeter {
	if p == nil {
		return cpuMeter{}
	}
	c, err := p.CPU()
	return cpuMeter{p: p, cpu: c, start: time.Now(), ok: err == nil}
}

// percent returns the CPU time used since start in percent of one core.
func (m cpuMeter) percent() (float64, bool) {
	if !m.ok {
		return 0, false
	}
	c, err := m.p.CPU()
	wall := time.Since(m.start)
	if err != nil || wall <= 0 {
		return 0, false
	}
	return round1(100 * float64(c-m.cpu) / float64(wall)), true
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// Machine describes where a run happened.
type Machine struct {
	NumCPU     int    `json:"nproc"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

// ThisMachine describes this machine: runtime.NumCPU (what nproc prints),
// the first "model name" of /proc/cpuinfo and the Go version.
func ThisMachine() Machine {
	m := Machine{
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// portRange returns the size of the ephemeral port range, or a common
// default.
func portRange() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && hi >= lo {
				return hi - lo + 1
			}
		}
	}
	return 28232
}
