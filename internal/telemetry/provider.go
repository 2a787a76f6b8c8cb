package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Provider owns the exporters of one process and the tracer providers
// built on them: one per component, each naming itself in its resource
// (a demo runs several components in one process). The zero Provider and
// a nil *Provider are "tracing off".
type Provider struct {
	cfg       Config
	exporters []sdktrace.SpanExporter
	file      *FileExporter

	mu  sync.Mutex
	tps []*sdktrace.TracerProvider
	tp  *sdktrace.TracerProvider // the one of cfg.Service and cfg.InstanceID
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
	p := &Provider{cfg: cfg}
	if cfg.TraceFile != "" {
		f, err := CreateFileExporter(cfg.TraceFile, cfg.MaxFileBytes)
		if err != nil {
			return nil, err
		}
		p.file = f
		p.exporters = append(p.exporters, f)
	}
	if cfg.OTLPEndpoint != "" {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(tracesURL(cfg.OTLPEndpoint)))
		if err != nil {
			if p.file != nil {
				p.file.Shutdown(context.Background())
			}
			return nil, fmt.Errorf("telemetry: OTLP exporter for %s: %w", cfg.OTLPEndpoint, err)
		}
		p.exporters = append(p.exporters, exp)
	}
	p.tp = p.newTP(cfg.Service, cfg.InstanceID)
	return p, nil
}

// sharedExporter lets several batch processors feed one exporter; the
// Provider shuts the exporter down once, after all of them.
type sharedExporter struct{ sdktrace.SpanExporter }

func (sharedExporter) Shutdown(context.Context) error { return nil }

func (p *Provider) newTP(service, instance string) *sdktrace.TracerProvider {
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(Resource(service, instance)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(p.cfg.SampleRatio))),
	}
	for _, e := range p.exporters {
		opts = append(opts, sdktrace.WithBatcher(sharedExporter{e}))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	p.mu.Lock()
	p.tps = append(p.tps, tp)
	p.mu.Unlock()
	return tp
}

// For returns a tracer provider for another component of this process
// (service and instance in its resource) exporting to the same
// destinations, or nil when tracing is off.
func (p *Provider) For(service, instance string) trace.TracerProvider {
	if p == nil || p.tp == nil {
		return nil
	}
	return p.newTP(service, instance)
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

// Shutdown flushes the spans still buffered by every tracer provider and
// closes the exporters; ctx bounds the time spent. Safe on a nil or
// disabled Provider.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.tp == nil {
		return nil
	}
	p.mu.Lock()
	tps := p.tps
	p.tps = nil
	p.mu.Unlock()
	var errs []error
	for _, tp := range tps {
		errs = append(errs, tp.Shutdown(ctx)) // flushes, then ends its processors
	}
	for _, e := range p.exporters {
		errs = append(errs, e.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
