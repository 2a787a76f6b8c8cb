package api

import (
	"encoding"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mfn/mfn/audit"
	"github.com/mfn/mfn/coordinator"
)

// OpenAPIVersion is the OpenAPI version of the document GET /openapi.json
// serves.
const OpenAPIVersion = "3.1.0"

// APIVersion is the version of the operator API the document describes
// (info.version); it changes when a route or body changes incompatibly.
const APIVersion = "1"

// Extensions of the OpenAPI document.
const (
	// ExtRole is the weakest role whose key may call an operation
	// ("public": no key needed).
	ExtRole = "x-mfn-role"
	// ExtMode is where the request is served: local, current or leader
	// (see the package documentation).
	ExtMode = "x-mfn-mode"
	// ExtRateClass is the rate limit class of an operation (none for the
	// public routes).
	ExtRateClass = "x-mfn-rate-class"
)

// errorCodes lists the Code* constants for the document's enum.
var errorCodes = []string{
	CodeBadRequest, CodeInvalid, CodeUnauthorized, CodeForbidden, CodeNotFound,
	CodeMethodNotAllowed, CodeRequestTimeout, CodeConflict, CodeGone, CodeTooLarge,
	CodeUpgradeRequired, CodeUnsupportedMedia, CodeRateLimited, CodeInternal,
	CodeLeaderUnreachable, CodeNotLeader, CodeUnavailable, CodeTimeout,
}

// param documents one query or path parameter.
type param struct {
	name, typ, desc string
}

// opDoc documents one route of the table for the OpenAPI document.
type opDoc struct {
	summary string
	// path describes path parameters whose meaning is not obvious from
	// the name; every {name} of the pattern is listed in the document
	// (as a string unless given here).
	path  []param
	query []param
	// request is a value of the request body's type; nil means no body.
	// optionalBody marks a body that may be omitted.
	request      any
	optionalBody bool
	// status is the success status; zero means 200.
	status int
	// response is a value of the JSON response body's type; nil means
	// no JSON body (see raw).
	response any
	// raw is the media type of a non-JSON response body (empty: none).
	raw string
	// errs are the route's own error statuses, beside the ones every
	// keyed route, body or leader route has.
	errs []int
}

var (
	uintParam = func(name, desc string) param { return param{name, "integer", desc} }
	strParam  = func(name, desc string) param { return param{name, "string", desc} }
)

// opDocs documents every route of the table, by pattern. TestOpenAPI*
// check that it covers the table exactly.
var opDocs = map[string]opDoc{
	"GET /healthz":      {summary: "Liveness: the process is up.", response: Health{}},
	"GET /readyz":       {summary: "Readiness: a member of a cluster with a known leader (503 otherwise).", response: Readiness{}, errs: []int{503}},
	"GET /metrics":      {summary: "Prometheus metrics, text exposition format.", raw: "text/plain"},
	"GET /openapi.json": {summary: "This document.", raw: "application/json"},

	"GET /v1/cluster":                  {summary: "Cluster status: members, leader, Raft state.", response: coordinator.Status{}},
	"POST /v1/cluster/join":            {summary: "Add a coordinator member (mfn coordinator --join).", request: JoinRequest{}, response: coordinator.Status{}, errs: []int{409}},
	"DELETE /v1/cluster/members/{id}":  {summary: "Remove a coordinator member.", status: 204, errs: []int{404}},
	"GET /v1/nodes":                    {summary: "Enrolled edge nodes.", response: NodeList{}},
	"GET /v1/nodes/{id}":               {summary: "One enrolled node.", response: Node{}, errs: []int{404}},
	"POST /v1/nodes":                   {summary: "Enroll an edge node with its Ed25519 key.", request: EnrollRequest{}, status: 201, response: Node{}, errs: []int{409}},
	"DELETE /v1/nodes/{id}":            {summary: "Revoke a node.", response: Node{}, errs: []int{404}},
	"POST /v1/nodes/{id}/revoke":       {summary: "Revoke a node.", response: Node{}, errs: []int{404}},
	"GET /v1/jobs":                     {summary: "All jobs.", response: JobList{}},
	"POST /v1/jobs":                    {summary: "Create a job.", request: coordinator.JobSpec{}, status: 201, response: coordinator.Job{}, errs: []int{409}},
	"GET /v1/jobs/{id}":                {summary: "One job.", response: coordinator.Job{}, errs: []int{404}},
	"POST /v1/jobs/{id}/stop":          {summary: "Stop a job.", request: StopRequest{}, optionalBody: true, response: coordinator.Job{}, errs: []int{404, 409}},
	"POST /v1/jobs/{id}/archive":       {summary: "Stop a job and free its models.", request: StopRequest{}, optionalBody: true, response: coordinator.Job{}, errs: []int{404, 409}},
	"DELETE /v1/jobs/{id}":             {summary: "Remove a job (its id is not reusable).", status: 204, errs: []int{404, 409}},
	"GET /v1/jobs/{id}/rounds":         {summary: "One page of a job's rounds, in increasing number.", query: []param{uintParam("after", "return rounds numbered above this (next_after of the previous page)"), uintParam("limit", fmt.Sprintf("page size, 1 to %d (default %d)", MaxRoundsPage, DefaultRoundsPage))}, response: RoundList{}, errs: []int{404}},
	"GET /v1/jobs/{id}/rounds/{round}": {summary: "One round: every update with used, reason and score.", path: []param{uintParam("round", "round number")}, response: coordinator.Round{}, errs: []int{404}},
	"GET /v1/jobs/{id}/metrics": {summary: "One page of a job's training curve: per round, updates used and rejected, the nodes' signed train loss and held-out accuracy (sample-weighted), the evaluation accuracy and loss.",
		query: []param{uintParam("after", "return rounds numbered above this (next_after of the previous page)"), uintParam("limit", fmt.Sprintf("page size, 1 to %d (default %d)", MaxMetricsPage, DefaultMetricsPage))}, response: JobMetrics{}, errs: []int{404}},
	"GET /v1/jobs/{id}/models/{version}": {summary: "A model version's metadata.", path: []param{strParam("version", `a version number or "latest"`)},
		response: ModelInfo{}, errs: []int{404}},
	"GET /v1/jobs/{id}/models/{version}/params": {summary: "A model's parameters (X-MFN-Model-Hash: its hash in hex).", path: []param{strParam("version", `a version number or "latest"`)},
		query: []param{strParam("format", "float64 (default: raw little-endian float64 values) or update (crypto's update encoding)")},
		raw:   "application/octet-stream", errs: []int{404, 410}},

	"GET /v1/audit/checkpoint":     {summary: "Newest signed checkpoint: the note as text/plain, or JSON with format=json.", query: []param{strParam("format", "note (default) or json")}, response: Checkpoint{}, raw: "text/plain", errs: []int{404}},
	"GET /v1/audit/checkpoints":    {summary: "Every signed checkpoint, oldest first.", response: CheckpointList{}, errs: []int{404}},
	"GET /v1/audit/bundles/{leaf}": {summary: "Proof bundle of one leaf (mfn audit verify --bundle).", path: []param{uintParam("leaf", "leaf index")}, response: audit.Bundle{}, errs: []int{404}},
	"GET /v1/audit/consistency":    {summary: "RFC 6962 consistency proof between two tree sizes.", query: []param{uintParam("from", "older tree size"), uintParam("to", "newer tree size")}, response: ConsistencyProof{}, errs: []int{404}},
	"GET /v1/audit/leaves":         {summary: fmt.Sprintf("Encoded leaves [start, end), at most %d.", MaxLeavesPage), query: []param{uintParam("start", "first leaf index (default 0)"), uintParam("end", "one past the last leaf (default: the log's size)")}, response: LeafPage{}},
	"GET /v1/audit/leaves/{index}": {summary: "One encoded leaf.", path: []param{uintParam("index", "leaf index")}, raw: "application/octet-stream", errs: []int{404}},
	"GET /v1/events":               {summary: "WebSocket stream of coordinator.Event JSON messages (101 Switching Protocols).", query: []param{strParam("kind", "comma-separated event kinds to keep"), strParam("job", "keep only this job's events")}, status: 101, response: coordinator.Event{}, errs: []int{403, 426, 503}},
	"POST /v1/simulate":            {summary: "Run one MFN field simulation.", request: SimulateRequest{}, response: SimulateResponse{}, errs: []int{503}},
	"POST /v1/nernst":              {summary: "Nernst equilibrium potential.", request: NernstRequest{}, response: NernstResponse{}, errs: []int{422}},
}

// roleName is the x-mfn-role value of a role (0: public).
func roleName(r Role) string {
	if r == 0 {
		return "public"
	}
	return r.String()
}

func (m mode) String() string {
	switch m {
	case current:
		return "current"
	case write:
		return "leader"
	}
	return "local"
}

var pathParamRE = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)

// buildOpenAPI returns the OpenAPI document of the route table, or an
// error naming a route without documentation or a type the schema
// generator cannot describe.
func buildOpenAPI(rs []route, class func(route) string) ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}, names: map[reflect.Type]string{}, requests: map[reflect.Type]bool{}}
	for _, d := range opDocs {
		if d.request != nil {
			markRequestTypes(reflect.TypeOf(d.request), g.requests)
		}
	}
	errRef := g.schema(reflect.TypeFor[ErrorBody]())
	codes := make([]any, len(errorCodes))
	for i, c := range errorCodes {
		codes[i] = c
	}
	g.defs["ErrorDetail"].(map[string]any)["properties"].(map[string]any)["code"] = map[string]any{"type": "string", "enum": codes}
	paths := map[string]map[string]any{}
	for _, rt := range rs {
		doc, ok := opDocs[rt.pattern]
		if !ok {
			return nil, fmt.Errorf("api: openapi: route %s is not documented (opDocs)", rt.pattern)
		}
		method, path, _ := strings.Cut(rt.pattern, " ")
		op := map[string]any{
			"operationId": operationID(rt.pattern),
			"summary":     doc.summary,
			ExtRole:       roleName(rt.role),
			ExtMode:       rt.mode.String(),
		}
		if rt.role == 0 {
			op["security"] = []any{}
		} else {
			op["security"] = []any{map[string]any{"apiKey": []any{}}}
			op[ExtRateClass] = class(rt)
		}
		var params []any
		for _, m := range pathParamRE.FindAllStringSubmatch(path, -1) {
			p := param{m[1], "string", ""}
			for _, d := range doc.path {
				if d.name == m[1] {
					p = d
				}
			}
			params = append(params, paramObj(p, "path"))
		}
		for _, q := range doc.query {
			params = append(params, paramObj(q, "query"))
		}
		if params != nil {
			op["parameters"] = params
		}
		if doc.request != nil {
			op["requestBody"] = map[string]any{
				"required":    !doc.optionalBody,
				"description": "application/json, decoded strictly: no unknown fields, no duplicate keys, at most the body limit.",
				"content":     map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(doc.request))}},
			}
		}
		status := doc.status
		if status == 0 {
			status = http.StatusOK
		}
		ok200 := map[string]any{"description": http.StatusText(status)}
		content := map[string]any{}
		if doc.response != nil {
			content["application/json"] = map[string]any{"schema": g.schema(reflect.TypeOf(doc.response))}
		}
		if doc.raw != "" {
			if _, dup := content[doc.raw]; !dup {
				content[doc.raw] = map[string]any{"schema": map[string]any{"type": "string"}}
			}
		}
		if len(content) > 0 {
			ok200["content"] = content
		}
		responses := map[string]any{fmt.Sprint(status): ok200}
		for _, code := range errorStatuses(rt, doc) {
			responses[fmt.Sprint(code)] = map[string]any{
				"description": http.StatusText(code),
				"content":     map[string]any{"application/json": map[string]any{"schema": errRef}},
			}
		}
		op["responses"] = responses
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = op
	}
	if len(g.errs) > 0 {
		return nil, fmt.Errorf("api: openapi: %s", strings.Join(g.errs, "; "))
	}
	doc := map[string]any{
		"openapi": OpenAPIVersion,
		"info": map[string]any{
			"title":       "MFN coordinator operator API",
			"version":     APIVersion,
			"description": "Operator API of an MFN coordinator member. x-mfn-role is the weakest role whose key may call an operation (reader < auditor < operator < admin; public: no key); x-mfn-mode where it is served; x-mfn-rate-class its rate limit class. Every error has the ErrorBody shape.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": g.defs,
			"securitySchemes": map[string]any{
				"apiKey": map[string]any{"type": "apiKey", "in": "header", "name": HeaderAPIKey},
			},
		},
		"security": []any{map[string]any{"apiKey": []any{}}},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// errorStatuses are the error statuses of a route: its own, plus 401,
// 403 and 429 for keyed routes, the body errors for routes with a body,
// and the leader errors for routes served by the leader.
func errorStatuses(rt route, doc opDoc) []int {
	codes := slices.Clone(doc.errs)
	if rt.role != 0 {
		codes = append(codes, 401, 403, 429)
	}
	if doc.request != nil {
		codes = append(codes, 400, 408, 413, 415)
	}
	if len(doc.query) > 0 || strings.Contains(rt.pattern, "{") {
		codes = append(codes, 400)
	}
	if rt.mode != local {
		codes = append(codes, 502, 503, 504)
	}
	codes = append(codes, 500)
	slices.Sort(codes)
	return slices.Compact(codes)
}

func paramObj(p param, in string) map[string]any {
	o := map[string]any{"name": p.name, "in": in, "required": in == "path", "schema": map[string]any{"type": p.typ}}
	if p.typ == "integer" {
		o["schema"] = map[string]any{"type": "integer", "minimum": 0}
	}
	if p.desc != "" {
		o["description"] = p.desc
	}
	return o
}

// operationID turns "GET /v1/jobs/{id}/rounds" into "get_v1_jobs_id_rounds".
func operationID(pattern string) string {
	var b strings.Builder
	last := byte('_')
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		default:
			c = '_'
		}
		if c == '_' && last == '_' {
			continue
		}
		b.WriteByte(c)
		last = c
	}
	return strings.TrimSuffix(b.String(), "_")
}

// schemaGen derives JSON Schemas (2020-12, as OpenAPI 3.1 uses) from Go
// types the way encoding/json encodes them; named structs become
// components.
type schemaGen struct {
	defs  map[string]any
	names map[reflect.Type]string
	errs  []string
	// requests are the struct types found in request bodies: their
	// schemas list no required fields (the server answers 400 naming a
	// missing one, and omitted fields often take defaults). Every other
	// struct requires the fields encoding/json always writes.
	requests map[reflect.Type]bool
}

// markRequestTypes adds t and the struct types within it to seen.
func markRequestTypes(t reflect.Type, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	for i := 0; i < t.NumField(); i++ {
		markRequestTypes(t.Field(i).Type, seen)
	}
}

// nullable allows null besides what s allows (a nil pointer, slice or
// map encodes as null).
func nullable(s map[string]any) map[string]any {
	if t, ok := s["type"].(string); ok {
		out := make(map[string]any, len(s))
		for k, v := range s {
			out[k] = v
		}
		out["type"] = []any{t, "null"}
		return out
	}
	if len(s) == 0 {
		return s
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

var (
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
)

// special are the types whose JSON form is not their Go structure.
var special = map[reflect.Type]map[string]any{
	reflect.TypeFor[time.Time]():            {"type": "string", "format": "date-time"},
	reflect.TypeFor[coordinator.Duration](): {"type": "string", "description": `a Go duration such as "30s" or "1m30s"`},
	reflect.TypeFor[coordinator.Params]():   {"type": "string", "contentEncoding": "base64", "description": "little-endian IEEE-754 float64 values"},
	reflect.TypeFor[coordinator.Hash]():     {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256, hex"},
	reflect.TypeFor[PublicKey]():            {"type": "string", "description": `Ed25519 public key, "mfn-ed25519:<base64>" (the bare base64 of the 32 bytes is accepted too)`},
	reflect.TypeFor[Role]():                 {"type": "string", "enum": []any{"reader", "auditor", "operator", "admin"}},
}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	if s, ok := special[t]; ok {
		return s
	}
	if t.Kind() == reflect.Pointer {
		return nullable(g.schema(t.Elem()))
	}
	if t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler) {
		return map[string]any{"type": "string"}
	}
	if t.Implements(jsonMarshaler) {
		g.errs = append(g.errs, fmt.Sprintf("type %s has its own JSON encoding; add it to special", t))
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": []any{"string", "null"}, "contentEncoding": "base64"}
		}
		return map[string]any{"type": []any{"array", "null"}, "items": g.schema(t.Elem())}
	case reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem()), "minItems": t.Len(), "maxItems": t.Len()}
	case reflect.Map:
		return map[string]any{"type": []any{"object", "null"}, "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		return g.structRef(t)
	}
	g.errs = append(g.errs, fmt.Sprintf("type %s (kind %s) has no JSON schema", t, t.Kind()))
	return map[string]any{}
}

// structRef defines a named struct once in components and refers to it.
func (g *schemaGen) structRef(t reflect.Type) map[string]any {
	if t.Name() == "" {
		return g.structSchema(t)
	}
	name, ok := g.names[t]
	if !ok {
		name = t.Name()
		if t.PkgPath() != reflect.TypeFor[server]().PkgPath() {
			name = t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:] + "." + t.Name()
		}
		g.names[t] = name
		g.defs[name] = map[string]any{} // placeholder against recursion
		g.defs[name] = g.structSchema(t)
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, props, &required)
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 && !g.requests[t] {
		slices.Sort(required)
		out["required"] = required
	}
	return out
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, props, required)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := g.schema(f.Type)
		if strings.Contains(","+opts+",", ",string,") {
			s = map[string]any{"type": "string"}
		}
		props[name] = s
		if !strings.Contains(","+opts+",", ",omitempty,") && !strings.Contains(","+opts+",", ",omitzero,") {
			*required = append(*required, name)
		}
	}
}

// openapiDoc serves the document built by New.
func (s *server) openapiDoc(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.openapi)
	return nil
}
