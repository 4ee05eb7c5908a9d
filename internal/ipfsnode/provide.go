package ipfsnode

import (
	"context"
	"time"

	cid "github.com/ipfs/go-cid"
	"golang.org/x/time/rate"
)

// provideTimeout bounds one Provide call.
const provideTimeout = time.Minute

// provider announces the roots of the node's pins through Config.Routing:
// newly pinned roots at once (best effort: dropped when the queue is
// full), and every root again each ReprovideInterval. Only roots are
// announced, like Kubo's "roots" reprovider strategy: a peer that finds
// the root fetches the rest of the DAG from the same provider through its
// bitswap session.
type provider struct {
	n       *Node
	q       chan cid.Cid
	limiter *rate.Limiter
}

func newProvider(n *Node) *provider {
	return &provider{
		n:       n,
		q:       make(chan cid.Cid, n.cfg.ProvideQueue),
		limiter: rate.NewLimiter(rate.Limit(n.cfg.ProvideRate), 1),
	}
}

func (p *provider) start() error {
	for range p.n.cfg.ProvideWorkers {
		if err := p.n.g.Go(p.work); err != nil {
			return err
		}
	}
	if p.n.cfg.ReprovideInterval > 0 {
		return p.n.g.Go(p.reprovide)
	}
	return nil
}

// enqueue asks for c to be announced, without blocking.
func (p *provider) enqueue(c cid.Cid) {
	select {
	case p.q <- c:
	default:
		p.n.log.Debug("ipfsnode: provide queue full, dropping", "cid", c)
	}
}

func (p *provider) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-p.q:
			if err := p.limiter.Wait(ctx); err != nil {
				return
			}
			pctx, cancel := context.WithTimeout(ctx, provideTimeout)
			err := p.n.cfg.Routing.Provide(pctx, c, true)
			cancel()
			if err != nil && ctx.Err() == nil {
				p.n.log.Debug("ipfsnode: provide failed", "cid", c, "err", err)
			}
		}
	}
}

func (p *provider) reprovide(ctx context.Context) {
	t := time.NewTicker(p.n.cfg.ReprovideInterval)
	defer t.Stop()
	for {
		for pin, err := range p.n.Pins(ctx) {
			if err != nil {
				p.n.log.Debug("ipfsnode: reprovide: listing pins", "err", err)
				break
			}
			select {
			case p.q <- pin.Cid:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
