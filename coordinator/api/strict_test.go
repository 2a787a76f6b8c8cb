package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestDuplicateKeysRefused: every route that takes a body answers 400
// naming the repeated key, before the body reaches the cluster.
func TestDuplicateKeysRefused(t *testing.T) {
	t.Parallel()
	f := seededFake()
	srv, _ := newTestAPI(t, f, nil)
	for _, c := range []struct {
		method, path, key, body, name string
	}{
		{"POST", "/v1/jobs", keyOperator, `{"id":"jd","dim":2,"dim":3}`, `"dim" at dim`},
		{"POST", "/v1/jobs", keyOperator, `{"id":"jd","dim":2,"rule":{"name":"krum","f":1,"F":2}}`, `"F" at rule.F (the same field as "f")`},
		{"POST", "/v1/nodes", keyOperator, `{"id":"n8","id":"n9","public_key":"` + testPubKey + `"}`, `"id" at id`},
		{"POST", "/v1/nernst", keyReader, `{"z":1,"c_out":0.005,"c_in":0.14,"z":2}`, `"z" at z`},
		{"POST", "/v1/simulate", keyReader, `{"grid_size":8,"steps":2,"steps":4}`, `"steps"`},
		{"POST", "/v1/cluster/join", keyAdmin, `{"id":"c9","raft_addr":"127.0.0.1:1","raft_addr":"127.0.0.1:2","public_key":"` + testPubKey + `"}`, `"raft_addr"`},
		{"POST", "/v1/jobs/j1/stop", keyOperator, `{"reason":"a","reason":"b"}`, `"reason"`},
		{"POST", "/v1/jobs", keyOperator, strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40), "nested too deeply"},
	} {
		resp := request(t, srv, c.method, c.path, c.key, c.body)
		e := wantError(t, resp, http.StatusBadRequest, CodeBadRequest)
		if !strings.Contains(e.Message, c.name) {
			t.Errorf("%s %s: message %q does not name %s", c.method, c.path, e.Message, c.name)
		}
	}
	if n := len(f.ListJobs()); n != 1 {
		t.Errorf("%d jobs after refused creations, want the seeded 1", n)
	}
	if n := len(f.ListNodes()); n != 0 {
		t.Errorf("%d nodes after a refused enrolment", n)
	}
}

// TestNernstOverflow: finite concentrations whose ratio overflows are a
// 422 naming the field, in the error shape with the request id (not a
// 500 from encoding an infinite potential).
func TestNernstOverflow(t *testing.T) {
	t.Parallel()
	srv, _ := newTestAPI(t, seededFake(), nil)
	for _, c := range []struct{ body, field string }{
		{`{"z":1,"c_out":1e308,"c_in":1e-300}`, "c_out"},
		{`{"z":-2,"c_out":1.7e308,"c_in":0.0005,"temperature":300}`, "c_out"},
	} {
		resp := request(t, srv, "POST", "/v1/nernst", keyReader, c.body)
		e := wantError(t, resp, http.StatusUnprocessableEntity, CodeInvalid)
		if !strings.HasPrefix(e.Message, c.field+":") {
			t.Errorf("%s: message %q does not start with the field %s", c.body, e.Message, c.field)
		}
	}
}
