package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Provider owns the exporters of one process. The zero Provider and a nil
// *Provider are "tracing off".
type Provider struct {
	tp   *sdktrace.TracerProvider
	file *FileExporter
}

// New builds the Provider described by cfg. With cfg.Enabled false it
// returns a Provider whose TracerProvider is nil. It fails with ErrConfig
// for an invalid cfg, or when the trace file cannot be created.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return &Provider{}, nil
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(Resource(cfg.Service, cfg.InstanceID)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	}
	p := &Provider{}
	if cfg.TraceFile != "" {
		f, err := CreateFileExporter(cfg.TraceFile, cfg.MaxFileBytes)
		if err != nil {
			return nil, err
		}
		p.file = f
		opts = append(opts, sdktrace.WithBatcher(f))
	}
	if cfg.OTLPEndpoint != "" {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(tracesURL(cfg.OTLPEndpoint)))
		if err != nil {
			if p.file != nil {
				p.file.Shutdown(context.Background())
			}
			return nil, fmt.Errorf("telemetry: OTLP exporter for %s: %w", cfg.OTLPEndpoint, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	p.tp = sdktrace.NewTracerProvider(opts...)
	return p, nil
}

// tracesURL adds the OTLP traces path to an endpoint given without a path.
func tracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}

// Resource is the resource of one component: service.name and
// service.instance.id.
func Resource(service, instance string) *resource.Resource {
	return resource.NewSchemaless(
		attribute.String("service.name", service),
		attribute.String("service.instance.id", instance),
	)
}

// TracerProvider returns the provider to hand to components, or nil when
// tracing is off.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil || p.tp == nil {
		return nil
	}
	return p.tp
}

// FileDropped is the number of spans the trace file refused (over its
// bound); 0 without a file.
func (p *Provider) FileDropped() uint64 {
	if p == nil || p.file == nil {
		return 0
	}
	return p.file.Dropped()
}

// Shutdown flushes the spans still buffered and closes the exporters; ctx
// bounds the time spent. Safe on a nil or disabled Provider.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.tp == nil {
		return nil
	}
	return errors.Join(p.tp.ForceFlush(ctx), p.tp.Shutdown(ctx))
}
