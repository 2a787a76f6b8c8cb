package coordinator

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/mfn/mfn/protocol"
)

// Standardisation modes of a DataSchema.
const (
	SchemaStandardizeNone = "none" // inputs as read
	SchemaStandardizeSite = "site" // each site scales by its own mean and std
	SchemaStandardizeJob  = "job"  // every site scales by the schema's Mean and Std
)

// Limits of a job's data schema. The schema travels in every round
// announcement ("schema" metadata, at most protocol.MaxMetaValLen bytes
// encoded), except Mean and Std, of which only a SHA-256 travels.
const (
	MaxSchemaClasses  = 1000
	MaxSchemaClassLen = 64
)

// DataSchema is what a job declares about its data (JobSpec.Schema): the
// feature count or input shape, the class list and the standardisation.
// A node checks its data against it before it takes part: a mismatch is
// refused with an error naming the file, the column and the mismatch,
// and the node submits nothing (node/schema.go). Labels are mapped to
// classes by their text through Classes (index = class id).
type DataSchema struct {
	// Features is the number of input features; zero means any (or the
	// product of InputShape).
	Features int `json:"features,omitempty"`
	// InputShape is the input's shape, e.g. [28, 28]; its product must
	// equal Features when both are set.
	InputShape []int `json:"input_shape,omitempty"`
	// Classes is the class list (at least 2, unique, non-empty, each at
	// most MaxSchemaClassLen bytes, at most MaxSchemaClasses).
	Classes []string `json:"classes,omitempty"`
	// Standardize is "none", "site" or "job" ("" leaves it to the nodes).
	// With "job", Mean and Std (one per feature, Std > 0) are the
	// reference statistics every site applies.
	Standardize string    `json:"standardize,omitempty"`
	Mean        []float64 `json:"mean,omitempty"`
	Std         []float64 `json:"std,omitempty"`
}

// NumFeatures is Features, or the product of InputShape when Features is
// zero (0 when neither is set).
func (d *DataSchema) NumFeatures() int {
	if d == nil {
		return 0
	}
	if d.Features != 0 || len(d.InputShape) == 0 {
		return d.Features
	}
	p := 1
	for _, v := range d.InputShape {
		p *= v
	}
	return p
}

// validate checks the schema of job s (nil is valid); errors wrap
// ErrInvalid and name the field.
func (d *DataSchema) validate(s JobSpec) error {
	if d == nil {
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: job %s: schema.%s", ErrInvalid, s.ID, fmt.Sprintf(format, args...))
	}
	if d.Features < 0 || d.Features > 1<<27 {
		return bad("features %d must be in [0, 2^27]", d.Features)
	}
	if len(d.InputShape) > 4 {
		return bad("input_shape %v: at most 4 dimensions", d.InputShape)
	}
	p := 1
	for _, v := range d.InputShape {
		if v < 1 || v > 1<<20 {
			return bad("input_shape %v: dimensions must be in [1, 2^20]", d.InputShape)
		}
		p *= v
	}
	if len(d.InputShape) > 0 && (p > 1<<27 || (d.Features != 0 && p != d.Features)) {
		return bad("input_shape %v has %d values, features is %d", d.InputShape, p, d.Features)
	}
	if len(d.Classes) == 1 || len(d.Classes) > MaxSchemaClasses {
		return bad("classes: %d classes, want 0 or 2 to %d", len(d.Classes), MaxSchemaClasses)
	}
	seen := make(map[string]bool, len(d.Classes))
	for _, c := range d.Classes {
		if c == "" || len(c) > MaxSchemaClassLen || seen[c] || strings.TrimSpace(c) != c {
			return bad("classes: class %.80q is empty, repeated, longer than %d bytes or padded with spaces", c, MaxSchemaClassLen)
		}
		seen[c] = true
	}
	n := d.NumFeatures()
	switch d.Standardize {
	case "", SchemaStandardizeNone, SchemaStandardizeSite:
		if len(d.Mean)+len(d.Std) > 0 {
			return bad("mean and std are only for standardize %q", SchemaStandardizeJob)
		}
	case SchemaStandardizeJob:
		if n == 0 || len(d.Mean) != n || len(d.Std) != n {
			return bad("standardize job needs features and mean and std of that length (features %d, mean %d, std %d)", n, len(d.Mean), len(d.Std))
		}
		for i := range d.Mean {
			if !finite(d.Mean[i]) || !finite(d.Std[i]) || !(d.Std[i] > 0) {
				return bad("mean[%d] %v, std[%d] %v: want finite values and std > 0", i, d.Mean[i], i, d.Std[i])
			}
		}
	default:
		return bad("standardize %q must be none, site or job", d.Standardize)
	}
	if n != 0 && n > s.Dim {
		return bad("features %d exceed the model's %d parameters", n, s.Dim)
	}
	if len(s.Shape) > 0 && n != 0 && s.Shape[0] != n {
		return bad("features %d, the model's shape takes %d inputs", n, s.Shape[0])
	}
	if len(s.Shape) > 1 && len(d.Classes) > 0 && s.Shape[len(s.Shape)-1] != len(d.Classes) {
		return bad("classes: %d classes, the model's shape has %d outputs", len(d.Classes), s.Shape[len(s.Shape)-1])
	}
	if enc := d.Encode(); len(enc) > protocol.MaxMetaValLen {
		return bad("classes: the schema's announcement takes %d bytes, limit %d (shorten the class names)", len(enc), protocol.MaxMetaValLen)
	}
	return nil
}

// Encode is the schema's "schema" announcement metadata: a URL query
// (keys sorted) with features, shape (dimensions joined by "x"), one
// class value per class in order, standardize and stats (protocol.StatsHash);
// "" for a nil schema.
func (d *DataSchema) Encode() string {
	if d == nil {
		return ""
	}
	v := url.Values{}
	if n := d.NumFeatures(); n > 0 {
		v.Set("features", strconv.Itoa(n))
	}
	if len(d.InputShape) > 0 {
		parts := make([]string, len(d.InputShape))
		for i, x := range d.InputShape {
			parts[i] = strconv.Itoa(x)
		}
		v.Set("shape", strings.Join(parts, "x"))
	}
	for _, c := range d.Classes {
		v.Add("class", c)
	}
	if d.Standardize != "" {
		v.Set("standardize", d.Standardize)
	}
	if h := protocol.StatsHash(d.Mean, d.Std); h != "" {
		v.Set("stats", h)
	}
	return v.Encode()
}
