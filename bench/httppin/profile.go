package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// blockProfile is -blockprofile, mutexProfile -mutexprofile: where the
// burst's goroutines wait (channel operations, locks, select, I/O waits
// through sync) and which mutexes are contended.
var blockProfile, mutexProfile string

func init() {
	flag.StringVar(&blockProfile, "blockprofile", "", "write a block profile of the burst to this file")
	flag.StringVar(&mutexProfile, "mutexprofile", "", "write a mutex contention profile of the burst to this file")
}

// startExtraProfiles starts the block and mutex profiles asked for; the
// returned function writes them.
func startExtraProfiles() (stop func() error) {
	if blockProfile != "" {
		runtime.SetBlockProfileRate(10_000) // one event per 10 µs blocked
	}
	if mutexProfile != "" {
		runtime.SetMutexProfileFraction(10)
	}
	return func() error {
		write := func(name, path string) error {
			if path == "" {
				return nil
			}
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
				return fmt.Errorf("%s profile: %w", name, err)
			}
			return f.Close()
		}
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
		if err := write("block", blockProfile); err != nil {
			return err
		}
		return write("mutex", mutexProfile)
	}
}
