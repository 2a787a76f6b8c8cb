package coordinator

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Raft's log lines print their fields: hclog.Fmt values are formatted, not
// encoded as ["%+v", ...].
func TestHclogAdapterFormatsValues(t *testing.T) {
	var buf bytes.Buffer
	l := newHclog(slog.New(slog.NewJSONHandler(&buf, nil)), "raft", hclog.Info)
	servers := []raft.Server{{ID: "c1", Address: "127.0.0.1:7001", Suffrage: raft.Voter}}
	l.Info("updating configuration", "command", raft.AddVoter, "servers", hclog.Fmt("%+v", servers),
		"mask", hclog.Hex(255), "name", hclog.Quote("a b"), "plain", 7)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	want := map[string]any{
		"servers": "[{Suffrage:Voter ID:c1 Address:127.0.0.1:7001}]",
		"mask":    "0xff", "name": `"a b"`, "plain": float64(7), "command": "AddVoter", "logger": "raft",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %#v, want %#v (line %s)", k, line[k], v, buf.Bytes())
		}
	}
}
