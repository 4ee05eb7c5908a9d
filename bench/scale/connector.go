package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"sync"

	cid "github.com/ipfs/go-cid"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// fileConnector is an IPFS connector whose pins succeed at once and are
// appended to a file (length-prefixed CID bytes) instead of being kept in
// memory; PinLs streams the file. The other methods are a MockConnector's.
// Unpin is not supported (the benchmark only adds).
type fileConnector struct {
	*clustertest.MockConnector
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
	n  int
}

func newFileConnector(path string) (*fileConnector, error) {
	// A killed run may have left half a record at the end: cut it.
	n, valid, err := scanPinFile(path)
	if err != nil {
		return nil, err
	}
	if err := os.Truncate(path, valid); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &fileConnector{MockConnector: clustertest.NewMockConnector(), f: f, w: bufio.NewWriterSize(f, 1<<20), n: n}, nil
}

// scanPinFile returns the number of whole records in the pin file and
// their length in bytes.
func scanPinFile(path string) (n int, valid int64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	buf := make([]byte, 255)
	for {
		l, err := r.ReadByte()
		if err == io.EOF {
			return n, valid, nil
		}
		if err != nil {
			return 0, 0, err
		}
		if _, err := io.ReadFull(r, buf[:l]); err == io.ErrUnexpectedEOF || err == io.EOF {
			return n, valid, nil
		} else if err != nil {
			return 0, 0, err
		}
		n++
		valid += 1 + int64(l)
	}
}

func (c *fileConnector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Pin implements pincluster.IPFSConnector.
func (c *fileConnector) Pin(_ context.Context, pin pincluster.Pin, _ func(pincluster.PinProgress)) error {
	b := pin.Cid.Bytes()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.w.WriteByte(byte(len(b))); err != nil {
		return err
	}
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	c.n++
	return nil
}

// Unpin implements pincluster.IPFSConnector.
func (c *fileConnector) Unpin(context.Context, cid.Cid) error {
	return errors.New("scale: unpin not supported")
}

// PinLsCid implements pincluster.IPFSConnector by scanning the file.
func (c *fileConnector) PinLsCid(ctx context.Context, pin pincluster.Pin) (pincluster.IPFSPinStatus, error) {
	for p, err := range c.PinLs(ctx) {
		if err != nil {
			return 0, err
		}
		if p.Cid.Equals(pin.Cid) {
			return pincluster.IPFSPinStatusRecursive, nil
		}
	}
	return pincluster.IPFSPinStatusUnpinned, nil
}

// PinLs implements pincluster.IPFSConnector: every pin is recursive.
func (c *fileConnector) PinLs(ctx context.Context, _ ...pincluster.IPFSPinStatus) iter.Seq2[pincluster.IPFSPinInfo, error] {
	return func(yield func(pincluster.IPFSPinInfo, error) bool) {
		c.mu.Lock()
		err := c.w.Flush()
		c.mu.Unlock()
		if err != nil {
			yield(pincluster.IPFSPinInfo{}, err)
			return
		}
		f, err := os.Open(c.f.Name())
		if err != nil {
			yield(pincluster.IPFSPinInfo{}, err)
			return
		}
		defer f.Close()
		r := bufio.NewReaderSize(f, 1<<20)
		buf := make([]byte, 255)
		for ctx.Err() == nil {
			l, err := r.ReadByte()
			if err == io.EOF {
				return
			}
			if err == nil {
				_, err = io.ReadFull(r, buf[:l])
			}
			if err != nil {
				yield(pincluster.IPFSPinInfo{}, fmt.Errorf("scale: pin file: %w", err))
				return
			}
			ci, err := cid.Cast(buf[:l])
			if err != nil {
				yield(pincluster.IPFSPinInfo{}, err)
				return
			}
			if !yield(pincluster.IPFSPinInfo{Cid: ci, Type: pincluster.IPFSPinStatusRecursive}, nil) {
				return
			}
		}
	}
}

// Close flushes and closes the file.
func (c *fileConnector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.w.Flush()
	return errors.Join(err, c.f.Close())
}
