package npy

import (
	"fmt"
	"strconv"
	"strings"
)

// header is the decoded content of a .npy header dict.
type header struct {
	itemSize int64   // 8 for '<f8', 4 for '<f4'
	shape    []int64 // each ≥ 0
}

// maxLiteralDepth bounds nesting in the header literal; a valid header nests
// two levels (the dict and the shape tuple).
const maxLiteralDepth = 16

// Python literal values the header parser produces.
type (
	pyTuple []any
	pyList  []any
	pyNone  struct{}
	pyDict  struct {
		keys []string
		vals []any
	}
)

// parseHeader decodes the header dict. It accepts exactly the Python literal
// syntax numpy.lib.format's safe_eval would for a valid header (strings,
// integers, True/False/None, tuples, lists, dicts) without evaluating
// anything, and then requires exactly the keys 'descr', 'fortran_order' and
// 'shape', with a supported dtype, C order and a tuple of non-negative
// integers as the shape.
func parseHeader(b []byte) (header, error) {
	p := &litParser{s: string(b)}
	v, err := p.value(0)
	if err == nil {
		p.skipSpace()
		if p.pos != len(p.s) {
			err = p.errorf("unexpected %q after the dict", p.s[p.pos:min(len(p.s), p.pos+16)])
		}
	}
	if err != nil {
		return header{}, err
	}
	d, ok := v.(*pyDict)
	if !ok {
		return header{}, fmt.Errorf("%w: header is %s, not a dict", ErrHeader, kindOf(v))
	}
	fields := map[string]any{}
	for i, k := range d.keys {
		if _, dup := fields[k]; dup {
			return header{}, fmt.Errorf("%w: duplicate key %q", ErrHeader, k)
		}
		switch k {
		case "descr", "fortran_order", "shape":
		default:
			return header{}, fmt.Errorf("%w: unexpected key %q (want 'descr', 'fortran_order', 'shape')", ErrHeader, k)
		}
		fields[k] = d.vals[i]
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if _, ok := fields[k]; !ok {
			return header{}, fmt.Errorf("%w: missing key %q", ErrHeader, k)
		}
	}
	var h header
	switch descr := fields["descr"]; descr {
	case "<f8":
		h.itemSize = 8
	case "<f4":
		h.itemSize = 4
	default:
		r := repr(descr)
		if len(r) > 80 {
			r = r[:77] + "..."
		}
		return header{}, &DtypeError{Descr: r}
	}
	switch fo := fields["fortran_order"].(type) {
	case bool:
		if fo {
			return header{}, ErrFortranOrder
		}
	default:
		return header{}, fmt.Errorf("%w: 'fortran_order' is %s, want True or False", ErrHeader, kindOf(fo))
	}
	tup, ok := fields["shape"].(pyTuple)
	if !ok {
		return header{}, fmt.Errorf("%w: 'shape' is %s, want a tuple of integers", ErrHeader, kindOf(fields["shape"]))
	}
	h.shape = make([]int64, len(tup))
	for i, e := range tup {
		d, ok := e.(int64)
		if !ok {
			return header{}, fmt.Errorf("%w: shape entry %d is %s, want an integer", ErrHeader, i, kindOf(e))
		}
		if d < 0 {
			return header{}, fmt.Errorf("%w: negative dimension %d in shape", ErrHeader, d)
		}
		h.shape[i] = d
	}
	return h, nil
}

// litParser is a recursive-descent parser for the subset of Python literal
// syntax that can appear in a .npy header.
type litParser struct {
	s   string
	pos int
}

func (p *litParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrHeader, p.pos, fmt.Sprintf(format, args...))
}

func (p *litParser) skipSpace() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.pos++
		default:
			return
		}
	}
}

func (p *litParser) value(depth int) (any, error) {
	if depth > maxLiteralDepth {
		return nil, p.errorf("nesting deeper than %d", maxLiteralDepth)
	}
	p.skipSpace()
	if p.pos >= len(p.s) {
		return nil, p.errorf("unexpected end of header")
	}
	switch c := p.s[p.pos]; {
	case c == '{':
		return p.dict(depth)
	case c == '(':
		items, trailingComma, err := p.sequence(depth, ')')
		if err != nil {
			return nil, err
		}
		if len(items) == 1 && !trailingComma {
			return items[0], nil // parenthesised expression, not a tuple
		}
		return pyTuple(items), nil
	case c == '[':
		items, _, err := p.sequence(depth, ']')
		return pyList(items), err
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c == '+' || (c >= '0' && c <= '9'):
		return p.integer()
	case isIdentStart(c):
		start := p.pos
		for p.pos < len(p.s) && (isIdentStart(p.s[p.pos]) || (p.s[p.pos] >= '0' && p.s[p.pos] <= '9')) {
			p.pos++
		}
		switch word := p.s[start:p.pos]; word {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return pyNone{}, nil
		default:
			p.pos = start
			return nil, p.errorf("unexpected name %q (only True, False and None are literals)", word)
		}
	default:
		return nil, p.errorf("unexpected character %q", c)
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// sequence parses "(a, b, ...)" or "[a, b, ...]" starting at the opening
// bracket, reporting whether the last item was followed by a comma.
func (p *litParser) sequence(depth int, closer byte) (items []any, trailingComma bool, err error) {
	p.pos++ // opening bracket
	for {
		p.skipSpace()
		if p.pos < len(p.s) && p.s[p.pos] == closer {
			p.pos++
			return items, trailingComma, nil
		}
		if len(items) > 0 && !trailingComma {
			return nil, false, p.errorf("expected ',' or %q", closer)
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, false, err
		}
		items = append(items, v)
		p.skipSpace()
		trailingComma = p.pos < len(p.s) && p.s[p.pos] == ','
		if trailingComma {
			p.pos++
		}
	}
}

// dict parses "{key: value, ...}" with string keys.
func (p *litParser) dict(depth int) (any, error) {
	p.pos++ // '{'
	d := &pyDict{}
	comma := true
	for {
		p.skipSpace()
		if p.pos < len(p.s) && p.s[p.pos] == '}' {
			p.pos++
			return d, nil
		}
		if !comma {
			return nil, p.errorf("expected ',' or '}'")
		}
		if p.pos >= len(p.s) {
			return nil, p.errorf("unexpected end of header inside the dict")
		}
		if c := p.s[p.pos]; c != '\'' && c != '"' {
			return nil, p.errorf("dict key must be a string")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.s) || p.s[p.pos] != ':' {
			return nil, p.errorf("expected ':' after key %q", k)
		}
		p.pos++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		d.keys = append(d.keys, k)
		d.vals = append(d.vals, v)
		p.skipSpace()
		comma = p.pos < len(p.s) && p.s[p.pos] == ','
		if comma {
			p.pos++
		}
	}
}

// str parses a single- or double-quoted string with Python's simple
// backslash escapes.
func (p *litParser) str() (string, error) {
	q := p.s[p.pos]
	start := p.pos
	p.pos++
	var sb strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == q:
			p.pos++
			return sb.String(), nil
		case c == '\n':
			return "", p.errorf("newline inside a string")
		case c == '\\':
			if p.pos+1 >= len(p.s) {
				return "", p.errorf("unterminated escape")
			}
			e := p.s[p.pos+1]
			p.pos += 2
			switch e {
			case '\\', '\'', '"':
				sb.WriteByte(e)
			case 'n':
				sb.WriteByte('\n')
			case 't':
				sb.WriteByte('\t')
			case 'r':
				sb.WriteByte('\r')
			case '0':
				sb.WriteByte(0)
			case 'x':
				if p.pos+2 > len(p.s) {
					return "", p.errorf("short \\x escape")
				}
				v, err := strconv.ParseUint(p.s[p.pos:p.pos+2], 16, 8)
				if err != nil {
					return "", p.errorf("bad \\x escape")
				}
				sb.WriteByte(byte(v))
				p.pos += 2
			default:
				sb.WriteByte('\\')
				sb.WriteByte(e)
			}
		default:
			sb.WriteByte(c)
			p.pos++
		}
	}
	p.pos = start
	return "", p.errorf("unterminated string")
}

// integer parses a decimal integer with an optional sign and an optional
// Python 2 'L' suffix (old NumPy versions wrote shapes such as (3L, 4L)).
func (p *litParser) integer() (any, error) {
	start := p.pos
	neg := false
	if c := p.s[p.pos]; c == '-' || c == '+' {
		neg = c == '-'
		p.pos++
		p.skipSpace()
	}
	digits := p.pos
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
	}
	text := p.s[digits:p.pos]
	if text == "" {
		p.pos = start
		return nil, p.errorf("expected a number")
	}
	if p.pos < len(p.s) {
		switch p.s[p.pos] {
		case 'L', 'l':
			p.pos++
		case '.', 'e', 'E', 'j', 'J', 'x', 'X', 'o', 'O', 'b', 'B', '_':
			p.pos = start
			return nil, p.errorf("only decimal integers are accepted")
		}
	}
	if len(text) > 1 && text[0] == '0' {
		p.pos = start
		return nil, p.errorf("leading zero in integer %q", text)
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		p.pos = start
		return nil, p.errorf("integer %q out of range", text)
	}
	if neg {
		v = -v
	}
	return v, nil
}

// kindOf names the Python type of a parsed value for error messages.
func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a bool"
	case int64:
		return "an integer"
	case pyNone:
		return "None"
	case pyTuple:
		return "a tuple"
	case pyList:
		return "a list"
	case *pyDict:
		return "a dict"
	}
	return "unknown"
}

// repr renders a parsed value roughly as Python would, for error messages.
func repr(v any) string {
	switch x := v.(type) {
	case string:
		return "'" + strings.ReplaceAll(x, "'", `\'`) + "'"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case pyNone:
		return "None"
	case pyTuple:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = repr(e)
		}
		if len(x) == 1 {
			return "(" + parts[0] + ",)"
		}
		return "(" + strings.Join(parts, ", ") + ")"
	case pyList:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = repr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case *pyDict:
		parts := make([]string, len(x.keys))
		for i, k := range x.keys {
			parts[i] = repr(k) + ": " + repr(x.vals[i])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return "?"
}
