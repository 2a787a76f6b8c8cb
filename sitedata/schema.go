package sitedata

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mfn/mfn/learn"
)

// Sentinel errors; every error of this package about the data wraps one.
var (
	// ErrSchema: the data does not match the declared Schema (feature
	// count or shape, a label outside the class list, a missing column,
	// reference statistics of the wrong length).
	ErrSchema = errors.New("sitedata: data does not match the schema")
	// ErrInvalidRow: a row holds NaN, ±Inf, an empty or unparsable value,
	// or has the wrong number of fields.
	ErrInvalidRow = errors.New("sitedata: invalid row")
	// ErrFormat: the file is not a well-formed file of its kind.
	ErrFormat = errors.New("sitedata: malformed file")
	// ErrTooLarge: the file holds more values than Options.MaxValues.
	ErrTooLarge = errors.New("sitedata: data too large")
	// ErrEmpty: no valid row remains.
	ErrEmpty = errors.New("sitedata: no data rows")
)

// SchemaError says where and how data and schema disagree. Column is empty
// when the mismatch is not about one column; Row is zero when it is not
// about one row.
type SchemaError struct {
	File   string
	Column string
	Row    int
	Msg    string
}

func (e *SchemaError) Error() string {
	s := "sitedata: " + e.File
	if e.Row > 0 {
		s += fmt.Sprintf(": row %d", e.Row)
	}
	if e.Column != "" {
		s += fmt.Sprintf(": column %q", e.Column)
	}
	return s + ": " + e.Msg
}

// Unwrap returns ErrSchema.
func (e *SchemaError) Unwrap() error { return ErrSchema }

// RowError locates an invalid row: Row counts data rows from 1 (a CSV
// header is not counted; for CSV, Line is the line in the file).
type RowError struct {
	File   string
	Row    int
	Line   int
	Column string
	Msg    string
}

func (e *RowError) Error() string {
	s := fmt.Sprintf("sitedata: %s: row %d", e.File, e.Row)
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d)", e.Line)
	}
	if e.Column != "" {
		s += fmt.Sprintf(": column %q", e.Column)
	}
	return s + ": " + e.Msg
}

// Unwrap returns ErrInvalidRow.
func (e *RowError) Unwrap() error { return ErrInvalidRow }

// Standardization says how inputs are scaled after loading.
type Standardization string

const (
	// StandardizeNone leaves the inputs as read.
	StandardizeNone Standardization = ""
	// StandardizeSite fits mean and standard deviation on this site's
	// loaded rows.
	StandardizeSite Standardization = "site"
	// StandardizeJob applies the job's reference statistics
	// (Schema.Mean, Schema.Std), so every site maps inputs the same way.
	StandardizeJob Standardization = "job"
)

// Schema is what a job declares about its data. The zero value accepts
// any feature count and integer labels 0..K−1.
type Schema struct {
	// Features is the number of input features; zero means any.
	Features int
	// Shape, when set, is the input shape (for example [28 28]); its
	// product must equal Features when both are set.
	Shape []int
	// Classes is the class list: a label is mapped to its index in this
	// list by its text ("cat", or "3" for a numeric label 3), never by
	// order of appearance. Empty means labels are integers 0..K−1 with K
	// the largest label plus one (at least 2).
	Classes []string
	// Standardize chooses the input scaling; Mean and Std are the
	// reference statistics for StandardizeJob (one per feature, Std > 0).
	Standardize Standardization
	Mean, Std   []float64
}

// Validate checks the schema itself; errors wrap ErrSchema and name the
// field.
func (s Schema) Validate() error {
	bad := func(format string, args ...any) error {
		return &SchemaError{File: "schema", Msg: fmt.Sprintf(format, args...)}
	}
	if s.Features < 0 {
		return bad("Features %d < 0", s.Features)
	}
	if len(s.Shape) > 0 {
		p := 1
		for _, d := range s.Shape {
			if d < 1 || d > 1<<20 {
				return bad("Shape %v: dimensions must be in 1..%d", s.Shape, 1<<20)
			}
			p *= d
		}
		if s.Features != 0 && p != s.Features {
			return bad("Shape %v has %d values but Features is %d", s.Shape, p, s.Features)
		}
	}
	seen := map[string]bool{}
	for _, c := range s.Classes {
		if c == "" || seen[c] {
			return bad("Classes: empty or repeated class %q", c)
		}
		seen[c] = true
	}
	if len(s.Classes) == 1 {
		return bad("Classes: one class %q; a classifier needs at least 2", s.Classes[0])
	}
	switch s.Standardize {
	case StandardizeNone, StandardizeSite:
	case StandardizeJob:
		if len(s.Mean) == 0 || len(s.Mean) != len(s.Std) {
			return bad("Standardize job needs Mean and Std of equal, non-zero length (have %d and %d)", len(s.Mean), len(s.Std))
		}
		if s.Features != 0 && len(s.Mean) != s.Features {
			return bad("Mean has %d values but Features is %d", len(s.Mean), s.Features)
		}
		for j := range s.Std {
			if !finite(s.Mean[j]) || !finite(s.Std[j]) || !(s.Std[j] > 0) {
				return bad("reference statistics of feature %d: mean %v std %v (want finite, std > 0)", j, s.Mean[j], s.Std[j])
			}
		}
	default:
		return bad("Standardize %q: want \"\", site or job", s.Standardize)
	}
	return nil
}

// features returns the declared feature count (from Shape when Features
// is zero), or zero.
func (s Schema) features() int {
	if s.Features != 0 || len(s.Shape) == 0 {
		return s.Features
	}
	p := 1
	for _, d := range s.Shape {
		p *= d
	}
	return p
}

// labeler maps label texts to class indices under a schema.
type labeler struct {
	classes map[string]int
	maxSeen int
}

func newLabeler(s Schema) *labeler {
	l := &labeler{maxSeen: -1}
	if len(s.Classes) > 0 {
		l.classes = make(map[string]int, len(s.Classes))
		for i, c := range s.Classes {
			l.classes[c] = i
		}
	}
	return l
}

// maxLabel bounds integer labels without a class list, so a hostile file
// cannot make Classes (and the model) huge.
const maxLabel = 1 << 16

// index returns the class of label text t, or a message saying why not.
func (l *labeler) index(t string) (int, string) {
	t = strings.TrimSpace(t)
	if l.classes != nil {
		if i, ok := l.classes[t]; ok {
			return i, ""
		}
		// A numeric label written as 3.0 matches class "3".
		if f, err := strconv.ParseFloat(t, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1e15 {
			if i, ok := l.classes[strconv.FormatInt(int64(f), 10)]; ok {
				return i, ""
			}
		}
		return 0, fmt.Sprintf("label %q is not in the class list", t)
	}
	if t == "" {
		return 0, "empty label"
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f >= maxLabel {
		return 0, fmt.Sprintf("label %q: without a class list labels must be integers in [0,%d)", t, maxLabel)
	}
	i := int(f)
	l.maxSeen = max(l.maxSeen, i)
	return i, ""
}

// numClasses is the dataset's class count.
func (l *labeler) numClasses() int {
	if l.classes != nil {
		return len(l.classes)
	}
	return max(2, l.maxSeen+1)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// finish checks the loaded rows against the schema and standardises them.
func finish(file string, names []string, d *learn.Dataset, s Schema, dropped int) (*Loaded, error) {
	if d.Len() == 0 {
		return nil, fmt.Errorf("%w: %s (%d invalid rows dropped)", ErrEmpty, file, dropped)
	}
	if want := s.features(); want != 0 && d.Dim != want {
		col := ""
		if len(names) > 0 && d.Dim > want {
			col = names[want]
		}
		return nil, &SchemaError{File: file, Column: col, Msg: fmt.Sprintf("%d feature columns, the schema declares %d", d.Dim, want)}
	}
	l := &Loaded{Data: d, Features: names, Dropped: dropped}
	switch s.Standardize {
	case StandardizeSite:
		st := learn.FitStandardizer(d)
		st.Apply(d)
		l.Stats = &st
	case StandardizeJob:
		if len(s.Mean) != d.Dim {
			return nil, &SchemaError{File: file, Msg: fmt.Sprintf("reference statistics for %d features, data has %d", len(s.Mean), d.Dim)}
		}
		st := learn.Standardizer{Mean: s.Mean, Std: s.Std}
		st.Apply(d)
		l.Stats = &st
	}
	return l, nil
}
