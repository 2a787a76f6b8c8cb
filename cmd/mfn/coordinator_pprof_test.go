package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mfn/mfn/coordinator/api"
)

func TestWithPprof(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	keys, err := api.ParseKeyList("admin:adm-secret-0123456789,reader:rdr-secret-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	get := func(h http.Handler, path, remote, key string) int {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = remote
		if key != "" {
			r.Header.Set("X-API-Key", key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	withKeys, open := withPprof(next, keys), withPprof(next, nil)
	for _, c := range []struct {
		name         string
		h            http.Handler
		path, remote string
		key          string
		want         int
	}{
		{"other routes pass through", withKeys, "/v1/jobs", "192.0.2.1:5", "", http.StatusTeapot},
		{"admin key", withKeys, "/debug/pprof/cmdline", "192.0.2.1:5", "adm-secret-0123456789", http.StatusOK},
		{"no key", withKeys, "/debug/pprof/cmdline", "127.0.0.1:5", "", http.StatusUnauthorized},
		{"bad key", withKeys, "/debug/pprof/", "127.0.0.1:5", "nope", http.StatusUnauthorized},
		{"reader key", withKeys, "/debug/pprof/cmdline", "127.0.0.1:5", "rdr-secret-0123456789", http.StatusForbidden},
		{"no keys, loopback v4", open, "/debug/pprof/cmdline", "127.0.0.1:5", "", http.StatusOK},
		{"no keys, loopback v6", open, "/debug/pprof/", "[::1]:5", "", http.StatusOK},
		{"no keys, remote", open, "/debug/pprof/cmdline", "192.0.2.1:5", "", http.StatusForbidden},
		{"no keys, remote index without slash", open, "/debug/pprof", "192.0.2.1:5", "", http.StatusForbidden},
	} {
		if got := get(c.h, c.path, c.remote, c.key); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
}
