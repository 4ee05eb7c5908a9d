package rest

import (
	"context"
	"io"
	"iter"

	cid "github.com/ipfs/go-cid"
	peer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/pincluster/pincluster"
)

// Backend is what the REST API needs from a cluster peer: the subset of
// *pincluster.Cluster's methods it calls, with the same signatures, so a
// *pincluster.Cluster is a Backend. Tests may pass a fake.
type Backend interface {
	ID(ctx context.Context) pincluster.ID
	Version() string
	Peers(ctx context.Context) ([]pincluster.ID, error)
	AddPeer(ctx context.Context, p peer.ID) error
	RmPeer(ctx context.Context, p peer.ID) error
	Pin(ctx context.Context, ci cid.Cid, opts pincluster.PinOptions) (pincluster.Pin, error)
	PinPath(ctx context.Context, path string, opts pincluster.PinOptions) (pincluster.Pin, error)
	PinUpdate(ctx context.Context, from, to cid.Cid, opts pincluster.PinOptions) (pincluster.Pin, error)
	Unpin(ctx context.Context, ci cid.Cid) (pincluster.Pin, error)
	UnpinPath(ctx context.Context, path string) (pincluster.Pin, error)
	PinGet(ctx context.Context, ci cid.Cid) (pincluster.Pin, error)
	Pins(ctx context.Context, f pincluster.PinFilter) iter.Seq2[pincluster.Pin, error]
	Status(ctx context.Context, ci cid.Cid, local bool) (pincluster.GlobalPinInfo, error)
	StatusAll(ctx context.Context, f pincluster.StatusFilter) iter.Seq2[pincluster.GlobalPinInfo, error]
	Recover(ctx context.Context, ci cid.Cid, local bool) (pincluster.GlobalPinInfo, error)
	RecoverAll(ctx context.Context, local bool) iter.Seq2[pincluster.GlobalPinInfo, error]
	Add(ctx context.Context, files iter.Seq2[string, io.Reader], p pincluster.AddParams) ([]pincluster.AddedFile, error)
	BlockPut(ctx context.Context, data []byte, prefix cid.Prefix) (cid.Cid, error)
	Metrics(ctx context.Context, name string) []pincluster.Metric
	MetricNames(ctx context.Context) []string
	Alerts(ctx context.Context) []pincluster.Alert
	ConnectGraph(ctx context.Context) (pincluster.ConnectGraph, error)
	RepoGC(ctx context.Context, local bool) (pincluster.GlobalRepoGC, error)
}

var _ Backend = (*pincluster.Cluster)(nil)
