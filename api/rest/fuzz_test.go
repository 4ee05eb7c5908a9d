package rest

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pincluster/pincluster/api/internal/fake"

	"github.com/pincluster/pincluster/api/internal/alloccheck"
)

func FuzzPinQuery(f *testing.F) {
	for _, s := range []string{
		"", "name=a&mode=direct&replication-min=1&replication-max=3",
		"meta-a=b&meta-c=d&origins=/ip4/1.2.3.4/tcp/1/p2p/12D3KooWSoLzampfxc4t3sy9z7yq1Cgzbi7zGXpV7nYia3UXQfmB",
		"expire-at=2030-01-01T00:00:00Z", "expire-in=1h", "replication=-1", "shard-size=1024",
		"user-allocations=12D3KooWSoLzampfxc4t3sy9z7yq1Cgzbi7zGXpV7nYia3UXQfmB,x",
		"pin-update=bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy", "a=1&a=2", "%zz",
		"replication-min=99999999999999999999", "mode=%00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		alloccheck.Bound(t, len(raw), func() {
			q, err := url.ParseQuery(raw)
			if err != nil {
				return
			}
			opts, _, err := parsePinQuery(q)
			if err == nil {
				if verr := opts.Validate(); verr != nil {
					t.Fatalf("accepted invalid options: %v", verr)
				}
			}
			_, _ = parseAddQuery(q)
			_, _ = parseStatusAllQuery(q)
		})
	})
}

func FuzzPinTarget(f *testing.F) {
	for _, s := range []string{
		"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy",
		"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy/recover",
		"ipfs/bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy/a/b",
		"ipns/example.com", "ipld/x", "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn",
		"ipfs/../..", "", "/", "recover", "bafyaa",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		alloccheck.Bound(t, len(s), func() {
			tg, err := parsePinTarget(s)
			if err != nil {
				return
			}
			if !tg.cid.Defined() && tg.path == "" {
				t.Fatalf("accepted %q without a cid or a path", s)
			}
		})
	})
}

// FuzzAddMultipart sends arbitrary bodies to /add with a fixed multipart
// boundary: part headers, names, nested directories, CARs. Every answer
// is 200, 400 or 413, and a refused import pins nothing.
func FuzzAddMultipart(f *testing.F) {
	const boundary = "XyZ"
	part := func(name, ctype, body string) string {
		return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name +
			"\"\r\nContent-Type: " + ctype + "\r\n\r\n" + body + "\r\n"
	}
	f.Add("", part("a.txt", "application/octet-stream", "hello")+"--"+boundary+"--\r\n")
	f.Add("wrap=true", part("d", "application/x-directory", "")+part("d%2Fb.txt", "text/plain", "b")+"--"+boundary+"--\r\n")
	f.Add("format=car", part("x.car", "application/car", "\x0a\xa2eroots\x80gversion\x01")+"--"+boundary+"--\r\n")
	f.Add("", part("../x", "text/plain", "x")+"--"+boundary+"--\r\n")
	f.Add("", "--"+boundary+"\r\nContent-Disposition: form-data\r\n\r\nx")
	f.Fuzz(func(t *testing.T, query, body string) {
		fb := fake.New()
		a, err := New(fb, Config{MaxAddBytes: 1 << 16, MaxCARBlocks: 100})
		if err != nil {
			t.Fatal(err)
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		req := httptest.NewRequest("POST", "/add?"+q.Encode(), strings.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
		case 400, 413:
			if fb.PinCount() != 0 {
				t.Fatalf("refused (%d) but pinned: %s", rec.Code, rec.Body)
			}
		default:
			if rec.Code != 500 || fb.PinCount() != 0 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}
