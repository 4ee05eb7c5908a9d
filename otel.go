package pincluster

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names pincluster's tracer and meter.
const instrumentationName = "github.com/pincluster/pincluster"

// otelTracer is the Tracer over an OpenTelemetry TracerProvider.
type otelTracer struct{ t trace.Tracer }

var _ Tracer = otelTracer{}

// Start implements Tracer.
func (o otelTracer) Start(ctx context.Context, name string) (context.Context, func(error)) {
	ctx, span := o.t.Start(ctx, name)
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// Shutdown implements Component; the provider belongs to the caller.
func (otelTracer) Shutdown(context.Context) error { return nil }

// WithTracerProvider records spans of the Cluster's operations (Pin, Unpin,
// ...) through tp, which the caller owns and shuts down. Default: no
// tracing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return &OptionError{Options: "WithTracerProvider", Detail: "nil provider"}
		}
		return c.setTracer("WithTracerProvider", otelTracer{t: tp.Tracer(instrumentationName)})
	}
}

// clusterMetrics are the OpenTelemetry instruments of a Cluster.
type clusterMetrics struct {
	ops      metric.Int64Counter
	duration metric.Float64Histogram
}

// WithMeterProvider records the Cluster's operation counts and durations
// ("pincluster.ops", "pincluster.op.duration", attribute "op" and
// "outcome") through mp, which the caller owns. Default: no metrics.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return &OptionError{Options: "WithMeterProvider", Detail: "nil provider"}
		}
		m := mp.Meter(instrumentationName)
		ops, err := m.Int64Counter("pincluster.ops", metric.WithDescription("Cluster operations"))
		if err != nil {
			return &OptionError{Options: "WithMeterProvider", Detail: err.Error()}
		}
		dur, err := m.Float64Histogram("pincluster.op.duration", metric.WithUnit("s"),
			metric.WithDescription("Duration of Cluster operations"))
		if err != nil {
			return &OptionError{Options: "WithMeterProvider", Detail: err.Error()}
		}
		c.metrics = &clusterMetrics{ops: ops, duration: dur}
		return nil
	}
}

// record counts one operation and its duration.
func (m *clusterMetrics) record(ctx context.Context, op string, start time.Time, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	attrs := metric.WithAttributes(attribute.String("op", op), attribute.String("outcome", outcome))
	m.ops.Add(ctx, 1, attrs)
	m.duration.Record(ctx, time.Since(start).Seconds(), attrs)
}
