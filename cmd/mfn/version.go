package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() { registerCommand(newVersionCmd) }

// Set at link time by release builds (scripts/build.sh):
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.buildDate=2026-12-05T00:00:00Z"
//
// Empty means: the module version from the build info ("(devel)" for a
// build in the repository), and the commit time as the build date.
var (
	version   string
	buildDate string
)

const versionLong = `version prints what this binary is: its version (stamped by the release
script with -ldflags "-X main.version=...", otherwise the module version
Go recorded, "(devel)" for a build from a checkout), the VCS revision it
was built from and whether the work tree had uncommitted changes
("dirty"), the build date (stamped, otherwise the commit's time, so that
two builds of one commit are identical), the Go version and the target
platform. All but the stamped values come from the build information Go
embeds in every binary (runtime/debug.ReadBuildInfo); a binary built
without VCS information (go build -buildvcs=false, or outside a
repository) prints "unknown" for the revision.`

// versionInfo is what mfn version prints, also as JSON.
type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Dirty     bool   `json:"dirty"`
	BuildDate string `json:"build_date"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func newVersionCmd(env *cmdEnv) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "version",
		Short:   "Print the build's version, VCS revision, build date and Go toolchain",
		Long:    versionLong,
		Example: "  mfn version\n  mfn version --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi, _ := debug.ReadBuildInfo()
			return printVersion(env.stdout, readVersion(bi), asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the fields as a JSON object")
	return c
}

// readVersion collects the version fields from the link-time variables
// and bi (nil when the binary has no build information).
func readVersion(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{
		Version:   version,
		Revision:  "unknown",
		BuildDate: buildDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	var vcsTime string
	if bi != nil {
		if v.Version == "" && bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			v.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Dirty = s.Value == "true"
			case "vcs.time":
				vcsTime = s.Value
			case "GOARM":
				v.Platform += "/v" + s.Value
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	if v.BuildDate == "" {
		v.BuildDate = vcsTime
	}
	if v.BuildDate == "" {
		v.BuildDate = "unknown"
	}
	return v
}

func printVersion(w io.Writer, v versionInfo, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	dirty := ""
	if v.Dirty {
		dirty = " (dirty)"
	}
	_, err := fmt.Fprintf(w, "mfn %s\nrevision:   %s%s\nbuild date: %s\ngo:         %s\nplatform:   %s\n",
		v.Version, v.Revision, dirty, v.BuildDate, v.GoVersion, v.Platform)
	return err
}
