package rpc

import (
	"context"
	"fmt"
	"iter"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Marshal encodes v as deterministic CBOR, the encoding of typed bodies.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("rpc: marshal %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes a CBOR body into v. Malformed input yields an error
// wrapping ErrMalformed, never a panic.
func Unmarshal(b []byte, v any) error {
	if err := bodyDecMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: decode %T: %v", ErrMalformed, v, err)
	}
	return nil
}

// Handle adapts a typed function to a Handler: the body is decoded into
// Req (ErrMalformed if it does not decode) and the result encoded as CBOR.
func Handle[Req, Resp any](f func(ctx context.Context, from peer.ID, req Req) (Resp, error)) Handler {
	return func(ctx context.Context, r Request) ([]byte, error) {
		var req Req
		if err := Unmarshal(r.Body, &req); err != nil {
			return nil, err
		}
		resp, err := f(ctx, r.Peer, req)
		if err != nil {
			return nil, err
		}
		return Marshal(resp)
	}
}

// HandleStream adapts a typed function to a StreamHandler; see Handle.
func HandleStream[Req, Item any](f func(ctx context.Context, from peer.ID, req Req, send func(Item) error) error) StreamHandler {
	return func(ctx context.Context, r Request, send func([]byte) error) error {
		var req Req
		if err := Unmarshal(r.Body, &req); err != nil {
			return err
		}
		return f(ctx, r.Peer, req, func(item Item) error {
			b, err := Marshal(item)
			if err != nil {
				return err
			}
			return send(b)
		})
	}
}

// Call calls method on p with req encoded as CBOR and decodes the response
// into Resp. Errors are those of Client.Call, plus ErrMalformed for a
// response that does not decode.
func Call[Req, Resp any](ctx context.Context, c *Client, p peer.ID, method string, req Req) (Resp, error) {
	var resp Resp
	body, err := Marshal(req)
	if err != nil {
		return resp, err
	}
	out, err := c.Call(ctx, p, method, body)
	if err != nil {
		return resp, err
	}
	if err := Unmarshal(out, &resp); err != nil {
		return resp, fmt.Errorf("rpc: %s: response: %w", method, err)
	}
	return resp, nil
}

// Stream calls the streaming method on p with req encoded as CBOR and
// yields the decoded items; see Client.Stream. An item that does not
// decode ends the sequence with an error wrapping ErrMalformed.
func Stream[Req, Item any](ctx context.Context, c *Client, p peer.ID, method string, req Req) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		var zero Item
		body, err := Marshal(req)
		if err != nil {
			yield(zero, err)
			return
		}
		for b, err := range c.Stream(ctx, p, method, body) {
			if err != nil {
				yield(zero, err)
				return
			}
			var item Item
			if err := Unmarshal(b, &item); err != nil {
				yield(zero, fmt.Errorf("rpc: %s: item: %w", method, err))
				return
			}
			if !yield(item, nil) {
				return
			}
		}
	}
}
