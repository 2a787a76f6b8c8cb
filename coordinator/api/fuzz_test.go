package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mfn/mfn/coordinator"
)

// FuzzDecodeStrict: the strict decoder never panics on any request type,
// and what it accepts re-encodes to something it accepts again.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		`{"id":"j1","task":"mfn-regime","dim":3,"rule":{"name":"krum","f":1},"rounds":2,"min_updates":1,"max_updates":3,"round_deadline":"30s"}`,
		`{"id":"n1","public_key":"` + testPubKey + `"}`,
		`{"id":"c2","raft_addr":"127.0.0.1:7000","public_key":"` + testPubKey + `"}`,
		`{"grid_size":16,"steps":4,"boundary":"neumann"}`,
		`{"z":1,"c_out":0.005,"c_in":0.14}`,
		`{"reason":"x"}`, `{} {}`, `[`, `{"dim":1e400}`, `{"initial_model":"AAAAAAAA8D8="}`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		targets := []func() any{
			func() any { return new(coordinator.JobSpec) },
			func() any { return new(EnrollRequest) },
			func() any { return new(JoinRequest) },
			func() any { return new(SimulateRequest) },
			func() any { return new(NernstRequest) },
			func() any { return new(StopRequest) },
		}
		for _, mk := range targets {
			v := mk()
			if err := decodeStrict(data, v); err != nil {
				if err.Error() == "" {
					t.Fatal("empty error message")
				}
				continue
			}
			again, err := json.Marshal(v)
			if err != nil {
				// A decoded value may hold what cannot be encoded (a
				// public key of the wrong size never decodes, so this
				// would be a bug).
				t.Fatalf("%T decoded from %q does not re-encode: %v", v, data, err)
			}
			if err := decodeStrict(again, mk()); err != nil {
				t.Fatalf("%T: re-encoded %s rejected: %v", v, again, err)
			}
		}
	})
}

// FuzzKeyFile: key files and lists never panic the parser, and an
// accepted store answers lookups.
func FuzzKeyFile(f *testing.F) {
	for _, s := range []string{
		`[{"name":"ops","role":"operator","key":"` + keyOperator + `"}]`,
		`{"keys":[{"role":"reader","key_sha256":"` + sha256Hex(keyReader) + `"}]}`,
		"[[keys]]\nrole = \"admin\"\nkey = \"" + keyAdmin + "\"\n",
		"admin:" + keyAdmin + ",reader:" + keyReader, "[", "{", "[[", "reader:",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if ks, err := ParseKeyFile(data); err == nil {
			ks.Lookup(string(data))
			if ks.Len() == 0 {
				t.Fatal("accepted a key file without keys")
			}
		}
		if ks, err := ParseKeyList(string(data)); err == nil {
			ks.Lookup(keyAdmin)
		}
	})
}

// FuzzHandlerBodies posts arbitrary bodies to every route that takes one:
// the answer is never a 5xx, and every error has the one shape.
func FuzzHandlerBodies(f *testing.F) {
	f.Add(0, []byte(`{"id":"j9","dim":2}`))
	f.Add(1, []byte(`{"id":"n1","public_key":"`+testPubKey+`"}`))
	f.Add(2, []byte(`{"grid_size":8,"steps":2}`))
	f.Add(3, []byte(`{"z":-2,"c_out":1e-9,"c_in":2}`))
	f.Add(4, []byte(`{"reason":"r"}`))
	f.Add(5, []byte(`{"id":"c9","raft_addr":"x","public_key":"`+testPubKey+`"}`))
	paths := []string{"/v1/jobs", "/v1/nodes", "/v1/simulate", "/v1/nernst", "/v1/jobs/j1/stop", "/v1/cluster/join"}
	fake := seededFake()
	h, err := New(Config{Coordinator: fake, Keys: testKeys(f), RateLimit: RateLimit{Rate: -1},
		Compute: Compute{MaxCellSteps: 8 * 8 * 4}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, route int, body []byte) {
		if route < 0 {
			route = -route
		}
		path := paths[route%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(HeaderAPIKey, keyAdmin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q: status %d: %s", path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var eb ErrorBody
			if err := decodeStrict(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.RequestID == "" {
				t.Fatalf("POST %s: error body %s not in the error shape (%v)", path, rec.Body, err)
			}
		}
	})
}
