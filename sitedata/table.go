package sitedata

import (
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// columns resolves the label and feature columns of a table header.
func columns(file string, header []string, opt Options) (label int, feats []int, names []string, err error) {
	pos := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		if _, dup := pos[h]; dup {
			return 0, nil, nil, &SchemaError{File: file, Column: h, Msg: "column appears twice in the header"}
		}
		pos[h] = i
	}
	lc := opt.labelColumn()
	label, ok := pos[lc]
	if !ok && opt.Unlabelled {
		label = -1
	} else if !ok {
		return 0, nil, nil, &SchemaError{File: file, Column: lc, Msg: fmt.Sprintf("no such label column (columns: %s)", list(header))}
	}
	if len(opt.FeatureColumns) == 0 {
		for i, h := range header {
			if i != label {
				feats = append(feats, i)
				names = append(names, strings.TrimSpace(h))
			}
		}
		return label, feats, names, nil
	}
	for _, c := range opt.FeatureColumns {
		i, ok := pos[c]
		if !ok {
			return 0, nil, nil, &SchemaError{File: file, Column: c, Msg: fmt.Sprintf("no such feature column (columns: %s)", list(header))}
		}
		if i == label {
			return 0, nil, nil, &SchemaError{File: file, Column: c, Msg: "the label column cannot also be a feature"}
		}
		feats = append(feats, i)
		names = append(names, c)
	}
	return label, feats, names, nil
}

func list(h []string) string {
	const max = 12
	if len(h) > max {
		return strings.Join(h[:max], ", ") + fmt.Sprintf(", … (%d in all)", len(h))
	}
	return strings.Join(h, ", ")
}

// parseValue reads one numeric cell; the message is empty on success.
func parseValue(s string) (float64, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, "empty value"
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if len(s) > 32 {
			s = s[:32] + "…"
		}
		return 0, fmt.Sprintf("%q is not a number", s)
	}
	if !finite(v) {
		return 0, fmt.Sprintf("value %v is not finite", v)
	}
	return v, ""
}

// ReadCSV reads a CSV table with a header row from r; file names it in
// errors. The label column and feature columns follow opt. A row with the
// wrong number of fields, an empty, non-numeric or non-finite feature, or
// an invalid label is a *RowError with its row and line (or dropped under
// opt.DropInvalid); a label outside the schema's class list is a
// *SchemaError.
func ReadCSV(r io.Reader, file string, opt Options) (*Loaded, error) {
	if err := opt.Schema.Validate(); err != nil {
		return nil, err
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: %s: no header row", ErrEmpty, file)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, file, err)
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff") // a UTF-8 byte-order mark
	}
	label, feats, names, err := columns(file, header, opt)
	if err != nil {
		return nil, err
	}
	b, err := newBuilder(file, len(feats), names, opt)
	if err != nil {
		return nil, err
	}
	x := b.rowScrap
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && !errors.Is(err, csv.ErrFieldCount) {
				return nil, fmt.Errorf("%w: %s: row %d: %v", ErrFormat, file, row, err)
			}
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			if err := b.invalid(&RowError{File: file, Row: row, Line: line, Msg: fmt.Sprintf("%d fields, the header has %d", len(rec), len(header))}); err != nil {
				return nil, err
			}
			continue
		}
		ok := true
		for j, c := range feats {
			v, msg := parseValue(rec[c])
			if msg != "" {
				if err := b.invalid(&RowError{File: file, Row: row, Line: line, Column: names[j], Msg: msg}); err != nil {
					return nil, err
				}
				ok = false
				break
			}
			x[j] = v
		}
		if !ok {
			continue
		}
		lt := ""
		if label >= 0 {
			lt = rec[label]
		}
		if err := b.add(row, line, x, lt, names); err != nil {
			return nil, err
		}
	}
	return b.finish(names)
}

// ReadParquet reads a flat Parquet table of size bytes from r; file names
// it in errors. Numeric (INT32, INT64, FLOAT, DOUBLE, BOOLEAN as 0/1) and
// string columns are accepted; nulls count as empty values. Columns,
// labels and invalid rows are handled as by ReadCSV; nested or repeated
// columns are a *SchemaError.
func ReadParquet(r io.ReaderAt, size int64, file string, opt Options) (l *Loaded, err error) {
	if err := opt.Schema.Validate(); err != nil {
		return nil, err
	}
	// parquet-go is a large decoder of untrusted bytes: a panic in it on
	// a hostile file becomes ErrFormat instead of killing the process.
	defer func() {
		if p := recover(); p != nil {
			l, err = nil, fmt.Errorf("%w: %s: %v", ErrFormat, file, p)
		}
	}()
	if err := checkParquetFooter(r, size); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, file, err)
	}
	pf, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, file, err)
	}
	// Column chunks declare their decoded size; refuse before decoding
	// what could not fit the value limit (8 bytes a value, and as much
	// again for string labels and page headers).
	var declared int64
	for _, rg := range pf.Metadata().RowGroups {
		for _, c := range rg.Columns {
			u := c.MetaData.TotalUncompressedSize
			if u < 0 || declared > math.MaxInt64-u {
				return nil, fmt.Errorf("%w: %s: column chunk size %d", ErrFormat, file, u)
			}
			declared += u
		}
	}
	if limit := 2*opt.maxBytes() + size; declared > limit {
		return nil, fmt.Errorf("%w: %s: column chunks declare %d decoded bytes, limit %d", ErrTooLarge, file, declared, limit)
	}
	var header []string
	for _, path := range pf.Schema().Columns() {
		if len(path) != 1 {
			return nil, &SchemaError{File: file, Column: strings.Join(path, "."), Msg: "nested columns are not supported; use a flat table"}
		}
		header = append(header, path[0])
	}
	for _, f := range pf.Schema().Fields() {
		if f.Repeated() || !f.Leaf() {
			return nil, &SchemaError{File: file, Column: f.Name(), Msg: "repeated or nested columns are not supported; use a flat table"}
		}
	}
	label, feats, names, err := columns(file, header, opt)
	if err != nil {
		return nil, err
	}
	b, err := newBuilder(file, len(feats), names, opt)
	if err != nil {
		return nil, err
	}
	if n := pf.NumRows(); n < 0 || n > int64(b.maxRows) {
		return nil, fmt.Errorf("%w: %s: %d rows of %d features exceed the limit of %d values", ErrTooLarge, file, n, len(feats), opt.maxValues())
	}
	x := b.rowScrap
	cells := make([]parquet.Value, len(header))
	buf := make([]parquet.Row, 256)
	row := 0
	for _, rg := range pf.RowGroups() {
		rows := rg.Rows()
		for {
			n, rerr := rows.ReadRows(buf)
			for _, pr := range buf[:n] {
				row++
				for i := range cells {
					cells[i] = parquet.Value{}
				}
				for _, v := range pr {
					if c := v.Column(); c >= 0 && c < len(cells) {
						cells[c] = v
					}
				}
				ok := true
				for j, c := range feats {
					v, msg := parquetNumber(cells[c])
					if msg != "" {
						if err := b.invalid(&RowError{File: file, Row: row, Column: names[j], Msg: msg}); err != nil {
							rows.Close()
							return nil, err
						}
						ok = false
						break
					}
					x[j] = v
				}
				if !ok {
					continue
				}
				lt := ""
				if label >= 0 {
					lt = parquetText(cells[label])
				}
				if err := b.add(row, 0, x, lt, names); err != nil {
					rows.Close()
					return nil, err
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				rows.Close()
				return nil, fmt.Errorf("%w: %s: row %d: %v", ErrFormat, file, row+1, rerr)
			}
		}
		rows.Close()
	}
	return b.finish(names)
}

// maxParquetFooter bounds the Parquet footer (the file's metadata) read
// before anything else; a table of a few thousand columns needs well under
// 16 MiB.
const maxParquetFooter = 16 << 20

// checkParquetFooter checks the trailing magic and that the declared
// footer length fits the file and maxParquetFooter, so that a hostile
// length cannot make the decoder allocate gigabytes.
func checkParquetFooter(r io.ReaderAt, size int64) error {
	if size < 12 {
		return fmt.Errorf("%d bytes is too short for Parquet", size)
	}
	var tail [8]byte
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return err
	}
	if string(tail[4:]) != "PAR1" {
		return errors.New("no PAR1 magic at the end")
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n > size-12 || n > maxParquetFooter {
		return fmt.Errorf("footer length %d does not fit %d bytes (limit %d)", n, size, maxParquetFooter)
	}
	return nil
}

func parquetNumber(v parquet.Value) (float64, string) {
	if v.IsNull() {
		return 0, "empty value"
	}
	var f float64
	switch v.Kind() {
	case parquet.Boolean:
		if v.Boolean() {
			f = 1
		}
	case parquet.Int32:
		f = float64(v.Int32())
	case parquet.Int64:
		f = float64(v.Int64())
	case parquet.Float:
		f = float64(v.Float())
	case parquet.Double:
		f = v.Double()
	case parquet.ByteArray:
		return parseValue(string(v.ByteArray()))
	default:
		return 0, fmt.Sprintf("unsupported column type %v", v.Kind())
	}
	if !finite(f) {
		return 0, fmt.Sprintf("value %v is not finite", f)
	}
	return f, ""
}

func parquetText(v parquet.Value) string {
	if v.IsNull() {
		return ""
	}
	switch v.Kind() {
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return string(v.ByteArray())
	case parquet.Boolean:
		if v.Boolean() {
			return "1"
		}
		return "0"
	case parquet.Int32:
		return strconv.FormatInt(int64(v.Int32()), 10)
	case parquet.Int64:
		return strconv.FormatInt(v.Int64(), 10)
	case parquet.Float:
		return strconv.FormatFloat(float64(v.Float()), 'g', -1, 32)
	case parquet.Double:
		d := v.Double()
		if d == math.Trunc(d) && math.Abs(d) < 1e15 {
			return strconv.FormatInt(int64(d), 10)
		}
		return strconv.FormatFloat(d, 'g', -1, 64)
	}
	return ""
}
