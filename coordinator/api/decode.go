package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mfn/mfn/internal/jsonkeys"
)

// decodeStrict decodes exactly one JSON value from data into v: unknown
// object fields, a key twice in one object (jsonkeys.Check), nesting
// beyond jsonkeys.MaxDepth, trailing data after the value and an empty body are
// errors. Messages name the offending field or byte offset.
func decodeStrict(data []byte, v any) error {
	if _, err := jsonkeys.Check(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the JSON value at byte %d", dec.InputOffset())
	}
	return nil
}

// describeJSONError turns encoding/json's errors into messages for API
// users.
func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("empty body: a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("truncated JSON")
	case errors.As(err, &syn):
		return fmt.Errorf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Errorf("field %q: cannot use a JSON %s as %v", typ.Field, typ.Value, typ.Type)
		}
		return fmt.Errorf("cannot use a JSON %s as %v", typ.Value, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return fmt.Errorf("invalid JSON: %v", err)
}

// readBody reads a request body of at most Config.MaxBodyBytes bytes
// within Config.BodyTimeout. A non-empty body must be declared
// application/json (415 otherwise); an over-long body is a 413, a body
// not sent in time a 408 (and the connection is closed). The body is read
// whole so that a write can be forwarded to the leader after it was read.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	// The server's ReadTimeout is a backstop for the whole request; the
	// body gets its own, shorter, deadline. Once it is read, the handler
	// may take up to RequestTimeout (and a forward as long again), and a
	// read deadline passing meanwhile would cancel its context.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.Header().Set("Connection", "close")
			return nil, errorf(http.StatusRequestTimeout, CodeRequestTimeout,
				"the request body did not arrive within %v", s.cfg.BodyTimeout)
		}
		return nil, errorf(http.StatusBadRequest, CodeBadRequest, "reading the body: %v", err)
	}
	_ = rc.SetReadDeadline(time.Now().Add(2*s.cfg.RequestTimeout + s.cfg.BodyTimeout))
	if len(data) > 0 {
		ct := r.Header.Get("Content-Type")
		mt, _, perr := mime.ParseMediaType(ct)
		if ct == "" || perr != nil || mt != "application/json" {
			return nil, errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
				"Content-Type %q: the body must be application/json", ct)
		}
	}
	return data, nil
}

// decodeBody decodes a JSON body strictly into v (see decodeStrict);
// errors are 400s.
func decodeBody(data []byte, v any) error {
	if err := decodeStrict(data, v); err != nil {
		return errorf(http.StatusBadRequest, CodeBadRequest, "%v", err)
	}
	return nil
}
