package main

import "github.com/spf13/cobra"

func init() { registerCommand(newBenchCmd) }

// benchFactories holds the `mfn bench` subcommands; each registers itself
// from its own file with registerBenchCommand.
var benchFactories []commandFactory

func registerBenchCommand(f commandFactory) { benchFactories = append(benchFactories, f) }

func newBenchCmd(env *cmdEnv) *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure aggregation speed and Byzantine robustness",
		Long: `bench groups the project's measurement harnesses: "bench aggregate" times
the robust aggregation rules across client counts and dimensions, and
"bench robustness" runs the robustness protocol (rules x attacks x
heterogeneity) in one process and reports final test accuracies.`,
		Example: "  mfn bench aggregate\n  mfn bench robustness --quick",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	for _, f := range benchFactories {
		c.AddCommand(f(env))
	}
	return c
}
