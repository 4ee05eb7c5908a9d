package rpc

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"
)

// readRequest reads a request as the server does (header, method check,
// body), and then the rest of the input as a response sequence as the
// client does.
func readRequest(data []byte, maxFrame int) {
	fr := &frameReader{r: bytes.NewReader(data)}
	var hdr reqHeader
	if err := fr.readHeader(&hdr); err != nil {
		return
	}
	if validMethod(hdr.Method) != nil {
		return
	}
	if _, err := fr.readFrame(maxFrame); err != nil {
		return
	}
	for range 16 {
		var rh respHeader
		if err := fr.readHeader(&rh); err != nil {
			return
		}
		if rh.Kind == kindResult || rh.Kind == kindItem {
			if _, err := fr.readFrame(maxFrame); err != nil {
				return
			}
		}
	}
}

// FuzzFrameReader fuzzes the RPC frame reader (length prefix, header with
// method name, body). No input may panic, and
// reading n bytes may allocate at most 64·n + 1 MiB, whatever lengths the
// input announces.
//
//	go test -run '^$' -fuzz FuzzFrameReader -fuzztime 20s ./internal/rpc/
func FuzzFrameReader(f *testing.F) {
	req := func(h reqHeader, body []byte) []byte {
		b, _ := appendHeader(nil, h)
		return appendFrame(b, body)
	}
	resp := func(b []byte, h respHeader, body []byte) []byte {
		b, _ = appendHeader(b, h)
		if body != nil {
			b = appendFrame(b, body)
		}
		return b
	}
	valid := req(reqHeader{Version: 1, Method: "Status", TimeoutMS: 1500}, []byte{0xa1, 0x01, 0x02})
	f.Add(valid)
	f.Add(resp(bytes.Clone(valid), respHeader{Kind: kindResult}, []byte("ok")))
	f.Add(resp(resp(bytes.Clone(valid), respHeader{Kind: kindItem}, []byte{1}), respHeader{Kind: kindEnd}, nil))
	f.Add(resp(bytes.Clone(valid), respHeader{Kind: kindError, Code: codePermission, Msg: "no"}, nil))
	f.Add(req(reqHeader{Version: 1, Method: "S", Streaming: true}, nil))
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add(bytes.Repeat([]byte{0xff}, 11))
	f.Add(binary.AppendUvarint(nil, 1<<62))
	f.Add(append(req(reqHeader{Version: 1, Method: "M"}, nil)[:2], binary.AppendUvarint(nil, 4<<20)...))
	hdr, _ := appendHeader(nil, reqHeader{Version: 1, Method: "M"})
	f.Add(append(hdr, binary.AppendUvarint(nil, 4<<20-1)...))          // body announced at the limit, absent
	f.Add(append(hdr, append(binary.AppendUvarint(nil, 70000), 1)...)) // above directAlloc, truncated
	f.Add(appendFrame(nil, []byte("not cbor")))
	f.Add(appendFrame(nil, []byte{0xbf, 0x01, 0x01, 0xff})) // indefinite-length map

	const maxFrame = 4 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		readRequest(data, maxFrame)
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		if limit := uint64(64*len(data)) + 1<<20; alloc > limit {
			t.Fatalf("reading %d bytes allocated %d bytes (limit %d)", len(data), alloc, limit)
		}
	})
}
