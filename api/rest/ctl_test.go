package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/clustertest"
)

// Regression tests for what ipfs-cluster-ctl v1.1.6 (and IPFS Cluster's Go
// client) sends and reads, found by running the real ctl against the
// daemon (issue 13), and for the bad /add and replication parameters of
// issue 15 (items 5 and 7). Each failed on the code before the fix.

// ctlPinQuery is what the Go client's PinOptions.ToQuery sends for
// "pin add --name x <cid>".
const ctlPinQuery = "replication-min=0&replication-max=0&name=x&mode=recursive&shard-size=0&user-allocations="

// ctlAddQuery is what AddParams.ToQueryString sends for "add <file>".
const ctlAddQuery = "replication-min=0&replication-max=0&name=&mode=recursive&shard-size=104857600" +
	"&user-allocations=&shard=false&local=false&recursive=false&layout=&chunker=size-262144" +
	"&raw-leaves=false&hidden=false&wrap-with-directory=false&progress=false&cid-version=0" +
	"&hash=sha2-256&stream-channels=true&nocopy=false&format=unixfs&no-pin=false"

// TestCtlPinJSON: the Pin document's type and mode are names, as the Go
// client decodes them ("json: cannot unmarshal number into Go struct
// field Pin.type of type string" before).
func TestCtlPinJSON(t *testing.T) {
	e := newEnv(t, nil)
	c := testCID(t, "ctl-pin")
	resp, b := e.do("POST", "/pins/ipfs/"+c.String()+"?"+ctlPinQuery, nil)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	var pin upPin
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&pin))
	require.Equal(t, upPinType("pin"), pin.Type)
	require.Equal(t, upPinMode("recursive"), pin.Mode)
	require.Equal(t, c, pin.Cid.Cid)
	require.Equal(t, 1, e.fake.Calls("Pin"), "a bare /ipfs/<cid> is pinned as the CID")
	require.Equal(t, 0, e.fake.Calls("PinPath"))
}

// TestCtlPinUpdate: "pin update <from> <to>" posts /pins/ipfs/<to>?
// pin-update=<from> (refused as "pin-update needs a cid, not a path"
// before).
func TestCtlPinUpdate(t *testing.T) {
	e := newEnv(t, nil)
	from, to := testCID(t, "from"), testCID(t, "to")
	resp, b := e.do("POST", "/pins/"+from.String()+"?"+ctlPinQuery, nil)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	resp, b = e.do("POST", "/pins/ipfs/"+to.String()+"?"+ctlPinQuery+"&name=y&pin-update="+from.String(), nil)
	require.Equal(t, 400, resp.StatusCode, "name given twice: %s", b)
	resp, b = e.do("POST", "/pins/ipfs/"+to.String()+"?"+strings.Replace(ctlPinQuery, "name=x", "name=y", 1)+"&pin-update="+from.String(), nil)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	var pin upPin
	require.NoError(t, json.Unmarshal(b, &pin))
	require.Equal(t, to, pin.Cid.Cid)
	require.Equal(t, from, pin.PinUpdate.Cid, "an update of from")
	require.Equal(t, "y", pin.Name)
	require.True(t, e.fake.Has(to))

	// A path below a CID cannot name the pin to update: 400, naming it.
	resp, b = e.do("POST", "/pins/ipfs/"+to.String()+"/a/b?pin-update="+from.String(), nil)
	requireError(t, resp.StatusCode, 400, b)
	require.Contains(t, string(b), "pin-update")
}

// ctlMultipart builds a multipart/form-data body of named parts (a value
// "<dir>" makes a directory part, as ipfs-cluster-ctl sends for add -r).
func ctlMultipart(t *testing.T, parts ...[2]string) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+p[0]+`"`)
		if p[1] == "<dir>" {
			h.Set("Content-Type", "application/x-directory")
			_, err := mw.CreatePart(h)
			require.NoError(t, err)
			continue
		}
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		require.NoError(t, err)
		_, err = w.Write([]byte(p[1]))
		require.NoError(t, err)
	}
	require.NoError(t, mw.Close())
	return &buf, mw.FormDataContentType()
}

// TestCtlAddOptions: /add accepts the whole option set the Go client sends
// (refused with "unknown query option no-pin" before); no-pin adds
// without pinning; shard=true, nocopy=true and progress=true, which
// pincluster cannot honour, are a 400 naming them.
func TestCtlAddOptions(t *testing.T) {
	e := newEnv(t, nil)
	body, ct := ctlMultipart(t, [2]string{"a.txt", "hello\n"})
	resp, b := e.do("POST", "/add?"+ctlAddQuery, body, "Content-Type", ct)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	items := ndjson(t, b)
	require.Len(t, items, 1)
	require.Equal(t, "a.txt", items[0]["name"])
	require.Equal(t, 1, e.fake.PinCount())

	body, ct = ctlMultipart(t, [2]string{"b.txt", "world\n"})
	resp, b = e.do("POST", "/add?"+strings.Replace(ctlAddQuery, "no-pin=false", "no-pin=true", 1), body, "Content-Type", ct)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	require.Equal(t, 1, e.fake.PinCount(), "no-pin pins nothing")

	for _, opt := range []string{"shard", "nocopy", "progress"} {
		body, ct = ctlMultipart(t, [2]string{"c.txt", "c\n"})
		resp, b = e.do("POST", "/add?"+strings.Replace(ctlAddQuery, opt+"=false", opt+"=true", 1), body, "Content-Type", ct)
		requireError(t, resp.StatusCode, 400, b)
		require.Contains(t, string(b), opt)
	}
}

// TestCtlAddDirectory: "add -r <dir>" (a directory part first, no
// wrapping) lists every file, each directory after its contents and the
// top directory last, which is the one pinned — as IPFS Cluster and
// ipfs add do. The CIDs are Kubo's for the same tree (ipfs add -r,
// Kubo 0.42). Before, each file was added on its own and the last file
// pinned.
func TestCtlAddDirectory(t *testing.T) {
	c := realPeers(t, 1).Peer(0).Cluster
	e := clusterEnv(t, c)
	body, ct := ctlMultipart(t, [2]string{"dir", "<dir>"}, [2]string{"dir/one.txt", "one\n"},
		[2]string{"dir/sub", "<dir>"}, [2]string{"dir/sub/two.txt", "two\n"})
	resp, b := e.do("POST", "/add?"+strings.Replace(ctlAddQuery, "recursive=false", "recursive=true", 1), body, "Content-Type", ct)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	var got [][2]string
	for _, it := range ndjson(t, b) {
		got = append(got, [2]string{it["name"].(string), it["cid"].(string)})
	}
	require.Equal(t, [][2]string{
		{"dir/one.txt", "QmUB9Nr7RpqNYQpyh4W9r3RQNttiPQ6BQ9iQLkw9LztJFz"},
		{"dir/sub/two.txt", "QmapoNeQhJxjMDWstx27etyxMNLU4MtkDk8BMfyHRao8P8"},
		{"dir/sub", "QmdAZ1qBG8SytfKVL8A6z2ef1JSZLN5EzVcCw9tB4LvZK5"},
		{"dir", "QmSUpUCXZSMMMVmdsc6Hnuwq2x4MQkWmMu6Bt17UyM7KF7"},
	}, got)
	var pins []string
	for p, err := range c.Pins(t.Context(), pincluster.PinFilter{}) {
		require.NoError(t, err)
		pins = append(pins, p.Cid.String())
	}
	require.Equal(t, []string{"QmSUpUCXZSMMMVmdsc6Hnuwq2x4MQkWmMu6Bt17UyM7KF7"}, pins, "the directory is the pin")
}

// TestAddBadParameters is issue 15 item 5 against a real peer: bad /add
// parameters answer 400 naming the parameter (500 before), and nothing is
// pinned.
func TestAddBadParameters(t *testing.T) {
	c := realPeers(t, 1).Peer(0).Cluster
	e := clusterEnv(t, c)
	one := func() (*bytes.Buffer, string) { return ctlMultipart(t, [2]string{"a.txt", "hello\n"}) }
	for _, tc := range []struct {
		query, want string
		body        func() (*bytes.Buffer, string)
	}{
		{"chunker=bogus", "chunker", one},
		{"chunker=size-0", "chunker", one},
		{"hash=identity", "hash", one},
		{"hash=md5&cid-version=1", "hash", one},
		{"", "no file", func() (*bytes.Buffer, string) { return ctlMultipart(t) }},
		{"wrap=true", "two files named", func() (*bytes.Buffer, string) {
			return ctlMultipart(t, [2]string{"a.txt", "1"}, [2]string{"a.txt", "2"})
		}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			body, ct := tc.body()
			resp, b := e.do("POST", "/add?"+tc.query, body, "Content-Type", ct)
			requireError(t, resp.StatusCode, 400, b)
			require.Contains(t, string(b), tc.want)
		})
	}
	for p, err := range c.Pins(t.Context(), pincluster.PinFilter{}) {
		require.NoError(t, err)
		t.Fatalf("pinned %s", p.Cid)
	}
}

// TestReplicationRefused is issue 15 item 7: under a default of -1:-1, a
// replication-min of 65536 (stored as -1:-1 before) and
// replication-min=1&replication-max=-1 are both refused with a 400 naming
// the replication, as IPFS Cluster refuses a factor of -1 beside another.
func TestReplicationRefused(t *testing.T) {
	cl := clustertest.Start(t, clustertest.Setup{N: 1, InProcessIPFS: true,
		Options: []pincluster.Option{pincluster.WithReplication(-1, -1)}})
	c := cl.Peer(0).Cluster
	e := clusterEnv(t, c)
	ci := testCID(t, "replication")
	for _, q := range []string{"replication-min=65536", "replication-min=1&replication-max=-1", "replication-max=3"} {
		t.Run(q, func(t *testing.T) {
			resp, b := e.do("POST", "/pins/"+ci.String()+"?"+q, nil)
			requireError(t, resp.StatusCode, 400, b)
			require.Contains(t, string(b), "replication")
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.PinGet(ctx, ci)
	require.ErrorIs(t, err, pincluster.ErrNotFound, "nothing was stored")
	// -1 for both, or a number for both, is fine.
	resp, b := e.do("POST", "/pins/"+ci.String()+"?replication-min=-1&replication-max=-1", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
}

// TestGraphAndGCCluster: on one peer of a two-peer cluster, GET /id lists
// both peers' addresses with /p2p/ (no suffix and no cluster peer
// addresses before), and GET /health/graph and POST /ipfs/gc answer IPFS
// Cluster's documents with one entry per peer ("not found: POST /ipfs/gc"
// before).
func TestGraphAndGCCluster(t *testing.T) {
	cl := realPeers(t, 2)
	e := clusterEnv(t, cl.Peer(0).Cluster)
	p0, p1 := cl.Peer(0).ID().String(), cl.Peer(1).ID().String()

	// The other peer's addresses, with /p2p/, as IPFS Cluster lists them.
	resp, b := e.do("GET", "/id", nil)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	var id upID
	decodeUpstream(t, b, false, func() any { return &id })
	require.NoError(t, json.Unmarshal(b, &id))
	require.NotEmpty(t, id.ClusterPeersAddresses)
	for _, a := range id.ClusterPeersAddresses {
		require.True(t, strings.HasSuffix(a.String(), "/p2p/"+p1), a.String())
	}
	for _, a := range id.Addresses {
		require.True(t, strings.HasSuffix(a.String(), "/p2p/"+p0), a.String())
	}

	resp, b = e.do("GET", "/health/graph", nil)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
	var g upConnectGraph
	decodeUpstream(t, b, false, func() any { return &g })
	require.NoError(t, json.Unmarshal(b, &g))
	require.Equal(t, p0, g.ClusterID.String())
	require.Len(t, g.ClusterLinks, 2)
	require.Equal(t, p1, g.ClusterLinks[p0][0].String())
	require.Equal(t, p0, g.ClusterLinks[p1][0].String())
	require.Len(t, g.ClustertoIPFS, 2)
	require.Len(t, g.IDtoPeername, 2)
	require.Equal(t, map[string]bool{p0: true, p1: true}, g.ClusterTrustLinks)

	for _, q := range []string{"local=false", "local=true"} {
		resp, b = e.do("POST", "/ipfs/gc?"+q, nil)
		require.Equal(t, 200, resp.StatusCode, "%s", b)
		var gc upGlobalRepoGC
		decodeUpstream(t, b, false, func() any { return &gc })
		require.NoError(t, json.Unmarshal(b, &gc))
		if q == "local=true" {
			require.Len(t, gc.PeerMap, 1)
		} else {
			require.Len(t, gc.PeerMap, 2)
			require.Equal(t, p1, gc.PeerMap[p1].Peer.String())
		}
		require.Equal(t, p0, gc.PeerMap[p0].Peer.String())
		require.Empty(t, gc.PeerMap[p0].Error)
	}
}

// TestPinOptionsAsUpstream: the pin options IPFS Cluster refuses are
// refused with a 400 naming them: an origin without /p2p/ and an
// expire-in under one second (both were accepted before).
func TestPinOptionsAsUpstream(t *testing.T) {
	e := newEnv(t, nil)
	c := testCID(t, "options").String()
	for q, want := range map[string]string{
		"origins=/ip4/1.2.3.4/tcp/4001": "origins",
		"expire-in=500ms":               "expire-in",
	} {
		resp, b := e.do("POST", "/pins/"+c+"?"+q, nil)
		requireError(t, resp.StatusCode, 400, b)
		require.Contains(t, string(b), want)
	}
	require.Equal(t, 0, e.fake.PinCount())
	resp, b := e.do("POST", "/pins/"+c+"?expire-in=1s&origins=/ip4/1.2.3.4/tcp/4001/p2p/"+e.fake.IPFSID().String(), nil)
	require.Equal(t, 200, resp.StatusCode, "%s", b)
}
