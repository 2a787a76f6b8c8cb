package jsonkeys

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	atMax := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	for _, c := range []struct {
		in      string
		keys    int
		wantErr error
		msg     string // substring of the error
	}{
		{`{}`, 0, nil, ""},
		{`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`, 6, nil, ""},
		{`{"a":1,"a":2}`, 2, ErrDuplicate, `"a" at a`},
		{`{"rule":{"f":1,"name":"krum","f":2}}`, 4, ErrDuplicate, `"f" at rule.f`},
		{`{"x":[{"id":1},{"id":2,"ID":3}]}`, 4, ErrDuplicate, `"ID" at x[1].ID (the same field as "id")`},
		{`{"\u0069d":1,"id":2}`, 2, ErrDuplicate, `"id" at id`},
		{`{"K":1,"\u212a":2}`, 2, ErrDuplicate, "the same field as"}, // Kelvin sign folds to k
		{`{"a":"a","b":"a"}`, 2, nil, ""},                            // equal values, not keys
		{`["a","a"]`, 0, nil, ""},
		{`{"a":{"b":1},"b":1}`, 3, nil, ""},
		{`{"a":1,"a"`, 2, ErrDuplicate, ""}, // found before the syntax error
		{`{"a":1,`, 1, nil, ""},             // syntax is the decoder's to report
		{`{"a" 1, "a": 2}`, 1, nil, ""},
		{atMax, 0, nil, ""},
		{deep, 0, ErrTooDeep, "more than 32 levels"},
		{`{"` + strings.Repeat("k", 1000) + `":1,"` + strings.Repeat("k", 1000) + `":2}`, 2, ErrDuplicate, "[+744 bytes]"},
	} {
		keys, err := Check([]byte(c.in))
		if !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
			t.Errorf("Check(%.60s): error %v, want %v", c.in, err, c.wantErr)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Check(%.60s): error %q does not contain %q", c.in, err, c.msg)
		}
		if err != nil && len(err.Error()) > 3*maxQuoted {
			t.Errorf("Check(%.60s): error of %d bytes", c.in, len(err.Error()))
		}
		if c.wantErr != ErrTooDeep && keys != c.keys {
			t.Errorf("Check(%.60s) saw %d keys, want %d", c.in, keys, c.keys)
		}
	}
}

// countKeys counts the object keys of a decoded JSON value.
func countKeys(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := len(x)
		for _, e := range x {
			n += countKeys(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range x {
			n += countKeys(e)
		}
		return n
	}
	return 0
}

// FuzzCheck: Check never panics, fails only with its two errors, and when
// it passes a valid document, encoding/json keeps every key it saw (no
// key was silently overwritten).
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2}]},"d":null}`, `{"id":1,"ID":2}`,
		`[[[[[]]]]]`, `{"a":"\u0061"}`, `{"\u00e9":1,"É":2}`, `{`, `"x"`, `{"a":1}{"a":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := Check(data)
		if err != nil {
			if !errors.Is(err, ErrDuplicate) && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !json.Valid(data) {
			return
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return // nesting beyond encoding/json's own limit
		}
		if got := countKeys(v); got != keys {
			t.Fatalf("Check passed %q seeing %d keys, but the decoded value has %d", data, keys, got)
		}
	})
}
