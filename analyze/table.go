package analyze

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// ErrTable is wrapped by every error about a malformed or oversized table.
var ErrTable = errors.New("analyze: bad table")

// ErrNoColumn is wrapped when a named column is absent or of the wrong kind.
var ErrNoColumn = errors.New("analyze: no such column")

// Limits bound what reading one table may cost. A zero field means the
// DefaultLimits value.
type Limits struct {
	MaxBytes   int64 // size of the file; default 256 MiB
	MaxRows    int   // data rows; default 1,000,000
	MaxColumns int   // default 256
	MaxLevels  int   // distinct values of a text column; default 1000
	// MaxCells bounds rows × columns, the float64 values held in memory
	// (a compressed Parquet file can declare far more than its size);
	// default 32 Mi (256 MiB of values).
	MaxCells int64
}

// DefaultLimits are the limits used for zero Limits fields.
var DefaultLimits = Limits{MaxBytes: 256 << 20, MaxRows: 1_000_000, MaxColumns: 256, MaxLevels: 1000, MaxCells: 32 << 20}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxRows <= 0 {
		l.MaxRows = DefaultLimits.MaxRows
	}
	if l.MaxColumns <= 0 {
		l.MaxColumns = DefaultLimits.MaxColumns
	}
	if l.MaxLevels <= 0 {
		l.MaxLevels = DefaultLimits.MaxLevels
	}
	if l.MaxCells <= 0 {
		l.MaxCells = DefaultLimits.MaxCells
	}
	return l
}

// Kind is what a column holds.
type Kind int

// Column kinds.
const (
	Numeric  Kind = iota // finite reals
	Bool                 // true/false, stored as 1/0
	Category             // text with at most MaxLevels distinct values, stored as level indexes
	Other                // text with too many distinct values; Values is nil
)

func (k Kind) String() string {
	return [...]string{"numeric", "bool", "category", "other"}[k]
}

// Column is one column of a Table. Values[i] is row i: the number itself,
// 1/0 for a Bool, the index into Levels for a Category.
type Column struct {
	Name   string
	Kind   Kind
	Values []float64
	Levels []string // Category: the distinct values in order of first appearance; Bool: ["false", "true"]
}

// Discrete reports whether the column takes a few labelled values (Bool or
// Category), as opposed to a continuous quantity.
func (c *Column) Discrete() bool { return c.Kind == Bool || c.Kind == Category }

// Table is a data set read into memory, column by column.
type Table struct {
	Rows    int
	Columns []Column
}

// Column returns the column called name, or an error wrapping ErrNoColumn
// that names it.
func (t *Table) Column(name string) (*Column, error) {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoColumn, name)
}

// ReadTableFile reads a .csv or .parquet file (by extension, as written by
// "mfn dataset") within lim. Errors: ErrTable (wrapped) for a bad or
// oversized file or an unknown extension; the file's I/O errors.
func ReadTableFile(path string, lim Limits) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return ReadCSV(f, lim)
	case ".parquet":
		return ReadParquet(f, lim)
	}
	return nil, fmt.Errorf("%w: %s: the name must end in .csv or .parquet", ErrTable, path)
}

// readAllLimited reads r, failing with ErrTable past max bytes.
func readAllLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: larger than the %d-byte limit", ErrTable, max)
	}
	return b, nil
}

// ReadCSV reads a CSV table with a header row. Each column's kind is
// inferred from all its cells: numeric if every cell parses as a finite
// number, bool if every cell is true or false (any case), otherwise a
// category (or Other beyond lim.MaxLevels distinct values). A cell that
// parses as NaN or ±Inf in an otherwise numeric column is an error naming
// its row and column. Errors wrap ErrTable.
func ReadCSV(r io.Reader, lim Limits) (*Table, error) {
	lim = lim.withDefaults()
	b, err := readAllLimited(r, lim.MaxBytes)
	if err != nil {
		return nil, err
	}
	cr := csv.NewReader(bytes.NewReader(b))
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrTable, err)
	}
	if len(head) > lim.MaxColumns {
		return nil, fmt.Errorf("%w: %d columns, more than the limit %d", ErrTable, len(head), lim.MaxColumns)
	}
	names := append([]string(nil), head...)
	if err := checkNames(names); err != nil {
		return nil, err
	}
	cells := make([][]string, len(names))
	rows := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTable, err)
		}
		if rows == lim.MaxRows {
			return nil, fmt.Errorf("%w: more than the limit of %d rows", ErrTable, lim.MaxRows)
		}
		if int64(rows+1)*int64(len(names)) > lim.MaxCells {
			return nil, fmt.Errorf("%w: more than the limit of %d cells (rows × columns)", ErrTable, lim.MaxCells)
		}
		for j, v := range rec {
			cells[j] = append(cells[j], strings.Clone(v))
		}
		rows++
	}
	t := &Table{Rows: rows, Columns: make([]Column, len(names))}
	for j, name := range names {
		c, err := inferColumn(name, cells[j], lim.MaxLevels)
		if err != nil {
			return nil, err
		}
		t.Columns[j] = c
		cells[j] = nil
	}
	return t, nil
}

func checkNames(names []string) error {
	seen := make(map[string]bool, len(names))
	for j, n := range names {
		if n == "" {
			return fmt.Errorf("%w: column %d has an empty name", ErrTable, j+1)
		}
		if seen[n] {
			return fmt.Errorf("%w: column %q appears twice", ErrTable, n)
		}
		seen[n] = true
	}
	return nil
}

// inferColumn decides the kind of a CSV column from its cells.
func inferColumn(name string, cells []string, maxLevels int) (Column, error) {
	c := Column{Name: name, Values: make([]float64, len(cells))}
	numeric := true
	for i, s := range cells {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			numeric = false
			break
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Column{}, fmt.Errorf("%w: column %q, row %d: non-finite value %q", ErrTable, name, i+1, s)
		}
		c.Values[i] = v
	}
	if numeric {
		return c, nil
	}
	isBool := true
	for i, s := range cells {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			c.Values[i] = 1
		case "false":
			c.Values[i] = 0
		default:
			isBool = false
		}
		if !isBool {
			break
		}
	}
	if isBool {
		c.Kind, c.Levels = Bool, []string{"false", "true"}
		return c, nil
	}
	return categoryOf(name, cells, maxLevels), nil
}

// ReadParquet reads a flat Parquet table (every column a top-level
// required or optional leaf without nulls) within lim: integers and reals
// become Numeric, booleans Bool, byte arrays Category (or Other). The file
// is read into memory, bounded by lim.MaxBytes. Errors wrap ErrTable;
// a malformed file that makes the Parquet decoder panic is reported as an
// error too.
func ReadParquet(r io.Reader, lim Limits) (t *Table, err error) {
	lim = lim.withDefaults()
	b, err := readAllLimited(r, lim.MaxBytes)
	if err != nil {
		return nil, err
	}
	// parquet-go allocates the footer length the trailer declares before
	// comparing it with the file size: check it first.
	if len(b) < 12 || string(b[:4]) != "PAR1" || string(b[len(b)-4:]) != "PAR1" {
		return nil, fmt.Errorf("%w: not a Parquet file (no PAR1 magic at both ends)", ErrTable)
	}
	if footer := int64(binary.LittleEndian.Uint32(b[len(b)-8:])); footer > int64(len(b))-12 {
		return nil, fmt.Errorf("%w: Parquet footer of %d bytes does not fit in a %d-byte file", ErrTable, footer, len(b))
	}
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("%w: malformed Parquet file: %v", ErrTable, p)
		}
	}()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTable, err)
	}
	nrows := f.NumRows()
	if nrows < 0 || nrows > int64(lim.MaxRows) {
		return nil, fmt.Errorf("%w: %d rows, more than the limit %d", ErrTable, nrows, lim.MaxRows)
	}
	paths := f.Schema().Columns()
	if len(paths) > lim.MaxColumns {
		return nil, fmt.Errorf("%w: %d columns, more than the limit %d", ErrTable, len(paths), lim.MaxColumns)
	}
	names := make([]string, len(paths))
	for j, p := range paths {
		if len(p) != 1 {
			return nil, fmt.Errorf("%w: nested column %s is not supported", ErrTable, strings.Join(p, "."))
		}
		names[j] = p[0]
	}
	if err := checkNames(names); err != nil {
		return nil, err
	}
	if nrows*int64(len(names)) > lim.MaxCells {
		return nil, fmt.Errorf("%w: %d rows × %d columns, more than the limit of %d cells", ErrTable, nrows, len(names), lim.MaxCells)
	}
	n := int(nrows)
	t = &Table{Rows: n, Columns: make([]Column, len(names))}
	text := make([][]string, len(names))
	kinds := make([]parquet.Kind, len(names))
	for j, name := range names {
		t.Columns[j] = Column{Name: name}
		kinds[j] = -1
	}
	rd := parquet.NewReader(f)
	defer rd.Close()
	buf := make([]parquet.Row, 256)
	read := 0
	for read < n {
		k, err := rd.ReadRows(buf)
		for _, row := range buf[:k] {
			if err := addParquetRow(t, text, kinds, row, read); err != nil {
				return nil, err
			}
			read++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: row %d: %v", ErrTable, read+1, err)
		}
		if k == 0 {
			break
		}
	}
	if read != n {
		return nil, fmt.Errorf("%w: the footer declares %d rows, the file holds %d", ErrTable, n, read)
	}
	for j := range t.Columns {
		c := &t.Columns[j]
		switch {
		case kinds[j] == parquet.Boolean:
			c.Kind, c.Levels = Bool, []string{"false", "true"}
		case kinds[j] == parquet.ByteArray || kinds[j] == parquet.FixedLenByteArray:
			*c = categoryOf(c.Name, text[j], lim.MaxLevels)
		}
	}
	return t, nil
}

// categoryOf builds a Category column of the cells as text, or an Other
// column beyond maxLevels distinct values.
func categoryOf(name string, cells []string, maxLevels int) Column {
	c := Column{Name: name, Kind: Category, Values: make([]float64, len(cells))}
	index := map[string]int{}
	for i, s := range cells {
		k, ok := index[s]
		if !ok {
			if len(index) == maxLevels {
				return Column{Name: name, Kind: Other}
			}
			k = len(index)
			index[s] = k
			c.Levels = append(c.Levels, s)
		}
		c.Values[i] = float64(k)
	}
	return c
}

// addParquetRow appends the values of one Parquet row.
func addParquetRow(t *Table, text [][]string, kinds []parquet.Kind, row parquet.Row, r int) error {
	if len(row) != len(t.Columns) {
		return fmt.Errorf("%w: row %d has %d values for %d columns", ErrTable, r+1, len(row), len(t.Columns))
	}
	for _, v := range row {
		j := v.Column()
		if j < 0 || j >= len(t.Columns) {
			return fmt.Errorf("%w: row %d: value of unknown column %d", ErrTable, r+1, j)
		}
		c := &t.Columns[j]
		if v.IsNull() {
			return fmt.Errorf("%w: column %q, row %d: null value", ErrTable, c.Name, r+1)
		}
		if kinds[j] == -1 {
			kinds[j] = v.Kind()
		} else if kinds[j] != v.Kind() {
			return fmt.Errorf("%w: column %q, row %d: mixed value types", ErrTable, c.Name, r+1)
		}
		var x float64
		switch v.Kind() {
		case parquet.Boolean:
			if v.Boolean() {
				x = 1
			}
		case parquet.Int32:
			x = float64(v.Int32())
		case parquet.Int64:
			x = float64(v.Int64())
		case parquet.Float:
			x = float64(v.Float())
		case parquet.Double:
			x = v.Double()
		case parquet.ByteArray, parquet.FixedLenByteArray:
			text[j] = append(text[j], string(v.ByteArray()))
			continue
		default:
			return fmt.Errorf("%w: column %q: unsupported type %v", ErrTable, c.Name, v.Kind())
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%w: column %q, row %d: non-finite value %v", ErrTable, c.Name, r+1, x)
		}
		c.Values = append(c.Values, x)
	}
	return nil
}
