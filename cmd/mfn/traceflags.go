package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/mfn/mfn/coordinator"
	"github.com/mfn/mfn/internal/telemetry"
)

// traceFlags are the tracing flags shared by coordinator, node and demo.
type traceFlags struct {
	otlpEndpoint string
	traceFile    string
	sampleRatio  float64
}

func (f *traceFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "export trace spans to this OTLP/HTTP collector URL, e.g. http://127.0.0.1:4318 (empty: no OTLP export)")
	fl.StringVar(&f.traceFile, "trace-file", "", "write trace spans to this file, one JSON span per line (empty: none)")
	fl.Float64Var(&f.sampleRatio, "trace-sample-ratio", 1, "fraction of rounds traced, in [0, 1], when --otlp-endpoint or --trace-file is set")
}

// validate checks the flags; errors name the flag and exit 2.
func (f *traceFlags) validate() error {
	if !(f.sampleRatio >= 0 && f.sampleRatio <= 1) {
		return usagef("--trace-sample-ratio %v must be in [0, 1]", f.sampleRatio)
	}
	if f.otlpEndpoint != "" {
		if err := telemetry.ValidateEndpoint(f.otlpEndpoint); err != nil {
			return usagef("--otlp-endpoint: %v (want an http or https URL such as http://127.0.0.1:4318)", err)
		}
	}
	return nil
}

// start builds the tracing provider of one component (service is
// telemetry.ServiceCoordinator or ServiceNode, instance its id). With no
// destination its TracerProvider is nil. The returned stop flushes the
// spans still buffered (bounded by 5 s) and logs a failure.
func (f *traceFlags) start(service, instance string, log *slog.Logger) (*telemetry.Provider, func(), error) {
	if err := f.validate(); err != nil {
		return nil, nil, err
	}
	p, err := telemetry.New(telemetry.Config{OTLPEndpoint: f.otlpEndpoint, TraceFile: f.traceFile, SampleRatio: f.sampleRatio,
		Service: service, InstanceID: instance})
	if err != nil {
		return nil, nil, fmt.Errorf("tracing (--trace-file %q, --otlp-endpoint %q): %w", f.traceFile, f.otlpEndpoint, err)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			log.Warn("flushing trace spans", "err", err)
		}
		if n := p.FileDropped(); n > 0 {
			log.Warn("trace file full: spans dropped", "file", f.traceFile, "dropped", n)
		}
	}
	return p, stop, nil
}

// attachCoordinator turns tracing on for a member's QUIC handler (service
// mfn-coordinator, instance member). stop ends the round-event follower
// and flushes the spans.
func (f *traceFlags) attachCoordinator(qh *coordinator.QUICHandler, member string, log *slog.Logger) (stop func(), err error) {
	p, stopProvider, err := f.start(telemetry.ServiceCoordinator, member, log)
	if err != nil {
		return nil, err
	}
	stopEvents := qh.SetTracerProvider(p.TracerProvider())
	return func() { stopEvents(); stopProvider() }, nil
}
