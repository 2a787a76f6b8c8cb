package telemetry

import (
	"errors"
	"fmt"
	"net/url"
)

// Service names used in the resource of each component.
const (
	ServiceCoordinator = "mfn-coordinator"
	ServiceNode        = "mfn-node"
)

// DefaultMaxFileBytes bounds a trace file when Config.MaxFileBytes is zero:
// 64 MiB is a few hundred thousand spans.
const DefaultMaxFileBytes = 64 << 20

// Config says where spans go. The zero value turns tracing off.
type Config struct {
	// OTLPEndpoint is the URL of an OTLP/HTTP collector
	// ("http://127.0.0.1:4318"; the path /v1/traces is added when the URL
	// has none). Empty means no OTLP export.
	OTLPEndpoint string
	// TraceFile is a file that receives one JSON span per line. Empty
	// means none. The file is created or truncated.
	TraceFile string
	// MaxFileBytes bounds TraceFile; zero means DefaultMaxFileBytes.
	MaxFileBytes int64
	// SampleRatio is the fraction of root spans sampled, in [0, 1].
	// Children follow their parent's decision.
	SampleRatio float64
	// Service is service.name (ServiceCoordinator or ServiceNode).
	Service string
	// InstanceID is service.instance.id: the member or node id.
	InstanceID string
}

// Enabled reports whether c names a destination.
func (c Config) Enabled() bool { return c.OTLPEndpoint != "" || c.TraceFile != "" }

// ErrConfig is wrapped by every Validate error.
var ErrConfig = errors.New("telemetry: bad config")

// Validate checks c; its errors name the field.
func (c Config) Validate() error {
	if !(c.SampleRatio >= 0 && c.SampleRatio <= 1) {
		return fmt.Errorf("%w: SampleRatio %v not in [0, 1]", ErrConfig, c.SampleRatio)
	}
	if c.MaxFileBytes < 0 {
		return fmt.Errorf("%w: MaxFileBytes %d is negative", ErrConfig, c.MaxFileBytes)
	}
	if c.OTLPEndpoint != "" {
		if err := ValidateEndpoint(c.OTLPEndpoint); err != nil {
			return fmt.Errorf("%w: OTLPEndpoint: %w", ErrConfig, err)
		}
	}
	return nil
}

// ValidateEndpoint checks that u is an absolute http or https URL with a
// host.
func ValidateEndpoint(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return err
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", u)
	}
	if p.Host == "" {
		return fmt.Errorf("%q: no host", u)
	}
	return nil
}
