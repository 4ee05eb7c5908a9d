package optracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pincluster/pincluster/internal/defaults"
)

// Func performs one attempt of an operation: the owner's pin or unpin. It
// must return when ctx is cancelled (context.Cause(ctx) tells why:
// ErrSuperseded, ErrTimeout or ErrClosed). op is a snapshot of the
// operation (its Meta carries what the owner attached at Enqueue).
// progress may be called any number of times, from any goroutine, while
// Func runs; each call resets the idle timer. Calls after Func returned are
// ignored.
type Func func(ctx context.Context, op Op, progress ProgressFunc) error

// Retry limits for Config.MaxRetries.
const (
	// UnlimitedRetries retries failed operations forever, waiting at most
	// MaxBackoff between attempts.
	UnlimitedRetries = -1
	// NoRetries leaves an operation in the error phase after its first
	// failure.
	NoRetries = -2
	// NoTimeout disables an idle timeout (PinTimeout, UnpinTimeout).
	NoTimeout time.Duration = -1
)

// Defaults applied by New to zero fields of Config.
const (
	// DefaultPinConcurrency is the default Config.PinConcurrency.
	DefaultPinConcurrency = 10
	// DefaultUnpinConcurrency is the default Config.UnpinConcurrency.
	DefaultUnpinConcurrency = 10
	// DefaultMaxQueue is the default Config.MaxQueue.
	DefaultMaxQueue = 1_000_000
	// DefaultMaxRetries is the default Config.MaxRetries.
	DefaultMaxRetries = 5
	// DefaultBaseBackoff is the default Config.BaseBackoff.
	DefaultBaseBackoff = 5 * time.Second
	// DefaultMaxBackoff is the default Config.MaxBackoff.
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultPinTimeout is the default Config.PinTimeout (idle).
	DefaultPinTimeout = 2 * time.Minute
	// DefaultUnpinTimeout is the default Config.UnpinTimeout (idle).
	DefaultUnpinTimeout = 10 * time.Minute
)

// Config configures a Tracker. Zero fields take the documented default.
// New copies the Config; changing it afterwards has no effect.
type Config struct {
	// Pin pins a CID on the owner's IPFS node. Required.
	Pin Func
	// Unpin unpins a CID on the owner's IPFS node. Required.
	Unpin Func

	// PinConcurrency is the maximum number of pin operations running at
	// once. Default: 10.
	PinConcurrency int
	// UnpinConcurrency is the maximum number of unpin operations running at
	// once, independent of PinConcurrency. Default: 10.
	UnpinConcurrency int
	// MaxQueue bounds the number of queued operations (pins and unpins
	// together) that Enqueue admits; beyond it Enqueue returns
	// ErrQueueFull. Default: 1,000,000.
	MaxQueue int

	// MaxRetries is how many times a failed operation is retried
	// automatically before it stays in the error phase. UnlimitedRetries
	// retries forever; NoRetries never retries. Default: 5.
	MaxRetries int
	// BaseBackoff is the wait before the first retry; each further retry
	// waits twice as long as the previous one, up to MaxBackoff.
	// Default: 5s.
	BaseBackoff time.Duration
	// MaxBackoff caps the wait between retries; must be ≥ BaseBackoff.
	// Default: 5m.
	MaxBackoff time.Duration

	// PinTimeout is the idle timeout of a pin attempt: the attempt fails
	// with ErrTimeout when its function reported no progress (nor started)
	// for this long. NoTimeout disables it. Default: 2m.
	PinTimeout time.Duration
	// UnpinTimeout is the idle timeout of an unpin attempt, counted like
	// PinTimeout. NoTimeout disables it. Default: 10m.
	UnpinTimeout time.Duration

	// OnFinish, if set, is called with the final snapshot of an operation
	// each time one reaches an end: PhaseDone, PhaseCancelled (superseded,
	// cancelled, or interrupted by Close), or PhaseError with no retry
	// left (again after a Recover that fails for good). It is called
	// without the tracker's lock, from the goroutine that caused the end
	// (a worker, or the caller of Enqueue or Cancel), possibly from
	// several goroutines at once; it must be quick and must not block.
	// Default: nil.
	OnFinish func(Op)

	// Logger receives debug logs of supersessions and warnings of failed
	// attempts. Default: nil, which discards.
	Logger *slog.Logger
}

// withDefaults returns a copy of c with defaults filled in, or an error
// wrapping ErrInvalidConfig.
func (c Config) withDefaults() (Config, error) {
	if c.Pin == nil || c.Unpin == nil {
		return c, fmt.Errorf("%w: Pin and Unpin functions are required", ErrInvalidConfig)
	}
	if err := errors.Join(
		defaults.Set("PinConcurrency", &c.PinConcurrency, DefaultPinConcurrency),
		defaults.Set("UnpinConcurrency", &c.UnpinConcurrency, DefaultUnpinConcurrency),
		defaults.Set("MaxQueue", &c.MaxQueue, DefaultMaxQueue),
		defaults.Set("BaseBackoff", &c.BaseBackoff, DefaultBaseBackoff),
		defaults.NotNegative("MaxBackoff", c.MaxBackoff),
	); err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.BaseBackoff)
	}
	if c.MaxRetries == 0 { // negative: NoRetries or UnlimitedRetries
		c.MaxRetries = DefaultMaxRetries
	}
	if c.PinTimeout == 0 { // negative: NoTimeout
		c.PinTimeout = DefaultPinTimeout
	}
	if c.UnpinTimeout == 0 {
		c.UnpinTimeout = DefaultUnpinTimeout
	}
	c.Logger = defaults.Logger(c.Logger)
	switch {
	case c.MaxRetries < NoRetries:
		return c, fmt.Errorf("%w: MaxRetries %d (use UnlimitedRetries or NoRetries)", ErrInvalidConfig, c.MaxRetries)
	case c.MaxBackoff < c.BaseBackoff:
		return c, fmt.Errorf("%w: MaxBackoff %s < BaseBackoff %s", ErrInvalidConfig, c.MaxBackoff, c.BaseBackoff)
	case c.PinTimeout < 0 && c.PinTimeout != NoTimeout, c.UnpinTimeout < 0 && c.UnpinTimeout != NoTimeout:
		return c, fmt.Errorf("%w: negative timeout (use NoTimeout)", ErrInvalidConfig)
	}
	return c, nil
}

// backoff returns the wait before the retry following the n-th failure
// (n ≥ 1).
func (c *Config) backoff(n int) time.Duration {
	d := c.BaseBackoff
	for i := 1; i < n && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// retriesLeft reports whether an operation that failed n times is retried.
func (c *Config) retriesLeft(n int) bool {
	switch c.MaxRetries {
	case UnlimitedRetries:
		return true
	case NoRetries:
		return false
	}
	return n <= c.MaxRetries
}

func (c *Config) timeout(t OpType) time.Duration {
	if t == OpPin {
		return c.PinTimeout
	}
	return c.UnpinTimeout
}
