package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mfn/mfn/console"
	"github.com/mfn/mfn/coordinator/api"
)

// TestCtlConsole: the printed link logs in once with the key's role; an
// unknown key fails with exit 1, a missing --server with exit 2.
func TestCtlConsole(t *testing.T) {
	keys, err := api.ParseKeyList("reader:" + ctlReader + ",operator:" + ctlOperator)
	if err != nil {
		t.Fatal(err)
	}
	c, err := console.New(http.NotFoundHandler(), console.Config{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()

	code, out, errs := runCtl(t, "--server", srv.URL, "--api-key", ctlReader, "console")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	link := strings.SplitN(out, "\n", 2)[0]
	if !strings.HasPrefix(link, srv.URL+"/ui/?token=") || !strings.Contains(out, "role reader") {
		t.Fatalf("output %q: want a %s/ui/?token= link for role reader", out, srv.URL)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	follow := func() *http.Response {
		resp, err := hc.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := follow(); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" || len(resp.Cookies()) != 1 {
		t.Fatalf("first use: %d to %q with %d cookies", resp.StatusCode, resp.Header.Get("Location"), len(resp.Cookies()))
	}
	if resp := follow(); resp.Header.Get("Location") != "/ui/login#expired" || len(resp.Cookies()) != 0 {
		t.Fatalf("second use: to %q with %d cookies; want refused", resp.Header.Get("Location"), len(resp.Cookies()))
	}

	code, out, errs = runCtl(t, "--server", srv.URL, "--api-key", ctlOperator, "--json", "console")
	var j struct{ URL, Role, Key string }
	if code != exitOK || json.Unmarshal([]byte(out), &j) != nil || j.Role != "operator" || !strings.HasPrefix(j.URL, srv.URL+"/ui/?token=") {
		t.Fatalf("--json: exit %d %q %s", code, out, errs)
	}
	if code, _, errs := runCtl(t, "--server", srv.URL, "--api-key", "not-a-key-of-this-cluster", "console"); code != exitFailure || !strings.Contains(errs, "401") {
		t.Fatalf("unknown key: exit %d %q; want exit 1 naming 401", code, errs)
	}
	if code, _, errs := runCtl(t, "--api-key", ctlReader, "console"); code != exitUsage || !strings.Contains(errs, "--server") {
		t.Fatalf("no server: exit %d %q; want exit 2 naming --server", code, errs)
	}
}
