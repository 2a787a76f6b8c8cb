package console

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mfn/mfn/coordinator/api"
)

// FuzzRequest sends arbitrary methods, paths, cookies, tokens, CSRF
// headers and login bodies to the console: it never panics, never lets a
// request through to the API with a key it did not log in with, and
// never answers a /ui request without the CSP.
func FuzzRequest(f *testing.F) {
	f.Add("GET", "/ui/", "", "", "", "")
	f.Add("POST", "/ui/login", "", "", "http://console.test", "key="+readerKey)
	f.Add("GET", "/ui/?token=abc", "mfn_session=x", "", "", "")
	f.Add("POST", "/v1/jobs/j/stop", "mfn_session=%zz", "tok", "null", "{}")
	f.Add("GET", "/ui/assets/../../etc/passwd", "", "", "", "")
	f.Add("POST", "/ui/logout", "mfn_session=;mfn_session=a", "", "http://[::1", "")
	ks, err := api.NewKeyStore([]api.Key{{Name: "viewer", Role: api.RoleReader, Secret: readerKey}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, cookie, csrf, origin, body string) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") {
			return
		}
		var seen []string
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.Header.Get(api.HeaderAPIKey))
		})
		c, err := New(next, Config{Keys: ks, Rand: rand.NewChaCha8([32]byte{9}), Clock: func() time.Time { return time.Unix(1e9, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(method, "http://console.test"+path, bytes.NewReader([]byte(body)))
		if err != nil {
			return
		}
		req.Header.Set("Cookie", cookie)
		req.Header.Set(HeaderCSRF, csrf)
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		for _, k := range seen {
			if k != "" {
				t.Fatalf("a request without a session reached the API with key %q", k)
			}
		}
		if strings.HasPrefix(req.URL.Path, "/ui") && rec.Header().Get("Content-Security-Policy") != CSP {
			t.Fatalf("%s %s: no CSP", method, path)
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}
