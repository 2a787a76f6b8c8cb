package sitedata

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mfn/mfn/internal/npy"
	"github.com/mfn/mfn/learn"
	"github.com/mfn/mfn/sim"
)

// maxLabelsLine bounds one line of a text labels file.
const maxLabelsLine = 4096

// arrayRows turns an n×k (or n×d1×d2…) array into rows; it checks the
// schema's Shape against the trailing dimensions.
func arrayRows(file string, shape []int, s Schema) (n, dim int, err error) {
	if len(shape) < 2 {
		return 0, 0, &SchemaError{File: file, Msg: fmt.Sprintf("array of shape %v; want n×k inputs (2 or more dimensions)", shape)}
	}
	n, dim = shape[0], 1
	for _, d := range shape[1:] {
		dim *= d
	}
	if len(s.Shape) > 0 && !slices.Equal(shape[1:], s.Shape) {
		return 0, 0, &SchemaError{File: file, Msg: fmt.Sprintf("input shape %v, the schema declares %v", shape[1:], s.Shape)}
	}
	return n, dim, nil
}

func numberedNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// fromArrays builds the dataset from inputs x (n rows of dim) and label
// texts.
func fromArrays(file string, x []float64, n, dim int, labels []string, opt Options) (*Loaded, error) {
	if len(labels) != n {
		return nil, &SchemaError{File: file, Msg: fmt.Sprintf("%d input rows but %d labels", n, len(labels))}
	}
	b, err := newBuilder(file, dim, nil, opt)
	if err != nil {
		return nil, err
	}
	if n > b.maxRows {
		return nil, fmt.Errorf("%w: %s: %d rows of %d features exceed the limit of %d values", ErrTooLarge, file, n, dim, opt.maxValues())
	}
	names := numberedNames("x", dim)
	for i := 0; i < n; i++ {
		if err := b.add(i+1, 0, x[i*dim:(i+1)*dim], labels[i], names); err != nil {
			return nil, err
		}
	}
	return b.finish(names)
}

// floatLabels renders numeric labels as text for the labeler.
func floatLabels(y []float64) []string {
	out := make([]string, len(y))
	for i, v := range y {
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			out[i] = strconv.FormatInt(int64(v), 10)
		} else {
			out[i] = strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	return out
}

func loadNPY(r io.Reader, file string, opt Options) (*Loaded, error) {
	x, shape, err := npy.Read(r, opt.maxBytes())
	if err != nil {
		return nil, npyErr(file, err)
	}
	n, dim, err := arrayRows(file, shape, opt.Schema)
	if err != nil {
		return nil, err
	}
	if opt.Unlabelled {
		return fromArrays(file, x, n, dim, make([]string, n), opt)
	}
	if opt.Labels == "" {
		return nil, &SchemaError{File: file, Msg: "a .npy input needs a labels file (Options.Labels: a .npy vector or one label a line)"}
	}
	labels, err := readLabelsFile(opt.Labels, n, opt)
	if err != nil {
		return nil, err
	}
	return fromArrays(file, x, n, dim, labels, opt)
}

func npyErr(file string, err error) error {
	if errors.Is(err, npy.ErrTooLarge) {
		return fmt.Errorf("%w: %s: %v", ErrTooLarge, file, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrFormat, file, err)
}

// readLabelsFile reads n labels from a .npy vector or a text file with
// one label a line.
func readLabelsFile(path string, n int, opt Options) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if strings.EqualFold(filepath.Ext(path), ".npy") {
		y, shape, err := npy.Read(f, opt.maxBytes())
		if err != nil {
			return nil, npyErr(path, err)
		}
		if len(shape) != 1 {
			return nil, &SchemaError{File: path, Msg: fmt.Sprintf("labels of shape %v; want a vector", shape)}
		}
		return floatLabels(y), nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), maxLabelsLine)
	var out []string
	for sc.Scan() {
		if len(out) > n {
			break
		}
		out = append(out, strings.TrimSpace(sc.Text()))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: line %d: %v", ErrFormat, path, len(out)+1, err)
	}
	return out, nil
}

// ReadNPZ reads a NumPy .npz archive (a zip of .npy files) of size bytes
// from r holding inputs "X" (or "x") of shape n×k… and labels "y" (or
// "Y") of n. file names it in errors. Each array is bounded by
// opt.MaxValues before it is decompressed.
func ReadNPZ(r io.ReaderAt, size int64, file string, opt Options) (*Loaded, error) {
	if err := opt.Schema.Validate(); err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, file, err)
	}
	find := func(names ...string) *zip.File {
		for _, want := range names {
			for _, zf := range zr.File {
				if zf.Name == want+".npy" {
					return zf
				}
			}
		}
		return nil
	}
	read := func(zf *zip.File) ([]float64, []int, error) {
		rc, err := zf.Open()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %s: %v", ErrFormat, file, zf.Name, err)
		}
		defer rc.Close()
		// npy.Read bounds the declared data; the header is bounded by it too.
		data, shape, err := npy.Read(rc, opt.maxBytes())
		if err != nil {
			return nil, nil, npyErr(file+": "+zf.Name, err)
		}
		return data, shape, nil
	}
	zx, zy := find("X", "x"), find("y", "Y")
	if zx == nil || (zy == nil && !opt.Unlabelled) {
		var names []string
		for _, zf := range zr.File {
			names = append(names, zf.Name)
		}
		return nil, &SchemaError{File: file, Msg: fmt.Sprintf("want arrays X and y, the archive holds %s", list(names))}
	}
	x, shape, err := read(zx)
	if err != nil {
		return nil, err
	}
	n, dim, err := arrayRows(file+": X", shape, opt.Schema)
	if err != nil {
		return nil, err
	}
	if opt.Unlabelled {
		return fromArrays(file, x, n, dim, make([]string, n), opt)
	}
	y, yshape, err := read(zy)
	if err != nil {
		return nil, err
	}
	if len(yshape) != 1 {
		return nil, &SchemaError{File: file + ": y", Msg: fmt.Sprintf("labels of shape %v; want a vector", yshape)}
	}
	return fromArrays(file, x, n, dim, floatLabels(y), opt)
}

// idxLabelsPath derives the label file of an IDX image file.
func idxLabelsPath(images string) string {
	dir, base := filepath.Split(images)
	base = strings.Replace(base, "images", "labels", 1)
	base = strings.Replace(base, "idx3", "idx1", 1)
	return filepath.Join(dir, base)
}

// loadIDX reads IDX images (n×rows×cols bytes, scaled to [0,1]) and their
// IDX labels.
func loadIDX(path string, opt Options) (*Loaded, error) {
	labelsPath := opt.Labels
	if labelsPath == "" {
		labelsPath = idxLabelsPath(path)
		if labelsPath == path {
			return nil, &SchemaError{File: path, Msg: "cannot derive the IDX labels file name; set Options.Labels"}
		}
	}
	img, err := learn.ReadIDXFile(path, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	lab, err := learn.ReadIDXFile(labelsPath, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if len(lab.Dims) != 1 {
		return nil, &SchemaError{File: labelsPath, Msg: fmt.Sprintf("labels of shape %v; want a vector", lab.Dims)}
	}
	n, dim, err := arrayRows(path, img.Dims, opt.Schema)
	if err != nil {
		return nil, err
	}
	x := make([]float64, len(img.Data))
	for i, b := range img.Data {
		x[i] = float64(b) / 255
	}
	labels := make([]string, len(lab.Data))
	for i, b := range lab.Data {
		labels[i] = strconv.Itoa(int(b))
	}
	l, err := fromArrays(path, x, n, dim, labels, opt)
	if err != nil {
		return nil, err
	}
	l.Features = numberedNames("pixel", dim)
	return l, nil
}

// loadFields reads a folder of MFN potential fields: the labels file (a
// CSV with columns file and label) names each field's .npy file (N×N, or
// T×N×N as "mfn sim --out" writes) inside the folder; each becomes one
// row of the 18 features of sim.ExtractFeatures.
func loadFields(dir string, opt Options) (*Loaded, error) {
	labelsPath := opt.Labels
	if labelsPath == "" {
		labelsPath = filepath.Join(dir, DefaultFieldLabels)
	}
	raw, err := readBounded(labelsPath, 64<<20)
	if err != nil {
		return nil, err
	}
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: header: %v", ErrFormat, labelsPath, err)
	}
	fileCol, labelCol := -1, -1
	for i, h := range header {
		switch strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")) {
		case "file":
			fileCol = i
		case opt.labelColumn():
			labelCol = i
		}
	}
	if fileCol < 0 {
		return nil, &SchemaError{File: labelsPath, Column: "file", Msg: "no such column; the labels file needs columns file and " + opt.labelColumn()}
	}
	if labelCol < 0 {
		return nil, &SchemaError{File: labelsPath, Column: opt.labelColumn(), Msg: "no such label column"}
	}
	names := sim.FeatureNames[:]
	b, err := newBuilder(labelsPath, sim.NumFeatures, names, opt)
	if err != nil {
		return nil, err
	}
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, csv.ErrFieldCount) {
			return nil, fmt.Errorf("%w: %s: row %d: %v", ErrFormat, labelsPath, row, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			if err := b.invalid(&RowError{File: labelsPath, Row: row, Line: line, Msg: fmt.Sprintf("%d fields, the header has %d", len(rec), len(header))}); err != nil {
				return nil, err
			}
			continue
		}
		name := strings.TrimSpace(rec[fileCol])
		if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
			if err := b.invalid(&RowError{File: labelsPath, Row: row, Line: line, Column: "file", Msg: fmt.Sprintf("%q: want a file name inside the folder", name)}); err != nil {
				return nil, err
			}
			continue
		}
		feats, err := fieldFeatures(filepath.Join(dir, name), opt)
		if err != nil {
			if e := b.invalid(&RowError{File: labelsPath, Row: row, Line: line, Column: "file", Msg: err.Error()}); e != nil {
				return nil, e
			}
			continue
		}
		if err := b.add(row, line, feats[:], rec[labelCol], names); err != nil {
			return nil, err
		}
	}
	return b.finish(names)
}

// fieldFeatures extracts the 18 features of one field file.
func fieldFeatures(path string, opt Options) (sim.Features, error) {
	f, err := os.Open(path)
	if err != nil {
		return sim.Features{}, err
	}
	defer f.Close()
	data, shape, err := npy.Read(f, opt.maxBytes())
	if err != nil {
		return sim.Features{}, npyErr(path, err)
	}
	steps := 1
	switch {
	case len(shape) == 2 && shape[0] == shape[1] && shape[0] > 0:
	case len(shape) == 3 && shape[1] == shape[2] && shape[1] > 0 && shape[0] > 0:
		steps = shape[0]
	default:
		return sim.Features{}, &SchemaError{File: path, Msg: fmt.Sprintf("field of shape %v; want N×N or T×N×N", shape)}
	}
	n := shape[len(shape)-1]
	feats, err := sim.ExtractFeatures(data, steps, n)
	if err != nil {
		return sim.Features{}, fmt.Errorf("%s: %w", path, err)
	}
	return feats, nil
}

// readBounded reads a whole small file, refusing more than limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLarge, path, limit)
	}
	return b, nil
}
