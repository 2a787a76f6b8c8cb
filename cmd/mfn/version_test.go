package main

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/mfn/mfn", Version: "v0.0.0-20261205-abcdef"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef"},
			{Key: "vcs.time", Value: "2026-12-05T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
			{Key: "GOARM", Value: "7"},
		},
	}
	tests := []struct {
		name             string
		stampV, stampD   string
		bi               *debug.BuildInfo
		want             versionInfo
		wantPlatformTail string
	}{
		{"from build info", "", "", bi, versionInfo{Version: "v0.0.0-20261205-abcdef", Revision: "0123456789abcdef", Dirty: true, BuildDate: "2026-12-05T10:00:00Z", GoVersion: "go1.99.1"}, "/v7"},
		{"stamped", "v1.2.3", "2026-01-02T03:04:05Z", bi, versionInfo{Version: "v1.2.3", Revision: "0123456789abcdef", Dirty: true, BuildDate: "2026-01-02T03:04:05Z", GoVersion: "go1.99.1"}, "/v7"},
		{"no build info", "", "", nil, versionInfo{Version: "(devel)", Revision: "unknown", BuildDate: "unknown"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version, buildDate = tt.stampV, tt.stampD
			t.Cleanup(func() { version, buildDate = "", "" })
			got := readVersion(tt.bi)
			if !strings.HasSuffix(got.Platform, tt.wantPlatformTail) {
				t.Errorf("platform %q, want suffix %q", got.Platform, tt.wantPlatformTail)
			}
			got.Platform = ""
			if tt.bi == nil {
				got.GoVersion = "" // the running toolchain's
			}
			if got != tt.want {
				t.Errorf("readVersion = %+v, want %+v", got, tt.want)
			}
			var buf bytes.Buffer
			if err := printVersion(&buf, got, true); err != nil {
				t.Fatal(err)
			}
			var back versionInfo
			if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back != got {
				t.Errorf("JSON round trip: %v, %+v != %+v", err, back, got)
			}
		})
	}
}
