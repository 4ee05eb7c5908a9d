package pinsvc

import (
	"net/url"
	"testing"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/alloccheck"
)

func FuzzPinBody(f *testing.F) {
	for _, s := range []string{
		`{"cid":"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"}`,
		`{"cid":"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy","name":"x","origins":["/ip4/1.2.3.4/tcp/1"],"meta":{"a":"b"}}`,
		`{"cid":null}`, `[]`, `{"cid":"x","meta":{"a":1}}`, `{"cid":"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy","origins":[""]}`,
		`{"cid":"QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn","name":"\u0000"}`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		alloccheck.Bound(t, len(data), func() {
			pr, err := parsePinBody(data)
			if err != nil {
				return
			}
			if !pr.cid.Defined() || len(pr.name) > pincluster.MaxNameLen || len(pr.origins) > pincluster.MaxOrigins {
				t.Fatalf("accepted an invalid pin: %+v", pr)
			}
			if err := (pincluster.PinOptions{Name: pr.name, Metadata: pr.meta, Origins: pr.origins}).Validate(); err != nil {
				t.Fatalf("accepted invalid options: %v", err)
			}
		})
	})
}

func FuzzListQuery(f *testing.F) {
	for _, s := range []string{
		"", "cid=bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy&name=a&match=ipartial",
		"status=queued,pinning&limit=1000", "before=2020-07-27T17:32:28Z&after=2020-07-27T17:32:28.123456789Z",
		"meta=%7B%22a%22%3A%22b%22%7D", "limit=0", "status=", "meta=null", "cid=,,,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		alloccheck.Bound(t, len(raw), func() {
			q, err := url.ParseQuery(raw)
			if err != nil {
				return
			}
			lq, err := parseListQuery(q)
			if err != nil {
				return
			}
			if lq.limit < 1 || lq.limit > MaxLimit || len(lq.cids) > MaxCidFilter {
				t.Fatalf("accepted out-of-range query: %+v", lq)
			}
		})
	})
}
