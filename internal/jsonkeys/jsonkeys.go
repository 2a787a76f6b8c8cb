// Package jsonkeys finds what encoding/json silently accepts in a JSON
// document but a strict API must refuse: an object with the same key twice
// (encoding/json keeps the last value, so two readers of the same bytes may
// disagree on their meaning) and nesting deep enough to cost a parser
// stack. Check scans the document as a token stream (encoding/json's
// Decoder.Token), keeping one set of keys per object that is still open.
package jsonkeys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of objects and arrays. Every request type
// of the operator API is at most three levels deep.
const MaxDepth = 32

// ErrDuplicate marks a JSON object with the same key twice.
// encoding/json would silently keep the last value, so a body whose
// meaning depends on which one a reader picks is refused.
var ErrDuplicate = errors.New("duplicate JSON key")

// ErrTooDeep marks a JSON value nested deeper than MaxDepth.
var ErrTooDeep = errors.New("JSON nested too deeply")

// jsonFrame is one open object or array while scanning.
type jsonFrame struct {
	object bool
	expect bool              // object: the next string token is a key
	seen   map[string]string // object: folded key → key as written
	path   string            // where this value sits, e.g. rule or updates[2]
	index  int               // array: index of the next element
	key    string            // object: the current key
}

// Check scans data as a stream of JSON tokens and reports
// the first object holding a key twice, with the key's path (ErrDuplicate),
// or nesting beyond MaxDepth (ErrTooDeep). Keys are compared as
// encoding/json matches struct fields: after decoding escapes and folding
// case ("id", "ID" and "\u0069d" are one key). It returns the number of
// object keys it saw. Malformed JSON ends the scan without an error:
// reporting syntax is the decoder's job.
func Check(data []byte) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*jsonFrame
	keys := 0
	// valueDone is called when a complete value (scalar or closed
	// container) ends inside the top frame.
	valueDone := func() {
		if n := len(stack); n > 0 {
			top := stack[n-1]
			if top.object {
				top.expect = true
			} else {
				top.index++
			}
		}
	}
	childPath := func() string {
		if len(stack) == 0 {
			return ""
		}
		top := stack[len(stack)-1]
		if top.object {
			if top.path == "" {
				return top.key
			}
			return top.path + "." + top.key
		}
		return top.path + "[" + strconv.Itoa(top.index) + "]"
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			// io.EOF at the end, or a syntax error the decoder will name.
			return keys, nil
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= MaxDepth {
					return keys, fmt.Errorf("%w: more than %d levels at %s", ErrTooDeep, MaxDepth, clip(orTop(childPath())))
				}
				f := &jsonFrame{object: t == '{', expect: t == '{', path: childPath()}
				if f.object {
					f.seen = map[string]string{}
				}
				stack = append(stack, f)
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expect {
				top := stack[n-1]
				keys++
				folded := foldKey(t)
				if first, dup := top.seen[folded]; dup {
					top.key = t
					at := childPath()
					if first == t {
						return keys, fmt.Errorf("%w %q at %s", ErrDuplicate, clip(t), clip(at))
					}
					return keys, fmt.Errorf("%w %q at %s (the same field as %q)", ErrDuplicate, clip(t), clip(at), clip(first))
				}
				top.seen[folded] = t
				top.key, top.expect = t, false
				continue
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

func orTop(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

// foldKey maps s to a canonical representative of its case-folding
// class (each rune to the smallest rune of its unicode.SimpleFold orbit),
// so that foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b),
// the rule encoding/json uses to match keys with struct fields.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == utf8.RuneError {
			b.WriteRune(r)
			continue
		}
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b.WriteRune(min)
	}
	return b.String()
}

// maxQuoted is the most bytes of a key or path quoted in an error; the
// rest is replaced by a marker, so that a hostile document cannot make an
// error (and the log line or response quoting it) large.
const maxQuoted = 256

func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[+" + strconv.Itoa(len(s)-cut) + " bytes]"
}
