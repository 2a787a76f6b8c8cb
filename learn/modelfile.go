package learn

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
)

// ModelFileFormat is the format tag of a model file.
const ModelFileFormat = "mfn-model/1"

// MaxModelFileBytes bounds a model file ReadModelFile accepts: 256 MiB,
// room for 10 million parameters as JSON numbers.
const MaxModelFileBytes = 256 << 20

// ErrModelFile is wrapped by every error about a malformed model file.
var ErrModelFile = errors.New("learn: invalid model file")

// ModelFile is a trained model with everything needed to use it on new
// data. As JSON (the model file format, tag "mfn-model/1"):
//
//	{
//	  "format":   "mfn-model/1",
//	  "spec":     "mlp:128",            // ParseArch spec
//	  "dim":      18,                   // input features
//	  "classes":  ["quiet", "active"],  // class names; index = class id
//	  "features": ["D_box", ...],       // input column names, in order (optional)
//	  "mean":     [...], "std": [...],  // standardisation x' = (x−mean)/std (optional, dim each)
//	  "params":   [...]                 // the flat parameter vector (Arch.NumParams values)
//	}
//
// Inputs are standardised with mean and std (when present) before the
// model sees them, exactly as during training.
type ModelFile struct {
	Format   string    `json:"format"`
	Spec     string    `json:"spec"`
	Dim      int       `json:"dim"`
	Classes  []string  `json:"classes"`
	Features []string  `json:"features,omitempty"`
	Mean     []float64 `json:"mean,omitempty"`
	Std      []float64 `json:"std,omitempty"`
	Params   []float64 `json:"params"`
}

// Arch returns the file's architecture.
func (f *ModelFile) Arch() (Arch, error) { return ParseArch(f.Spec, f.Dim, len(f.Classes)) }

// Validate checks the format tag, the spec, the class list, that
// features, mean and std have dim entries (std > 0), and that params has
// the spec's length; every value must be finite. Errors wrap ErrModelFile
// and name the field.
func (f *ModelFile) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrModelFile, fmt.Sprintf(format, args...))
	}
	if f.Format != ModelFileFormat {
		return bad("format %q, want %q", f.Format, ModelFileFormat)
	}
	a, err := f.Arch()
	if err != nil {
		return bad("spec: %v", err)
	}
	seen := map[string]bool{}
	for _, c := range f.Classes {
		if c == "" || seen[c] {
			return bad("classes: empty or repeated class %q", c)
		}
		seen[c] = true
	}
	if len(f.Features) != 0 && len(f.Features) != f.Dim {
		return bad("features: %d names for dim %d", len(f.Features), f.Dim)
	}
	if len(f.Mean) != len(f.Std) || (len(f.Mean) != 0 && len(f.Mean) != f.Dim) {
		return bad("mean and std: %d and %d values for dim %d", len(f.Mean), len(f.Std), f.Dim)
	}
	for j := range f.Std {
		if !isFinite(f.Mean[j]) || !isFinite(f.Std[j]) || !(f.Std[j] > 0) {
			return bad("mean/std of feature %d: %v/%v (want finite, std > 0)", j, f.Mean[j], f.Std[j])
		}
	}
	if len(f.Params) != a.NumParams() {
		return bad("params: %d values, spec %q on dim %d with %d classes has %d", len(f.Params), f.Spec, f.Dim, len(f.Classes), a.NumParams())
	}
	for i, v := range f.Params {
		if !isFinite(v) {
			return bad("params[%d] = %v", i, v)
		}
	}
	return nil
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Model builds the model the file describes (after Validate).
func (f *ModelFile) Model() (Model, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	a, _ := f.Arch()
	m, err := NewModel(a, rand.New(rand.NewPCG(0, 0))) // parameters are overwritten
	if err != nil {
		return nil, err
	}
	copy(m.Params(), f.Params)
	return m, nil
}

// ReadModelFile decodes and validates a model file of at most
// MaxModelFileBytes. Errors wrap ErrModelFile.
func ReadModelFile(r io.Reader) (*ModelFile, error) { return readModelFile(r, MaxModelFileBytes) }

func readModelFile(r io.Reader, limit int64) (*ModelFile, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrModelFile, limit)
	}
	var f ModelFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModelFile, err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// WriteModelFile validates f and writes it as indented JSON.
func WriteModelFile(w io.Writer, f *ModelFile) error {
	if err := f.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Predict standardises a copy of x (rows of Dim values) with the file's
// statistics and returns the predicted class index of every row, in
// chunks so memory stays bounded. It panics if len(x) is not a multiple of
// Dim (a programming error).
func (f *ModelFile) Predict(m Model, x []float64) []int {
	if len(x)%f.Dim != 0 {
		panic(fmt.Sprintf("learn: ModelFile.Predict: len(x)=%d not a multiple of dim %d", len(x), f.Dim))
	}
	n := len(x) / f.Dim
	out := make([]int, n)
	const chunk = 512
	buf := make([]float64, chunk*f.Dim)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		b := buf[:(hi-lo)*f.Dim]
		copy(b, x[lo*f.Dim:hi*f.Dim])
		if len(f.Mean) > 0 {
			for i := range b {
				j := i % f.Dim
				b[i] = (b[i] - f.Mean[j]) / f.Std[j]
			}
		}
		m.Predict(b, out[lo:hi])
	}
	return out
}

// ArchForJob returns the model a federated job trains, as nodes read it
// from the job: shape is the job's announced layer shape (input,classes
// for softmax; input,H1,...,classes for an MLP), nil when the job gives
// none, in which case the model is inferred from dim, its parameter
// count, for inputs features and classes classes (softmax, a one-hidden-
// layer MLP, or cnn:mnist for 784 inputs), as a node with its own data
// does. inputs and classes, when not zero, must match the shape. Errors
// wrap ErrArch.
func ArchForJob(shape []int, dim, inputs, classes int) (Arch, error) {
	if len(shape) > 0 {
		if len(shape) < 2 || len(shape) > MaxHiddenLayers+2 {
			return Arch{}, fmt.Errorf("%w: shape %v: want input,classes or input,H1,...,classes", ErrArch, shape)
		}
		in, k := shape[0], shape[len(shape)-1]
		if inputs != 0 && inputs != in {
			return Arch{}, fmt.Errorf("%w: shape %v is for %d inputs, not %d", ErrArch, shape, in, inputs)
		}
		if classes != 0 && classes != k {
			return Arch{}, fmt.Errorf("%w: shape %v is for %d classes, not %d", ErrArch, shape, k, classes)
		}
		spec := "softmax"
		if len(shape) > 2 {
			parts := make([]string, len(shape)-2)
			for i, h := range shape[1 : len(shape)-1] {
				parts[i] = fmt.Sprint(h)
			}
			spec = "mlp:" + strings.Join(parts, ",")
		}
		a, err := ParseArch(spec, in, k)
		if err != nil {
			return Arch{}, err
		}
		if a.NumParams() != dim {
			return Arch{}, fmt.Errorf("%w: shape %v has %d parameters, the job's model %d", ErrArch, shape, a.NumParams(), dim)
		}
		return a, nil
	}
	if inputs < 1 || classes < 1 {
		return Arch{}, fmt.Errorf("%w: the job announces no shape: the input and class counts must come from data", ErrArch)
	}
	soft := Arch{Kind: "softmax", Dim: inputs, Classes: classes}
	if dim == soft.NumParams() {
		return soft, nil
	}
	if per := inputs + 1 + classes; dim > classes && (dim-classes)%per == 0 {
		return Arch{Kind: "mlp", Dim: inputs, Hidden: (dim - classes) / per, Classes: classes}, nil
	}
	if cnn := (Arch{Kind: "cnn", Dim: inputs, Classes: classes}); inputs == 28*28 && cnn.NumParams() == dim {
		return cnn, nil
	}
	return Arch{}, fmt.Errorf("%w: %d parameters fit no model for %d inputs and %d classes", ErrArch, dim, inputs, classes)
}
