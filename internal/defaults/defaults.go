// Package defaults fills the zero fields of a configuration with their
// defaults and rejects negative ones, one line per field, so that every
// config of the module declares its defaults once and names the field it
// refuses:
//
//	if err := errors.Join(
//		defaults.Set("ReadTimeout", &c.ReadTimeout, DefaultReadTimeout),
//		defaults.Set("MaxBodyBytes", &c.MaxBodyBytes, DefaultMaxBodyBytes),
//		defaults.NotNegative("JWTTTL", c.JWTTTL),
//	); err != nil {
//		return c, fmt.Errorf("rest: config: %w", err)
//	}
//	c.Logger = defaults.Logger(c.Logger)
package defaults

import (
	"fmt"
	"log/slog"
)

// Number is what Set and NotNegative accept: integers, floats and the
// types built on them (time.Duration).
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~float32 | ~float64
}

// Set sets *v to def when it is zero, and returns an error naming the
// field when it is negative (leaving it unchanged).
func Set[T Number](name string, v *T, def T) error {
	switch {
	case *v < 0:
		return fmt.Errorf("%s %v is negative", name, *v)
	case *v == 0:
		*v = def
	}
	return nil
}

// NotNegative returns an error naming the field when v is negative: a
// field whose zero value means something of its own (or is defaulted
// elsewhere).
func NotNegative[T Number](name string, v T) error {
	if v < 0 {
		return fmt.Errorf("%s %v is negative", name, v)
	}
	return nil
}

// Logger returns l, or a logger that discards everything when l is nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
