//go:build !unix

package pincluster

// processCPU returns -1: the process's CPU time is read on Unix only.
func processCPU() int64 { return -1 }
