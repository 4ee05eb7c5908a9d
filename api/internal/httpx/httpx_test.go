package httpx

import (
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func TestParseCID(t *testing.T) {
	good := "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"
	if _, err := ParseCID(good); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCID("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"); err != nil {
		t.Fatal(err)
	}
	short, _ := mh.Sum([]byte("x"), mh.SHA2_256, 10)
	md5, _ := mh.Sum([]byte("x"), mh.MD5, -1)
	for _, s := range []string{"", "x", strings.Repeat("b", 600), cid.NewCidV1(cid.Raw, short).String(), cid.NewCidV1(cid.Raw, md5).String()} {
		if _, err := ParseCID(s); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
	if p, err := ParsePath("/ipfs/" + good + "/a/b/"); err != nil || p != "/ipfs/"+good+"/a/b" {
		t.Fatal(p, err)
	}
	for _, p := range []string{"/ipfs/", "/ipfs/x", "/foo/" + good, "/ipfs/" + good + "/../x", "/ipfs/" + good + "//x", "/ipns/a/\x01"} {
		if _, err := ParsePath(p); err == nil {
			t.Errorf("accepted %q", p)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy")
	f.Add("/ipfs/QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn/a")
	f.Add("/ipns/example.com/x")
	f.Add("f01551220")
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := ParseCID(s); err == nil && !c.Defined() {
			t.Fatal("undefined cid accepted")
		}
		if p, err := ParsePath(s); err == nil {
			if q, err := ParsePath(p); err != nil || q != p {
				t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, p, q, err)
			}
		}
	})
}
