package httpx

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// shedAnswer is written to a connection over the cap: a complete HTTP/1.1
// answer, so that clients see a 503 rather than a reset.
var shedAnswer = func() []byte {
	const body = `{"code":503,"message":"too many connections, try again later"}` + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\n"+
		"Content-Type: application/json\r\n"+
		"Retry-After: 1\r\n"+
		"Connection: close\r\n"+
		"Content-Length: %d\r\n\r\n%s", len(body), body)
}()

// shedWriteTimeout bounds the write of shedAnswer: it fits in a fresh
// socket's send buffer, so the write does not wait unless the peer is
// gone.
const shedWriteTimeout = 100 * time.Millisecond

// LimitListener returns a listener that holds at most n of l's
// connections open at once. A connection accepted beyond n is answered
// 503 Service Unavailable and closed in the accepting goroutine, without
// reading it, so a flood costs one descriptor for a moment rather than
// one per connection for as long as the attacker likes. Shed returns the
// number of connections shed so far.
func LimitListener(l net.Listener, n int) *Limited {
	return &Limited{Listener: l, max: int64(n)}
}

// Limited is a net.Listener with a cap on open connections (see
// LimitListener).
type Limited struct {
	net.Listener
	max  int64
	open atomic.Int64
	shed atomic.Int64
}

// Accept waits for a connection within the cap, shedding those beyond.
func (l *Limited) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.shed.Add(1)
			_ = c.SetWriteDeadline(time.Now().Add(shedWriteTimeout))
			_, _ = c.Write(shedAnswer)
			_ = c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: l}, nil
	}
}

// Open returns the number of connections open now.
func (l *Limited) Open() int { return int(l.open.Load()) }

// Shed returns the number of connections answered 503 and closed.
func (l *Limited) Shed() int { return int(l.shed.Load()) }

// limitedConn gives its slot back once, at the first Close.
type limitedConn struct {
	net.Conn
	l    *Limited
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// CloseWrite half-closes the connection when the underlying one can (a
// TCP connection), as net/http does before closing after an answer.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
