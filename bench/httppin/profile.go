package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
)

// blockProfile is -blockprofile, mutexProfile -mutexprofile: where the
// burst's goroutines wait (channel operations, locks, select, I/O waits
// through sync) and which mutexes are contended.
var blockProfile, mutexProfile, memProfile string

func init() {
	flag.StringVar(&memProfile, "memprofile", "", "write the allocation profiles at the burst's start (FILE.start) and end (FILE); the burst's own: go tool pprof -diff_base FILE.start FILE")
	flag.StringVar(&blockProfile, "blockprofile", "", "write a block profile of the burst to this file")
	flag.StringVar(&mutexProfile, "mutexprofile", "", "write a mutex contention profile of the burst to this file")
}

// startExtraProfiles starts the block, mutex and allocation profiles asked
// for; the returned function writes them.
func startExtraProfiles() (stop func() error) {
	if memProfile != "" {
		runtime.GC() // the profile shows allocations up to the last GC's cycle
		if err := writeProfile("allocs", memProfile+".start"); err != nil {
			log.Print(err)
		}
	}
	if blockProfile != "" {
		runtime.SetBlockProfileRate(10_000) // one event per 10 µs blocked
	}
	if mutexProfile != "" {
		runtime.SetMutexProfileFraction(10)
	}
	return func() error {
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
		if err := writeProfile("block", blockProfile); err != nil {
			return err
		}
		if err := writeProfile("mutex", mutexProfile); err != nil {
			return err
		}
		if memProfile != "" {
			runtime.GC()
		}
		return writeProfile("allocs", memProfile)
	}
}

// writeProfile writes the named runtime profile to path ("": nothing).
func writeProfile(name, path string) error {
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
