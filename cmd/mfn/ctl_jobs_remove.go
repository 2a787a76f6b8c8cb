package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newCtlJobsRemoveCmds returns `jobs archive` and `jobs delete`: the two
// ways an operator frees a job's models on every member.
func newCtlJobsRemoveCmds(env *cmdEnv, o *ctlOpts) []*cobra.Command {
	var reason string
	archive := &cobra.Command{
		Use:   "archive JOB",
		Short: "Archive a job: stop it if running and free its models on every member (operator)",
		Long: `archive stops a running job (its open round fails with the reason) and
frees the parameters of all its models on every member; the job, its rounds
and its model hashes stay readable, and its audit leaves are untouched.`,
		Example: `  mfn ctl jobs archive j1 --reason "superseded by j2"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			j, err := cl.ArchiveJob(env.ctx, args[0], reason)
			if err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, j)
			}
			fmt.Fprintf(env.stdout, "job %s: %s, models freed\n", j.Spec.ID, j.State)
			return nil
		},
	}
	archive.Flags().StringVar(&reason, "reason", "", "why the job is archived (recorded when it was still running)")
	del := &cobra.Command{
		Use:   "delete JOB",
		Short: "Delete a job and its models on every member (operator)",
		Long: `delete removes a job, its rounds and its models from the replicated state on
every member. Its audit leaves stay in the log (the log is append-only), and
its id can never be used again.`,
		Example: `  mfn ctl jobs delete j1`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteJob(env.ctx, args[0]); err != nil {
				return ctlError(cl, err)
			}
			if o.asJSON {
				return printJSON(env.stdout, map[string]any{"job": args[0], "deleted": true})
			}
			fmt.Fprintf(env.stdout, "job %s deleted\n", args[0])
			return nil
		},
	}
	return []*cobra.Command{archive, del}
}
