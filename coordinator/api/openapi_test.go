package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// fetchSpec gets /openapi.json without a key and decodes it.
func fetchSpec(t *testing.T, srv *httptest.Server) map[string]any {
	t.Helper()
	resp := request(t, srv, "GET", "/openapi.json", "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("document is not JSON: %v", err)
	}
	if dec.More() {
		t.Fatal("data after the document")
	}
	return doc
}

// resolve follows a local JSON pointer ("#/a/b") in doc.
func resolve(doc map[string]any, ref string) (any, bool) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var cur any = doc
	for _, part := range strings.Split(p, "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// walkRefs calls f with every "$ref" value in v and its JSON path.
func walkRefs(v any, at string, f func(at, ref string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				f(at, s)
				continue
			}
			walkRefs(x, at+"/"+k, f)
		}
	case []any:
		for _, x := range v {
			walkRefs(x, at+"[]", f)
		}
	}
}

// TestOpenAPIWellFormed: the document has the OpenAPI 3.1 top-level
// fields, the API key scheme, and every $ref resolves to a schema.
func TestOpenAPIWellFormed(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	doc := fetchSpec(t, srv)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if s, _ := info["title"].(string); s == "" {
		t.Error("info.title missing")
	}
	if s, _ := info["version"].(string); s == "" {
		t.Error("info.version missing")
	}
	if paths, _ := doc["paths"].(map[string]any); len(paths) == 0 {
		t.Fatal("no paths")
	}
	scheme, ok := resolve(doc, "#/components/securitySchemes/apiKey")
	if !ok {
		t.Fatal("no apiKey security scheme")
	}
	sm := scheme.(map[string]any)
	if sm["type"] != "apiKey" || sm["in"] != "header" || sm["name"] != HeaderAPIKey {
		t.Errorf("apiKey scheme %v", sm)
	}
	refs := 0
	walkRefs(doc, "", func(at, ref string) {
		refs++
		target, ok := resolve(doc, ref)
		if !ok {
			t.Errorf("%s: $ref %q does not resolve", at, ref)
			return
		}
		if m, ok := target.(map[string]any); !ok || m["type"] == nil {
			t.Errorf("%s: $ref %q points at %v, not a schema", at, ref, target)
		}
	})
	if refs < 10 {
		t.Errorf("only %d $refs: schemas not generated?", refs)
	}
	// The error shape is described with its codes.
	code, ok := resolve(doc, "#/components/schemas/ErrorDetail/properties/code")
	if !ok {
		t.Fatal("ErrorDetail.code missing")
	}
	if enum, _ := code.(map[string]any)["enum"].([]any); len(enum) != len(errorCodes) {
		t.Errorf("ErrorDetail.code enum %v", code)
	}
	// A known body schema has the fields encoding/json writes.
	job, ok := resolve(doc, "#/components/schemas/coordinator.JobSpec/properties")
	if !ok {
		t.Fatal("coordinator.JobSpec missing")
	}
	for _, f := range []string{"id", "dim", "rule", "round_deadline", "initial_model"} {
		if _, ok := job.(map[string]any)[f]; !ok {
			t.Errorf("JobSpec schema lacks %s", f)
		}
	}
	if d, _ := resolve(doc, "#/components/schemas/coordinator.JobSpec/properties/round_deadline/type"); d != "string" {
		t.Errorf("round_deadline type %v, want string (a Go duration)", d)
	}
}

// specOps lists the document's operations as "METHOD /path" → operation.
func specOps(t *testing.T, doc map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			out[strings.ToUpper(method)+" "+path] = op.(map[string]any)
		}
	}
	return out
}

// concrete fills a path template's parameters with "1".
func concrete(path string) string { return pathParamRE.ReplaceAllString(path, "1") }

// TestOpenAPIMatchesRouter: every route the router serves is in the
// document with its role, mode and path parameters, and every operation
// of the document is a route the router serves; with the compute
// endpoints disabled they leave the document too.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	for _, disabled := range []bool{false, true} {
		srv, _ := newTestAPI(t, seededFake(), func(c *Config) { c.Compute.Disabled = disabled })
		s := srv.Config.Handler.(*server)
		ops := specOps(t, fetchSpec(t, srv))
		table := s.routes(nil)
		if len(ops) != len(table) {
			t.Errorf("compute disabled %v: document has %d operations, router %d", disabled, len(ops), len(table))
		}
		for _, rt := range table {
			op, ok := ops[rt.pattern]
			if !ok {
				t.Errorf("route %s missing from the document", rt.pattern)
				continue
			}
			if op[ExtRole] != roleName(rt.role) {
				t.Errorf("%s: %s %v, router enforces %s", rt.pattern, ExtRole, op[ExtRole], roleName(rt.role))
			}
			if op[ExtMode] != rt.mode.String() {
				t.Errorf("%s: %s %v, router %s", rt.pattern, ExtMode, op[ExtMode], rt.mode)
			}
			sec, _ := op["security"].([]any)
			if (rt.role == 0) != (len(sec) == 0) {
				t.Errorf("%s: security %v for role %s", rt.pattern, sec, roleName(rt.role))
			}
		}
		for key, op := range ops {
			method, path, _ := strings.Cut(key, " ")
			_, pattern := s.mux.Handler(httptest.NewRequest(method, concrete(path), nil))
			if pattern != key {
				t.Errorf("document lists %s; the router serves %s %s as %q", key, method, concrete(path), pattern)
			}
			want := map[string]bool{}
			for _, m := range pathParamRE.FindAllStringSubmatch(path, -1) {
				want[m[1]] = true
			}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm := p.(map[string]any)
				if pm["in"] == "path" {
					if !want[pm["name"].(string)] || pm["required"] != true {
						t.Errorf("%s: path parameter %v", key, pm)
					}
					delete(want, pm["name"].(string))
				}
			}
			if len(want) > 0 {
				t.Errorf("%s: path parameters %v not described", key, want)
			}
			resps, _ := op["responses"].(map[string]any)
			if len(resps) < 2 {
				t.Errorf("%s: responses %v: want a success and its errors", key, resps)
			}
			if op[ExtRole] != "public" {
				for _, c := range []string{"401", "403", "429"} {
					if _, ok := resps[c]; !ok {
						t.Errorf("%s: no %s response", key, c)
					}
				}
			}
		}
	}
	// Every documented pattern is a route (no stale documentation).
	srv, _ := newTestAPI(t, seededFake(), nil)
	table := map[string]bool{}
	for _, rt := range srv.Config.Handler.(*server).routes(nil) {
		table[rt.pattern] = true
	}
	for p := range opDocs {
		if !table[p] {
			t.Errorf("opDocs documents %s, which is not a route", p)
		}
	}
}

// TestOpenAPIRolesEnforced: for every operation, a key below its
// documented x-mfn-role is refused with 403 and a key of that role is
// let through (neither 401 nor 403); public operations need no key.
func TestOpenAPIRolesEnforced(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	keys := map[Role]string{RoleReader: keyReader, RoleAuditor: keyAuditor, RoleOperator: keyOperator, RoleAdmin: keyAdmin}
	for key, op := range specOps(t, fetchSpec(t, srv)) {
		method, path, _ := strings.Cut(key, " ")
		path = concrete(path)
		name := op[ExtRole].(string)
		if name == "public" {
			if resp := request(t, srv, method, path, "", ""); resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				t.Errorf("%s documented public, got %d without a key", key, resp.StatusCode)
			}
			continue
		}
		want, err := ParseRole(name)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		for r := RoleReader; r <= RoleAdmin; r++ {
			resp := request(t, srv, method, path, keys[r], "")
			switch {
			case r < want && resp.StatusCode != http.StatusForbidden:
				t.Errorf("%s documented %s: role %s got %d, want 403", key, want, r, resp.StatusCode)
			case r == want && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
				t.Errorf("%s documented %s: role %s refused with %d", key, want, r, resp.StatusCode)
			}
		}
	}
}

// validatorScript validates an OpenAPI 3.1 document from stdin with the
// openapi-spec-validator Python package; exit 3 when it is missing.
const validatorScript = `
import json, sys
try:
    from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator
except ImportError:
    sys.exit(3)
errs = list(OpenAPIV31SpecValidator(json.load(sys.stdin)).iter_errors())
for e in errs[:20]:
    print("/".join(str(p) for p in e.path), e.message[:300])
sys.exit(1 if errs else 0)
`

// TestOpenAPIExternalValidator checks the document with an independent
// OpenAPI 3.1 validator (openapi-spec-validator) when python3 has it;
// otherwise it is skipped.
func TestOpenAPIExternalValidator(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	srv, _ := newTestAPI(t, seededFake(), nil)
	doc := srv.Config.Handler.(*server).openapi
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", validatorScript)
	cmd.Stdin = bytes.NewReader(doc)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		t.Skip("openapi-spec-validator not installed")
	}
	if err != nil {
		t.Fatalf("openapi-spec-validator: %v\n%s", err, out)
	}
}
