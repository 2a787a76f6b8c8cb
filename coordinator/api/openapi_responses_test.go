package api

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// checkSchema reports where v (decoded JSON) breaks schema s of doc. It
// knows the keywords the generated document uses: $ref, anyOf, type,
// properties (an object may carry no other key unless
// additionalProperties is given), required, additionalProperties, items,
// enum.
func checkSchema(doc map[string]any, s map[string]any, v any, at string) []string {
	if ref, ok := s["$ref"].(string); ok {
		target, ok := resolve(doc, ref)
		if !ok {
			return []string{at + ": unresolved " + ref}
		}
		return checkSchema(doc, target.(map[string]any), v, at)
	}
	if alts, ok := s["anyOf"].([]any); ok {
		var all []string
		for _, a := range alts {
			errs := checkSchema(doc, a.(map[string]any), v, at)
			if len(errs) == 0 {
				return nil
			}
			all = append(all, errs...)
		}
		return []string{at + ": no anyOf branch matches: " + strings.Join(all, "; ")}
	}
	if t, ok := s["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, x.(string))
			}
		}
		if !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
			return []string{fmt.Sprintf("%s: %s, schema wants %v", at, jsonType(v), types)}
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		return []string{fmt.Sprintf("%s: %v not in enum %v", at, v, enum)}
	}
	var errs []string
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		extra, hasExtra := s["additionalProperties"].(map[string]any)
		for k, x := range v {
			if ps, ok := props[k]; ok {
				errs = append(errs, checkSchema(doc, ps.(map[string]any), x, at+"."+k)...)
			} else if hasExtra {
				errs = append(errs, checkSchema(doc, extra, x, at+"."+k)...)
			} else {
				errs = append(errs, at+": property "+k+" not in the schema")
			}
		}
		req, _ := s["required"].([]any)
		for _, r := range req {
			if _, ok := v[r.(string)]; !ok {
				errs = append(errs, at+": required "+r.(string)+" missing")
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range v {
				errs = append(errs, checkSchema(doc, items, x, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return errs
}

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		if v == math.Trunc(v) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

// TestOpenAPIResponsesMatch sends real requests, successes and errors,
// and checks each answer against the document: its status is one the
// operation lists, and its JSON body fits the schema given for that
// status (no undocumented field, every required one present, types
// right).
func TestOpenAPIResponsesMatch(t *testing.T) {
	t.Parallel()
	f := seededFake()
	f.log, _ = sampleLog(t, 10, 4)
	srv, _ := newTestAPI(t, listingFake{f}, nil)
	s := srv.Config.Handler.(*server)
	doc := fetchSpec(t, srv)
	ops := specOps(t, doc)
	cases := []struct {
		method, path, key, body string
		status                  int
	}{
		{"GET", "/healthz", "", "", 200},
		{"GET", "/readyz", "", "", 200},
		{"GET", "/v1/cluster", keyReader, "", 200},
		{"GET", "/v1/nodes", keyReader, "", 200},
		{"POST", "/v1/nodes", keyOperator, `{"id":"n9","public_key":"` + testPubKey + `"}`, 201},
		{"GET", "/v1/nodes/n9", keyReader, "", 200},
		{"GET", "/v1/nodes/nope", keyReader, "", 404},
		{"GET", "/v1/jobs", keyReader, "", 200},
		{"GET", "/v1/jobs/j1", keyReader, "", 200},
		{"GET", "/v1/jobs/j1/rounds", keyReader, "", 200},
		{"GET", "/v1/jobs/j1/rounds?limit=1", keyReader, "", 200},
		{"GET", "/v1/jobs/j1/rounds?limit=x", keyReader, "", 400},
		{"GET", "/v1/jobs/j1/rounds/1", keyReader, "", 200},
		{"GET", "/v1/jobs/j1/metrics", keyReader, "", 200},
		{"GET", "/v1/jobs/j1/metrics?limit=0", keyReader, "", 400},
		{"GET", "/v1/jobs/nope/metrics", keyReader, "", 404},
		{"GET", "/v1/jobs/j1/models/1", keyReader, "", 200},
		{"GET", "/v1/jobs/j1/models/latest", keyReader, "", 200},
		{"GET", "/v1/audit/checkpoint?format=json", keyAuditor, "", 200},
		{"GET", "/v1/audit/checkpoints", keyAuditor, "", 200},
		{"GET", "/v1/audit/bundles/0", keyAuditor, "", 200},
		{"GET", "/v1/audit/consistency?from=4&to=10", keyAuditor, "", 200},
		{"GET", "/v1/audit/consistency?from=1&to=99", keyAuditor, "", 404},
		{"GET", "/v1/audit/bundles/99", keyAuditor, "", 404},
		{"GET", "/v1/audit/leaves", keyAuditor, "", 200},
		{"GET", "/v1/audit/leaves", keyReader, "", 403},
		{"GET", "/v1/jobs", "", "", 401},
		{"POST", "/v1/nernst", keyReader, `{"z":1,"c_out":0.005,"c_in":0.14}`, 200},
		{"POST", "/v1/nernst", keyReader, `{"z":1,"c_out":1e308,"c_in":1e-308}`, 422},
		{"POST", "/v1/simulate", keyReader, `{"grid_size":8,"steps":2,"seed":1}`, 200},
		{"POST", "/v1/simulate", keyReader, `{"grid_size":8,"bogus":1}`, 400},
		{"POST", "/v1/jobs", keyOperator, `{"id":"j1","task":"mfn-regime","dim":3,"rule":{"name":"krum","f":1},"rounds":2,"min_updates":1,"max_updates":3,"round_deadline":"30s"}`, 409},
		{"POST", "/v1/jobs", keyOperator, `{"id":"j2","task":"mfn-regime","dim":3,"rule":{"name":"krum","f":1},"rounds":2,"min_updates":1,"max_updates":3,"round_deadline":"30s"}`, 201},
		{"POST", "/v1/jobs/j2/stop", keyOperator, `{"reason":"done"}`, 200},
		{"POST", "/v1/nodes/n9/revoke", keyOperator, "", 200},
		{"GET", "/v1/events", keyReader, "", 426},
	}
	for _, c := range cases {
		resp := request(t, srv, c.method, c.path, c.key, c.body)
		raw, _ := io.ReadAll(resp.Body)
		name := c.method + " " + c.path
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d (%s)", name, resp.StatusCode, c.status, raw)
			continue
		}
		_, pattern := s.mux.Handler(httptest.NewRequest(c.method, c.path, nil))
		op, ok := ops[pattern]
		if !ok {
			t.Errorf("%s: operation %q not in the document", name, pattern)
			continue
		}
		r, ok := op["responses"].(map[string]any)[fmt.Sprint(c.status)]
		if !ok {
			t.Errorf("%s: status %d not documented for %s", name, c.status, pattern)
			continue
		}
		content, _ := r.(map[string]any)["content"].(map[string]any)
		media, ok := content["application/json"].(map[string]any)
		if !ok {
			t.Errorf("%s: status %d has no JSON schema", name, c.status)
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Errorf("%s: body is not JSON: %v", name, err)
			continue
		}
		for _, e := range checkSchema(doc, media["schema"].(map[string]any), v, "body") {
			t.Errorf("%s (%d): %s", name, c.status, e)
		}
	}
	if t.Failed() {
		return
	}
	// The checker can fail: a body with a field the schema lacks, or
	// without a required one, is reported.
	job, _ := resolve(doc, "#/components/schemas/coordinator.Job")
	if errs := checkSchema(doc, job.(map[string]any), map[string]any{"state": "running", "extra": 1}, "job"); len(errs) < 2 {
		t.Errorf("checker missed an unknown field and missing required ones: %v", errs)
	}
}

// TestOpenAPIEmptyLogErrors: a member without a checkpoint answers the
// audit reads with 404, which the document lists.
func TestOpenAPIEmptyLogErrors(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	s := srv.Config.Handler.(*server)
	ops := specOps(t, fetchSpec(t, srv))
	for _, p := range []string{"/v1/audit/checkpoint", "/v1/audit/checkpoints", "/v1/audit/bundles/0"} {
		resp := request(t, srv, "GET", p, keyAuditor, "")
		_, pattern := s.mux.Handler(httptest.NewRequest("GET", p, nil))
		if _, ok := ops[pattern]["responses"].(map[string]any)[fmt.Sprint(resp.StatusCode)]; !ok {
			t.Errorf("GET %s: status %d not documented", p, resp.StatusCode)
		}
	}
}
