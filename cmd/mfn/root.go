package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mfn/mfn/learn"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (I/O, verification, ...)
	exitUsage   = 2 // bad flags, arguments or parameters
)

// usageError marks an error caused by the user's input (a flag out of range,
// a malformed argument). run maps it to exit code 2, as it does a missing
// data set (learn.ErrNotInstalled: the user has to provide it, e.g. with
// --data-dir).
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
the environment, which wins over the config file. An error about a value
names where it came from (MFN_GRID_SIZE=3, or grid-size = 3 in mfn.toml).`

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
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ue *usageError
	usage := errors.As(err, &ue) || isCobraUsageError(err) || errors.Is(err, learn.ErrNotInstalled)
	msg := err.Error()
	if usage && cmd != nil {
		msg = nameValueSources(cmd.Flags(), msg)
	}
	fmt.Fprintf(stderr, "mfn: %s\n", msg)
	if usage {
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
			_ = cmd.Flags().SetAnnotation(f.Name, flagSourceAnnotation, []string{"environment", envName + "=" + v, v})
			return
		}
		if v, ok := file[f.Name]; ok {
			raw := configValue(v)
			if err := cmd.Flags().Set(f.Name, raw); err != nil {
				firstErr = usagef("--config %s: key %q: %v", path, f.Name, err)
				return
			}
			where := fmt.Sprintf("%s = %s in %s", f.Name, tomlValue(v), path)
			_ = cmd.Flags().SetAnnotation(f.Name, flagSourceAnnotation, []string{"config", where, raw})
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
// or the config file rather than the command line. Its value is
// [kind, where, raw]: kind is "environment" or "config", where says where
// the value was found as a person would write it there
// (`MFN_GRID_SIZE=3`, `grid-size = 3 in mfn.toml`), raw is the string the
// flag was set to.
const flagSourceAnnotation = "mfn_value_source"

// nameValueSources rewrites a usage error message so that every flag whose
// value came from the environment or the config file is named by where the
// value was found: "--grid-size 3 out of range" becomes
// "MFN_GRID_SIZE=3 (--grid-size) out of range", and a flag mentioned
// without its value, "--steps: ...", becomes "--steps (from MFN_STEPS=9): ...".
// Flags typed on the command line are left as they are. It works on the
// message alone, so every command's errors get it without doing anything.
func nameValueSources(fs *pflag.FlagSet, msg string) string {
	fs.VisitAll(func(f *pflag.Flag) {
		src := f.Annotations[flagSourceAnnotation]
		if len(src) < 3 || !f.Changed {
			return
		}
		name, where, raw := "--"+f.Name, src[1], src[2]
		replaced := false
		for _, v := range []string{f.Value.String(), raw, strconv.Quote(raw)} {
			for _, sep := range []string{" ", "=", ": "} {
				var ok bool
				msg, ok = replaceToken(msg, name+sep+v, where+" ("+name+")")
				replaced = replaced || ok
			}
		}
		if !replaced {
			msg, _ = replaceToken(msg, name, name+" (from "+where+")")
		}
	})
	return msg
}

// replaceToken replaces every occurrence of tok in s that is not part of a
// longer word (the next byte is not a letter, digit, '-', '_' or '.'), so
// "--steps 1" does not match inside "--steps 10" nor "--seed" inside
// "--seed-file". It reports whether it replaced anything.
func replaceToken(s, tok, with string) (string, bool) {
	var b strings.Builder
	found := false
	for {
		i := strings.Index(s, tok)
		if i < 0 {
			b.WriteString(s)
			return b.String(), found
		}
		end := i + len(tok)
		if end < len(s) && isWordByte(s[end]) {
			b.WriteString(s[:end])
			s = s[end:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(with)
		s = s[end:]
		found = true
	}
}

func isWordByte(c byte) bool {
	return c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// tomlValue renders a decoded TOML value as it would be written in the
// file: strings quoted, arrays in brackets.
func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = tomlValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		return fmt.Sprint(x)
	}
}

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
