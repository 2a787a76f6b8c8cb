package coordinator

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestHclogAdapterFormats: raft's formatted fields (hclog.Fmt and the
// number wrappers) reach the JSON log as the text hclog prints, not as
// the format string and its arguments.
func TestHclogAdapterFormats(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := newHclog(slog.New(slog.NewJSONHandler(&buf, nil)), "raft", hclog.Info)
	type server struct{ ID, Address string }
	l.Info("initial configuration", "servers", hclog.Fmt("%+v", []server{{"c1", "127.0.0.1:7001"}}),
		"hex", hclog.Hex(255), "oct", hclog.Octal(8), "bin", hclog.Binary(5), "q", hclog.Quote("a b"), "plain", 3)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%s: %v", buf.Bytes(), err)
	}
	want := map[string]any{"servers": "[{ID:c1 Address:127.0.0.1:7001}]", "hex": "0xff", "oct": "010", "bin": "0b101",
		"q": `"a b"`, "plain": float64(3), "logger": "raft"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v (line %s)", k, got[k], v, buf.Bytes())
		}
	}
}
