package rest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/fake"
)

// BenchmarkStatusAllStream measures streaming GET /pins (NDJSON) over
// 10,000 pins of the fake backend; reported per pin.
func BenchmarkStatusAllStream(b *testing.B) {
	fb := fake.New()
	const n = 10_000
	for i := range n {
		if _, err := fb.Pin(context.Background(), testCID(b, fmt.Sprint(i)), pincluster.PinOptions{Name: "x"}); err != nil {
			b.Fatal(err)
		}
	}
	a, err := New(fb, Config{})
	if err != nil {
		b.Fatal(err)
	}
	h := a.Handler()
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest("GET", "/pins", nil)
		w := &countWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.lines != n {
			b.Fatalf("%d lines", w.lines)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/pin")
}

type countWriter struct {
	h     http.Header
	lines int
}

func (w *countWriter) Header() http.Header { return w.h }
func (w *countWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			w.lines++
		}
	}
	return io.Discard.Write(p)
}
func (w *countWriter) WriteHeader(int) {}
