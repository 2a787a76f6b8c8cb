package sitedata

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mfn/mfn/learn"
)

// DefaultMaxValues is the number of input values (rows × features) Load
// accepts when Options.MaxValues is zero: 2^27, 1 GiB of float64, about
// 170,000 28×28 images or 7 million rows of 18 features.
const DefaultMaxValues = 1 << 27

// DefaultLabelColumn is the label column of a table when
// Options.LabelColumn is empty.
const DefaultLabelColumn = "label"

// DefaultFieldLabels is the labels file of a folder of MFN fields when
// Options.Labels is empty.
const DefaultFieldLabels = "labels.csv"

// Options say how to read a site's files. The zero value reads a table
// whose label column is "label", every other column a feature, integer
// labels, no standardisation.
type Options struct {
	// Schema is what the job declares; the data must match it.
	Schema Schema
	// LabelColumn names a table's label column; empty means "label".
	LabelColumn string
	// FeatureColumns picks a table's feature columns, in this order;
	// empty means every column but the label, in file order.
	FeatureColumns []string
	// Labels is the labels file of a .npy input (a .npy vector or a text
	// file, one label a line), of IDX images (an IDX label file; empty
	// means the images' name with "images" → "labels" and "idx3" →
	// "idx1") or of a folder of MFN fields (a CSV "file,label"; empty
	// means labels.csv in the folder).
	Labels string
	// DropInvalid drops rows with NaN, ±Inf, empty, unparsable or missing
	// values (and field files that cannot be read) instead of failing;
	// Loaded.Dropped reports how many.
	DropInvalid bool
	// MaxValues bounds rows × features; zero means DefaultMaxValues.
	MaxValues int
	// Unlabelled reads inputs only, for prediction: a table's label
	// column may be absent (it is ignored when present), a .npy needs no
	// labels file and a .npz no y. Every row gets label 0. IDX pairs and
	// folders of fields still need their labels file.
	Unlabelled bool
}

func (o Options) maxValues() int {
	if o.MaxValues <= 0 {
		return DefaultMaxValues
	}
	return o.MaxValues
}

func (o Options) labelColumn() string {
	if o.LabelColumn == "" {
		return DefaultLabelColumn
	}
	return o.LabelColumn
}

// maxBytes is the byte bound for binary arrays derived from MaxValues.
func (o Options) maxBytes() int64 { return int64(o.maxValues()) * 8 }

// Loaded is a site's data after loading and checking.
type Loaded struct {
	// Data holds the rows; Data.Classes is len(Schema.Classes), or the
	// largest integer label plus one.
	Data *learn.Dataset
	// Features names the input columns (pixel_i for images, the 18
	// feature names for MFN fields).
	Features []string
	// Dropped counts the rows skipped under Options.DropInvalid.
	Dropped int
	// Stats is the standardisation applied (nil for none).
	Stats *learn.Standardizer
}

// Format is a kind of input file.
type Format string

// The formats Load understands.
const (
	FormatCSV     Format = "csv"
	FormatParquet Format = "parquet"
	FormatNPY     Format = "npy"
	FormatNPZ     Format = "npz"
	FormatIDX     Format = "idx"
	FormatFields  Format = "fields"
)

// DetectFormat guesses path's format: a directory is a folder of MFN
// fields; otherwise the extension (.csv, .parquet, .npy, .npz) decides,
// and a name containing "idx" (train-images-idx3-ubyte[.gz]) is IDX.
func DetectFormat(path string) (Format, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return FormatFields, nil
	}
	base := strings.ToLower(filepath.Base(path))
	switch strings.ToLower(filepath.Ext(base)) {
	case ".csv":
		return FormatCSV, nil
	case ".parquet", ".pq":
		return FormatParquet, nil
	case ".npy":
		return FormatNPY, nil
	case ".npz":
		return FormatNPZ, nil
	}
	if strings.Contains(base, "idx") {
		return FormatIDX, nil
	}
	return "", fmt.Errorf("%w: %s: unknown format (want .csv, .parquet, .npy, .npz, an IDX file or a folder of fields)", ErrFormat, path)
}

// Load reads path in the format DetectFormat gives, checks it against
// opt.Schema and standardises it as the schema says.
//
// Errors: *SchemaError (ErrSchema) naming the file, column and mismatch;
// *RowError (ErrInvalidRow) naming the row, unless opt.DropInvalid;
// ErrFormat for a malformed file; ErrTooLarge beyond opt.MaxValues;
// ErrEmpty when no row remains; I/O errors.
func Load(path string, opt Options) (*Loaded, error) {
	if err := opt.Schema.Validate(); err != nil {
		return nil, err
	}
	f, err := DetectFormat(path)
	if err != nil {
		return nil, err
	}
	switch f {
	case FormatFields:
		return loadFields(path, opt)
	case FormatIDX:
		return loadIDX(path, opt)
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	switch f {
	case FormatCSV:
		return ReadCSV(file, path, opt)
	case FormatParquet:
		st, err := file.Stat()
		if err != nil {
			return nil, err
		}
		return ReadParquet(file, st.Size(), path, opt)
	case FormatNPZ:
		st, err := file.Stat()
		if err != nil {
			return nil, err
		}
		return ReadNPZ(file, st.Size(), path, opt)
	default:
		return loadNPY(file, path, opt)
	}
}

// builder accumulates rows, applying the invalid-row policy.
type builder struct {
	file     string
	opt      Options
	lab      *labeler
	dim      int
	x        []float64
	y        []int
	dropped  int
	maxRows  int
	rowScrap []float64
}

func newBuilder(file string, dim int, names []string, opt Options) (*builder, error) {
	if dim < 1 {
		return nil, &SchemaError{File: file, Msg: "no feature columns"}
	}
	if want := opt.Schema.features(); want != 0 && dim != want {
		col := ""
		if len(names) > want {
			col = names[want]
		}
		return nil, &SchemaError{File: file, Column: col, Msg: fmt.Sprintf("%d feature columns, the schema declares %d", dim, want)}
	}
	if dim > opt.maxValues() {
		return nil, fmt.Errorf("%w: %s: %d features exceed the limit of %d values", ErrTooLarge, file, dim, opt.maxValues())
	}
	return &builder{file: file, opt: opt, lab: newLabeler(opt.Schema), dim: dim, maxRows: opt.maxValues() / dim,
		rowScrap: make([]float64, dim)}, nil
}

// invalid records a bad row: an error, or a drop under DropInvalid.
func (b *builder) invalid(e *RowError) error {
	if b.opt.DropInvalid {
		b.dropped++
		return nil
	}
	return e
}

// add appends row (len dim) with label text; row and line locate it.
func (b *builder) add(row, line int, x []float64, label string, names []string) error {
	for j, v := range x {
		if !finite(v) {
			col := ""
			if j < len(names) {
				col = names[j]
			}
			return b.invalid(&RowError{File: b.file, Row: row, Line: line, Column: col, Msg: fmt.Sprintf("value %v is not finite", v)})
		}
	}
	y, msg := 0, ""
	if !b.opt.Unlabelled {
		y, msg = b.lab.index(label)
	}
	if msg != "" {
		if b.lab.classes != nil && label != "" && !b.opt.DropInvalid {
			return &SchemaError{File: b.file, Row: row, Column: b.opt.labelColumn(), Msg: msg}
		}
		return b.invalid(&RowError{File: b.file, Row: row, Line: line, Column: b.opt.labelColumn(), Msg: msg})
	}
	if len(b.y) >= b.maxRows {
		return fmt.Errorf("%w: %s: more than %d rows of %d features (limit %d values)", ErrTooLarge, b.file, b.maxRows, b.dim, b.opt.maxValues())
	}
	b.x = append(b.x, x...)
	b.y = append(b.y, y)
	return nil
}

func (b *builder) finish(names []string) (*Loaded, error) {
	d := &learn.Dataset{X: b.x, Y: b.y, Dim: b.dim, Classes: b.lab.numClasses()}
	return finish(b.file, names, d, b.opt.Schema, b.dropped)
}
