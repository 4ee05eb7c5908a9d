package rest

import (
	"net/url"
	"testing"

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
