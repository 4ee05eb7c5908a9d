//go:build !unix

package ipfsnode_test

// processCPU is unknown here: -1.
func processCPU() int64 { return -1 }
