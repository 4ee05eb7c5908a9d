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

// otelTracer records the Cluster's spans through the tracer of the
// caller's TracerProvider (WithTracerProvider).
type otelTracer struct{ t trace.Tracer }

// Start begins a span named name and returns the context carrying it and
// a function that ends it, recording err when not nil.
func (o *otelTracer) Start(ctx context.Context, name string) (context.Context, func(error)) {
	ctx, span := o.t.Start(ctx, name)
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// clusterMetrics are the OpenTelemetry instruments of a Cluster.
type clusterMetrics struct {
	ops      metric.Int64Counter
	duration metric.Float64Histogram
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
