package analyze

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReadCSV: any bytes give a table or an error wrapping ErrTable, never
// a panic, and a table's columns all hold one value per row.
func FuzzReadCSV(f *testing.F) {
	f.Add(dataset(f, "csv", 3))
	f.Add([]byte("a,b\n1,true\n2,false\n"))
	f.Add([]byte("a\nNaN\n"))
	f.Add([]byte("a,b\n\"x\",1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := ReadCSV(bytes.NewReader(b), Limits{MaxRows: 1000, MaxLevels: 20})
		if err != nil {
			if !errors.Is(err, ErrTable) {
				t.Fatalf("error %v does not wrap ErrTable", err)
			}
			return
		}
		checkTable(t, tb)
	})
}

// FuzzReadParquet: a malformed Parquet file is an error, never a panic.
func FuzzReadParquet(f *testing.F) {
	f.Add(dataset(f, "parquet", 3))
	f.Add([]byte("PAR1PAR1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := ReadParquet(bytes.NewReader(b), Limits{MaxRows: 1000, MaxCells: 100000})
		if err != nil {
			return
		}
		checkTable(t, tb)
	})
}

func checkTable(t *testing.T, tb *Table) {
	t.Helper()
	for _, c := range tb.Columns {
		if c.Kind != Other && len(c.Values) != tb.Rows {
			t.Fatalf("column %q: %d values for %d rows", c.Name, len(c.Values), tb.Rows)
		}
		if c.Discrete() {
			for _, v := range c.Values {
				if int(v) < 0 || int(v) >= len(c.Levels) {
					t.Fatalf("column %q: level %v of %d", c.Name, v, len(c.Levels))
				}
			}
		}
	}
}
