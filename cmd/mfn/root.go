package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (I/O, verification, ...)
	exitUsage   = 2 // bad flags, arguments or parameters
)

// usageError marks an error caused by the user's input (a flag out of range,
// a malformed argument). run maps it to exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// asUsage wraps err as a usage error (nil stays nil).
func asUsage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err: err}
}

// commandFactory builds one top-level subcommand. Each command's file
// registers its factory in an init function, so adding a command touches
// only its own file.
type commandFactory func(env *cmdEnv) *cobra.Command

var commandFactories []commandFactory

func registerCommand(f commandFactory) { commandFactories = append(commandFactories, f) }

// cmdEnv carries what commands need from the process: streams and the
// signal-aware context. Commands never use os.Stdout directly, which keeps
// them testable.
type cmdEnv struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

const rootLong = `mfn is MyceliumFractalNet: Byzantine-robust federated learning on the MFN
reaction-diffusion simulation.

Edge nodes ("mfn node") simulate MFN fields, extract 18 fractal and
statistical features, train a small model and send signed, encrypted updates
over QUIC to a Raft-replicated coordinator cluster ("mfn coordinator"), which
combines them with robust rules (Krum, trimmed mean, ...) and records every
accepted update in a tamper-evident audit log ("mfn audit verify").

Every flag can also be set through the environment as MFN_<FLAG> (dashes
become underscores, e.g. MFN_GRID_SIZE=128) or in a TOML file given with
--config (keys are flag names, e.g. grid-size = 128). Explicit flags win over
the environment, which wins over the config file.`

// newRootCmd builds the command tree.
func newRootCmd(env *cmdEnv) *cobra.Command {
	root := &cobra.Command{
		Use:           "mfn",
		Short:         "MyceliumFractalNet: Byzantine-robust federated learning on MFN simulations",
		Long:          rootLong,
		Example:       "  mfn sim --grid-size 64 --steps 100\n  mfn demo\n  mfn help sim",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "", "TOML config file whose keys are flag names")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return applyEnvAndConfig(cmd)
	}
	root.SetIn(env.stdin)
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return asUsage(err) })
	cmds := make([]*cobra.Command, 0, len(commandFactories))
	for _, f := range commandFactories {
		cmds = append(cmds, f(env))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	for _, c := range cmds {
		root.AddCommand(c)
	}
	return root
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &cmdEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "mfn: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		return exitUsage
	}
	return exitFailure
}

// isCobraUsageError recognises cobra's own argument errors, which are plain
// errors without a type.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// applyEnvAndConfig fills every flag the user did not set on the command
// line, first from MFN_<FLAG> environment variables, then from the TOML file
// named by --config (or MFN_CONFIG).
func applyEnvAndConfig(cmd *cobra.Command) error {
	var file map[string]any
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = os.Getenv("MFN_CONFIG")
	}
	if path != "" {
		if _, err := toml.DecodeFile(path, &file); err != nil {
			return usagef("--config %s: %v", path, err)
		}
	}
	known := map[string]bool{}
	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		known[f.Name] = true
		if f.Changed || firstErr != nil || f.Name == "config" {
			return
		}
		envName := "MFN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		// An empty variable counts as unset, as most tools treat it.
		if v, ok := os.LookupEnv(envName); ok && v != "" {
			if err := cmd.Flags().Set(f.Name, v); err != nil {
				firstErr = usagef("environment %s=%q: %v", envName, v, err)
				return
			}
			_ = cmd.Flags().SetAnnotation(f.Name, flagSourceAnnotation, []string{"environment"})
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := cmd.Flags().Set(f.Name, configValue(v)); err != nil {
				firstErr = usagef("--config %s: key %q: %v", path, f.Name, err)
				return
			}
			_ = cmd.Flags().SetAnnotation(f.Name, flagSourceAnnotation, []string{"config"})
		}
	})
	if firstErr != nil {
		return firstErr
	}
	keys := make([]string, 0, len(file))
	for k := range file {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			return usagef("--config %s: unknown key %q for %q", path, k, cmd.CommandPath())
		}
	}
	return nil
}

// flagSourceAnnotation marks a flag whose value came from the environment
// or the config file rather than the command line.
const flagSourceAnnotation = "mfn_value_source"

// onCommandLine reports whether the user typed flag name on the command
// line (a value from MFN_<FLAG> or --config does not count). Commands use it
// to reject flag combinations that only make sense when typed together.
func onCommandLine(fs *pflag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	return f != nil && f.Changed && f.Annotations[flagSourceAnnotation] == nil
}

// configValue renders a TOML value as the string a flag would take.
func configValue(v any) string {
	switch x := v.(type) {
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(x)
	}
}
