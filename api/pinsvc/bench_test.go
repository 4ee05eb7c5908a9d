package pinsvc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/pincluster/pincluster/api/internal/fake"
)

// BenchmarkListPage measures GET /pins?limit=1000 over 10,000 requests of
// one user (statuses computed for the page only).
func BenchmarkListPage(b *testing.B) {
	a, err := New(fake.New(), Config{Tokens: map[string]string{"t": "u"}})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10_000 {
		if _, err := a.create(context.Background(), "u", pinRequest{cid: testCID(b, fmt.Sprint(i))}, nil); err != nil {
			b.Fatal(err)
		}
	}
	h := a.Handler()
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest("GET", "/pins?limit=1000", nil)
		req.Header.Set("Authorization", "Bearer t")
		rec := &discardWriter{h: http.Header{}}
		h.ServeHTTP(rec, req)
		if rec.code != 200 {
			b.Fatal(rec.code)
		}
	}
}

// BenchmarkCreate measures POST /pins handling (record + cluster pin).
func BenchmarkCreate(b *testing.B) {
	a, err := New(fake.New(), Config{})
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		if _, err := a.create(context.Background(), "u", pinRequest{cid: testCID(b, fmt.Sprint(i))}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return io.Discard.Write(p) }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
