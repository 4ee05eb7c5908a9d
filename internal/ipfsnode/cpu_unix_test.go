//go:build unix

package ipfsnode_test

import "syscall"

// processCPU returns the CPU time the process has used, user and system
// (all threads), in nanoseconds; -1 where unknown.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
