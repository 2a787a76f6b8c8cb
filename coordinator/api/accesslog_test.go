package api

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mfn/mfn/internal/jsonkeys"
)

// logLines returns the JSON log lines whose msg is msg.
func logLines(t *testing.T, logs string, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestAccessLogFieldsOnce decodes every log line strictly: no field
// appears twice, whether the request was authenticated, refused,
// forwarded or failed, and the handlers' own lines too.
func TestAccessLogFieldsOnce(t *testing.T) {
	t.Parallel()
	f := seededFake()
	srv, logs := newTestAPI(t, f, nil)
	request(t, srv, "GET", "/v1/jobs", keyReader, "")
	request(t, srv, "GET", "/v1/jobs/nope", keyReader, "")
	request(t, srv, "GET", "/v1/jobs", "wrong-key-0123456789", "")
	request(t, srv, "GET", "/v1/jobs", "", "")
	request(t, srv, "GET", "/no/such/route", "", "")
	request(t, srv, "POST", "/v1/jobs", keyOperator, `{"id":"jz","task":"mfn-regime","dim":2}`)
	request(t, srv, "POST", "/v1/jobs/jz/stop", keyOperator, `{"reason":"test"}`)
	request(t, srv, "POST", "/v1/cluster/join", keyReader, `{}`)
	request(t, srv, "GET", "/healthz", "", "")
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		lines++
		if _, err := jsonkeys.Check(sc.Bytes()); err != nil {
			t.Errorf("log line %s: %v", sc.Bytes(), err)
		}
	}
	access := logLines(t, logs.String(), "http request")
	if len(access) != 9 {
		t.Fatalf("%d access lines, want 9 (one per request)", len(access))
	}
	if access[0]["key"] != "reader" || access[0]["role"] != "reader" || access[0]["request_id"] == "" {
		t.Errorf("authenticated line %v lacks key, role or request_id", access[0])
	}
	if lines <= len(access) {
		t.Errorf("only access lines were logged (%d): the handlers' lines are missing from the check", lines)
	}
}
